package checkpoint

import (
	"fmt"
	"strconv"
	"strings"
)

// Role is what a weight does in the Llama architecture, independent of how
// a file names it.
type Role string

// The weights of a Llama model. Layer roles exist once per decoder layer.
const (
	Embed    Role = "embed"     // (vocab, hidden)
	AttnNorm Role = "attn_norm" // (hidden)
	WQ       Role = "wq"        // (heads*head_dim, hidden)
	WK       Role = "wk"        // (kv_heads*head_dim, hidden)
	WV       Role = "wv"        // (kv_heads*head_dim, hidden)
	WO       Role = "wo"        // (hidden, heads*head_dim)
	MLPNorm  Role = "mlp_norm"  // (hidden)
	WGate    Role = "w_gate"    // (intermediate, hidden)
	WUp      Role = "w_up"      // (intermediate, hidden)
	WDown    Role = "w_down"    // (hidden, intermediate)
	Norm     Role = "norm"      // (hidden), the final norm
	LMHead   Role = "lm_head"   // (vocab, hidden); absent when embeddings are tied
)

// tensorSpec is one row of the name table: the Hugging Face name (with %d
// for the layer index) and the expected shape.
type tensorSpec struct {
	role     Role
	perLayer bool
	hf       string
	shape    func(c *Config) []int
}

// llamaTensors is the single table that maps roles to Hugging Face tensor
// names and shapes. Adapter module names are these names less ".weight".
var llamaTensors = []tensorSpec{
	{Embed, false, "model.embed_tokens.weight", func(c *Config) []int { return []int{c.VocabSize, c.HiddenSize} }},
	{AttnNorm, true, "model.layers.%d.input_layernorm.weight", func(c *Config) []int { return []int{c.HiddenSize} }},
	{WQ, true, "model.layers.%d.self_attn.q_proj.weight", func(c *Config) []int { return []int{c.QDim(), c.HiddenSize} }},
	{WK, true, "model.layers.%d.self_attn.k_proj.weight", func(c *Config) []int { return []int{c.KVDim(), c.HiddenSize} }},
	{WV, true, "model.layers.%d.self_attn.v_proj.weight", func(c *Config) []int { return []int{c.KVDim(), c.HiddenSize} }},
	{WO, true, "model.layers.%d.self_attn.o_proj.weight", func(c *Config) []int { return []int{c.HiddenSize, c.QDim()} }},
	{MLPNorm, true, "model.layers.%d.post_attention_layernorm.weight", func(c *Config) []int { return []int{c.HiddenSize} }},
	{WGate, true, "model.layers.%d.mlp.gate_proj.weight", func(c *Config) []int { return []int{c.IntermediateSize, c.HiddenSize} }},
	{WUp, true, "model.layers.%d.mlp.up_proj.weight", func(c *Config) []int { return []int{c.IntermediateSize, c.HiddenSize} }},
	{WDown, true, "model.layers.%d.mlp.down_proj.weight", func(c *Config) []int { return []int{c.HiddenSize, c.IntermediateSize} }},
	{Norm, false, "model.norm.weight", func(c *Config) []int { return []int{c.HiddenSize} }},
	{LMHead, false, "lm_head.weight", func(c *Config) []int { return []int{c.VocabSize, c.HiddenSize} }},
}

// ignoredTensors are names some checkpoints carry that hold nothing the
// model needs (older transformers saved the rotary inverse frequencies).
var ignoredSuffixes = []string{".rotary_emb.inv_freq"}

// TensorName returns the Hugging Face name of a role's weight; layer is
// ignored for roles that are not per layer. It panics on an unknown role,
// which is a programming error.
func TensorName(role Role, layer int) string {
	for _, s := range llamaTensors {
		if s.role == role {
			if s.perLayer {
				return fmt.Sprintf(s.hf, layer)
			}
			return s.hf
		}
	}
	panic("checkpoint: unknown role " + string(role))
}

// ExpectedTensor is a weight a checkpoint must hold, with its shape.
type ExpectedTensor struct {
	Name  string
	Role  Role
	Layer int // -1 for roles that are not per layer
	Shape []int
}

// Expected lists every weight the config implies: the embeddings, then
// layer by layer, then the final norm and lm_head (left out when the
// embeddings are tied).
func (c *Config) Expected() []ExpectedTensor {
	var global, layers []ExpectedTensor
	for _, s := range llamaTensors {
		if !s.perLayer && !(s.role == LMHead && c.TieWordEmbeddings) {
			global = append(global, ExpectedTensor{s.hf, s.role, -1, s.shape(c)})
		}
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		for _, s := range llamaTensors {
			if s.perLayer {
				layers = append(layers, ExpectedTensor{fmt.Sprintf(s.hf, l), s.role, l, s.shape(c)})
			}
		}
	}
	// The table lists the embeddings first and the final norm and lm_head last.
	return append(append(global[:1:1], layers...), global[1:]...)
}

// ParseName maps a Hugging Face tensor name to its role and layer (-1 for
// roles that are not per layer). ok is false for names outside the table.
func ParseName(name string) (role Role, layer int, ok bool) {
	for _, s := range llamaTensors {
		if !s.perLayer {
			if name == s.hf {
				return s.role, -1, true
			}
			continue
		}
		prefix, suffix, _ := strings.Cut(s.hf, "%d")
		if rest, found := strings.CutPrefix(name, prefix); found {
			if num, found := strings.CutSuffix(rest, suffix); found {
				if l, err := strconv.Atoi(num); err == nil && l >= 0 && strconv.Itoa(l) == num {
					return s.role, l, true
				}
			}
		}
	}
	return "", -1, false
}

// LinearShape returns the (out, in) shape of the linear layer a module name
// (a tensor name less ".weight", e.g. "model.layers.0.mlp.gate_proj")
// denotes, and whether it is a linear layer of the table. The embeddings
// and lm_head count as linear here; callers that refuse them check the role.
func (c *Config) LinearShape(module string) (shape []int, role Role, ok bool) {
	role, layer, ok := ParseName(module + ".weight")
	if !ok || role == AttnNorm || role == MLPNorm || role == Norm {
		return nil, role, false
	}
	if layer >= c.NumHiddenLayers {
		return nil, role, false
	}
	for _, s := range llamaTensors {
		if s.role == role {
			return s.shape(c), role, true
		}
	}
	return nil, role, false
}

// CheckWeights verifies that w holds exactly the weights the config implies,
// with the expected shapes and a float dtype. The error names the tensor
// and both shapes.
func CheckWeights(c *Config, w Weights) error {
	want := map[string]bool{}
	for _, e := range c.Expected() {
		want[e.Name] = true
		info, ok := w.Info(e.Name)
		if !ok {
			return fmt.Errorf("%s: tensor %q is missing", w.Source(), e.Name)
		}
		if !equalShape(info.Shape, e.Shape) {
			return fmt.Errorf("%s: tensor %q has shape %v, config.json implies %v", w.Source(), e.Name, info.Shape, e.Shape)
		}
		if !info.DType.IsFloat() {
			return fmt.Errorf("%s: tensor %q has dtype %s, want F32, F16 or BF16", w.Source(), e.Name, info.DType)
		}
	}
	for _, n := range w.Names() {
		if want[n] || hasIgnoredSuffix(n) {
			continue
		}
		if n == "lm_head.weight" && c.TieWordEmbeddings {
			continue // some writers keep the tied copy
		}
		return fmt.Errorf("%s: unexpected tensor %q for a %d-layer Llama", w.Source(), n, c.NumHiddenLayers)
	}
	return nil
}

func hasIgnoredSuffix(n string) bool {
	for _, s := range ignoredSuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
