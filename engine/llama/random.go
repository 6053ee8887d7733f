package llama

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"

	"loramix/engine/checkpoint"
	"loramix/engine/dtype"
)

// Shape is the size of a random Llama model for benchmarks and tests.
type Shape struct {
	Hidden, Intermediate, Layers, Heads, KVHeads, Vocab int
}

// Shapes used by `loramix bench generate`.
var (
	// SmallShape is a small model like the in-repo world's.
	SmallShape = Shape{Hidden: 192, Intermediate: 512, Layers: 4, Heads: 6, KVHeads: 6, Vocab: 32000}
	// WorldShape is the shape of the in-repo world model (reference/train_world.py).
	WorldShape = Shape{Hidden: 160, Intermediate: 512, Layers: 6, Heads: 5, KVHeads: 5, Vocab: 32000}
	// Llama7BLayer is one decoder layer of Llama-2-7B (with a tiny
	// vocabulary, so that the layer dominates).
	Llama7BLayer = Shape{Hidden: 4096, Intermediate: 11008, Layers: 1, Heads: 32, KVHeads: 32, Vocab: 256}
)

// Config returns the checkpoint configuration of a random model of shape s.
func (s Shape) Config() (*checkpoint.Config, error) {
	b, err := json.Marshal(map[string]any{
		"model_type": "llama", "hidden_size": s.Hidden, "intermediate_size": s.Intermediate,
		"num_hidden_layers": s.Layers, "num_attention_heads": s.Heads, "num_key_value_heads": s.KVHeads,
		"vocab_size": s.Vocab, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
	})
	if err != nil {
		return nil, err
	}
	return checkpoint.ParseConfig(fmt.Sprintf("random %+v", s), b)
}

// RandomWeights returns in-memory weights for cfg: normal(0, std) matrices
// and norms of 1, from a PCG stream seeded with seed, stored as dt (F32, or
// F16 with the values rounded to half). Float32 returns the stored slices
// themselves; Load only reads them.
func RandomWeights(cfg *checkpoint.Config, seed uint64, std float64, dt dtype.DType) checkpoint.Weights {
	w := &memWeights{t: map[string]memTensor{}, dt: dt}
	r := rand.New(rand.NewPCG(seed, 0x11a3a))
	for _, e := range cfg.Expected() {
		n := 1
		for _, d := range e.Shape {
			n *= d
		}
		v := make([]float32, n)
		if len(e.Shape) == 1 {
			for i := range v {
				v[i] = 1
			}
		} else {
			for i := range v {
				v[i] = float32(r.NormFloat64() * std)
				if dt == dtype.F16 {
					v[i] = dtype.F16ToF32(dtype.F32ToF16(v[i]))
				}
			}
		}
		w.t[e.Name] = memTensor{v, e.Shape}
	}
	return w
}

type memTensor struct {
	v     []float32
	shape []int
}

// memWeights is a checkpoint.Weights held in memory.
type memWeights struct {
	t  map[string]memTensor
	dt dtype.DType
}

func (w *memWeights) Names() []string {
	var out []string
	for n := range w.t {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (w *memWeights) Info(name string) (checkpoint.TensorInfo, bool) {
	t, ok := w.t[name]
	return checkpoint.TensorInfo{Name: name, DType: w.dt, Shape: t.shape, File: "random"}, ok
}

func (w *memWeights) Float32(name string) ([]float32, []int, error) {
	t, ok := w.t[name]
	if !ok {
		return nil, nil, fmt.Errorf("random weights: no tensor %q", name)
	}
	return t.v, t.shape, nil
}

func (w *memWeights) Source() string { return "random" }
func (w *memWeights) Close() error   { return nil }
