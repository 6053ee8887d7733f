package merge

import (
	"fmt"
	"math"
	"math/rand/v2"

	"loramix/engine/adapter"
)

// ModuleShape is an adapted linear layer: its name and (out, in).
type ModuleShape struct {
	Name    string
	Out, In int
}

// MLPShapes returns gate_proj, up_proj (out = inter, in = hidden) and
// down_proj (out = hidden, in = inter) of every layer: for Llama-2-7B
// (32 layers, 4096, 11008) that is the 96 modules of the merge benchmark.
func MLPShapes(layers, hidden, inter int) []ModuleShape {
	var out []ModuleShape
	for l := 0; l < layers; l++ {
		p := fmt.Sprintf("model.layers.%d.mlp.", l)
		out = append(out,
			ModuleShape{p + "gate_proj", inter, hidden},
			ModuleShape{p + "up_proj", inter, hidden},
			ModuleShape{p + "down_proj", hidden, inter})
	}
	return out
}

// RandomAdapter returns a LoRA adapter of rank r and alpha on the given
// modules with seeded Gaussian factors (A scaled by 1/sqrt(in), as a trained
// adapter's would roughly be).
func RandomAdapter(name string, shapes []ModuleShape, r int, alpha float64, seed uint64) *adapter.Adapter {
	a := &adapter.Adapter{Name: name, Modules: map[string]*adapter.Module{}}
	a.Config = adapter.Config{PeftType: "LORA", R: r, LoraAlpha: alpha, TaskType: "CAUSAL_LM", Bias: "none"}
	seen := map[string]bool{}
	for i, s := range shapes {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		m := &adapter.Module{Name: s.Name, R: r, Alpha: alpha, In: s.In, Out: s.Out,
			A: make([]float32, r*s.In), B: make([]float32, s.Out*r)}
		sa := 1 / math.Sqrt(float64(s.In))
		for j := range m.A {
			m.A[j] = float32(rng.NormFloat64() * sa)
		}
		for j := range m.B {
			m.B[j] = float32(rng.NormFloat64() * 0.01)
		}
		a.Modules[s.Name] = m
		suffix := s.Name[lastDot(s.Name)+1:]
		if !seen[suffix] {
			seen[suffix] = true
			a.Config.TargetModules.Names = append(a.Config.TargetModules.Names, suffix)
		}
	}
	return a
}

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}
