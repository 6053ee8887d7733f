package adapter

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"loramix/engine/checkpoint"
)

// The weight files PEFT writes, in the order Load looks for them.
const (
	WeightsFile    = "adapter_model.safetensors"
	WeightsBinFile = "adapter_model.bin"
)

// Load reads a PEFT LoRA adapter from a folder or a cached hub id (see
// checkpoint.Resolve): adapter_config.json, then adapter_model.safetensors
// or adapter_model.bin. Tensor keys may carry PEFT's adapter name or not
// ("...lora_A.weight" and "...lora_A.default.weight"). Each module gets the
// rank and alpha PEFT would give it (rank_pattern, alpha_pattern). Load
// refuses, naming the file and the tensor: tensors for unsupported
// features (DoRA magnitudes, LoRA on embeddings, lora_bias), a rank that
// differs from the one the config gives, A and B that disagree, a module
// with one factor only, and NaN or Inf values. The adapter's Name is the
// folder's base name.
func Load(pathOrID string) (*Adapter, error) {
	dir, err := checkpoint.Resolve(pathOrID)
	if err != nil {
		return nil, fmt.Errorf("adapter %v", err)
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	var w checkpoint.Weights
	for _, f := range []string{WeightsFile, WeightsBinFile} {
		path := filepath.Join(dir, f)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		if w, err = checkpoint.OpenFile(path); err != nil {
			return nil, fmt.Errorf("adapter %s: %w", dir, err)
		}
		break
	}
	if w == nil {
		return nil, fmt.Errorf("adapter %s: no %s or %s", dir, WeightsFile, WeightsBinFile)
	}
	defer w.Close()
	a, err := FromWeights(cfg, w)
	if err != nil {
		return nil, err
	}
	a.Dir, a.Name = dir, filepath.Base(filepath.Clean(dir))
	return a, nil
}

// keyPrefix is what PEFT puts before the base model's module names.
const keyPrefix = "base_model.model."

// parseKey splits a PEFT key into the module name, the factor ("lora_A" or
// "lora_B") and the adapter name ("" when absent). ok is false for keys
// that are not LoRA factors of a linear layer.
func parseKey(key string) (module, factor, name string, ok bool) {
	rest := strings.TrimPrefix(key, keyPrefix)
	for _, f := range []string{".lora_A.", ".lora_B."} {
		i := strings.LastIndex(rest, f)
		if i <= 0 {
			continue
		}
		tail := rest[i+len(f):] // "weight" or "<adapter>.weight"
		switch {
		case tail == "weight":
			return rest[:i], f[1:7], "", true
		case strings.HasSuffix(tail, ".weight") && !strings.Contains(strings.TrimSuffix(tail, ".weight"), "."):
			return rest[:i], f[1:7], strings.TrimSuffix(tail, ".weight"), true
		}
	}
	return "", "", "", false
}

// refusedKey explains why a tensor key belongs to a feature loramix refuses.
func refusedKey(key string) string {
	switch {
	case strings.Contains(key, "lora_embedding_A") || strings.Contains(key, "lora_embedding_B"):
		return "LoRA on embeddings is not supported"
	case strings.Contains(key, "lora_magnitude_vector"):
		return "DoRA (a magnitude vector) is not supported"
	case strings.Contains(key, ".lora_B.") && strings.HasSuffix(key, ".bias"):
		return "lora_bias (a bias on B) is not supported"
	case strings.HasSuffix(key, ".bias"):
		return "trained biases are not supported"
	}
	return "it is not a LoRA factor of a linear layer"
}

// FromWeights builds an adapter from a parsed config and the tensors of its
// weight file (see Load for what is refused).
func FromWeights(cfg Config, w checkpoint.Weights) (*Adapter, error) {
	src := w.Source()
	m, err := newMatcher(&cfg)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %v", src, err)
	}
	type pair struct{ a, b string }
	pairs := map[string]*pair{}
	adapterName, first := "", true
	for _, key := range w.Names() {
		module, factor, name, ok := parseKey(key)
		if !ok {
			return nil, fmt.Errorf("adapter %s: tensor %q: %s", src, key, refusedKey(key))
		}
		if first {
			adapterName, first = name, false
		} else if name != adapterName {
			return nil, fmt.Errorf("adapter %s: tensor %q is for adapter %q, others for %q; one adapter per file", src, key, name, adapterName)
		}
		p := pairs[module]
		if p == nil {
			p = &pair{}
			pairs[module] = p
		}
		if factor == "lora_A" {
			p.a = key
		} else {
			p.b = key
		}
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("adapter %s: holds no LoRA tensors", src)
	}
	a := &Adapter{Config: cfg, Modules: map[string]*Module{}}
	modules := make([]string, 0, len(pairs))
	for module := range pairs {
		modules = append(modules, module)
	}
	sortModuleNames(modules) // so that errors name the first bad module
	for _, module := range modules {
		p := pairs[module]
		if p.a == "" || p.b == "" {
			have := p.a + p.b
			return nil, fmt.Errorf("adapter %s: tensor %q has no partner: module %s needs both lora_A and lora_B", src, have, module)
		}
		av, ashape, err := w.Float32(p.a)
		if err != nil {
			return nil, err
		}
		bv, bshape, err := w.Float32(p.b)
		if err != nil {
			return nil, err
		}
		if len(ashape) != 2 || len(bshape) != 2 {
			return nil, fmt.Errorf("adapter %s: module %s: lora_A has shape %v and lora_B %v, both must be 2-D", src, module, ashape, bshape)
		}
		rA, in, out, rB := ashape[0], ashape[1], bshape[0], bshape[1]
		if rA != rB || rA == 0 || in == 0 || out == 0 {
			return nil, fmt.Errorf("adapter %s: module %s: lora_A %q has shape %v (r, in) and lora_B %q %v (out, r); the ranks differ or are empty", src, module, p.a, ashape, p.b, bshape)
		}
		r, alpha := m.rankAlpha(module)
		if rA != r {
			return nil, fmt.Errorf("adapter %s: tensor %q has rank %d, but adapter_config.json gives module %s r=%d", src, p.a, rA, module, r)
		}
		for _, t := range []struct {
			key string
			v   []float32
		}{{p.a, av}, {p.b, bv}} {
			for i, x := range t.v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					return nil, fmt.Errorf("adapter %s: tensor %q holds %v at element %d", src, t.key, x, i)
				}
			}
		}
		a.Modules[module] = &Module{Name: module, R: r, Alpha: alpha, RSLoRA: cfg.UseRSLoRA, In: in, Out: out, A: av, B: bv}
	}
	return a, nil
}
