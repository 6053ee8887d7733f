package checkpoint

import "fmt"

// Model is an opened checkpoint: its configuration and its weights.
type Model struct {
	Dir     string // the folder the checkpoint was read from (a snapshot for hub ids)
	Name    string // what the user gave: a path or a hub id
	Config  *Config
	Weights Weights
}

// Open reads the checkpoint at pathOrID (a folder or a cached hub id, see
// Resolve), parses its config and opens its weights, checking that they
// hold exactly the tensors the config implies with the right shapes.
// Close the model when done.
func Open(pathOrID string) (*Model, error) {
	dir, err := Resolve(pathOrID)
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	w, err := OpenWeights(dir)
	if err != nil {
		return nil, err
	}
	if err := CheckWeights(cfg, w); err != nil {
		w.Close()
		return nil, err
	}
	return &Model{Dir: dir, Name: pathOrID, Config: cfg, Weights: w}, nil
}

// Close releases the weights.
func (m *Model) Close() error { return m.Weights.Close() }

// ParamCount returns the number of parameters the weights hold, counting
// a tied lm_head once.
func (m *Model) ParamCount() int64 {
	var n int64
	for _, name := range m.Weights.Names() {
		if info, ok := m.Weights.Info(name); ok {
			n += int64(info.NumElements())
		}
	}
	return n
}

// LMHeadName returns the tensor that serves as lm_head: lm_head.weight, or
// the embeddings when they are tied.
func (c *Config) LMHeadName() string {
	if c.TieWordEmbeddings {
		return TensorName(Embed, 0)
	}
	return TensorName(LMHead, 0)
}

// String summarises the architecture in one line.
func (c *Config) String() string {
	s := fmt.Sprintf("llama: %d layers, hidden %d, intermediate %d, %d heads (%d kv, head dim %d), vocab %d, rope theta %g",
		c.NumHiddenLayers, c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim(), c.VocabSize, c.RopeTheta)
	if c.RopeScaling != nil {
		s += fmt.Sprintf(" (linear scaling %g)", c.RopeScaling.Factor)
	}
	if c.TieWordEmbeddings {
		s += ", tied embeddings"
	}
	return s
}
