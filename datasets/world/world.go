// Package world locates the committed reference world in this folder (a
// six-layer Llama-2-architecture base, the fren, oasst and clash adapters,
// and transformers' greedy goldens written by reference/train_world.py) and
// loads it onto a backend. Tests of the engines share it.
package world

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"loramix/engine/adapter"
	"loramix/engine/backend"
	"loramix/engine/llama"
	"loramix/engine/merge"
)

// Adapters are the world's adapters, in the order Load adds them.
var Adapters = []string{"fren", "oasst", "clash"}

// Dir is the folder of the committed world (this package's folder).
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Golden is one file of goldens/: greedy outputs of transformers + PEFT
// (float32) for the base, one adapter, or a merged combination.
type Golden struct {
	Config   string    `json:"config"`
	Kind     string    `json:"combination_type"` // none, single, cat or svd
	Adapters []string  `json:"adapters"`
	Weights  []float64 `json:"weights"`
	MaxNew   int       `json:"max_new_tokens"`
	Cases    []struct {
		Format    string  `json:"format"`
		PromptIDs []int32 `json:"prompt_ids"`
		OutputIDs []int32 `json:"output_ids"`
	} `json:"cases"`
}

// ReadGolden reads goldens/<name>.json.
func ReadGolden(name string) (*Golden, error) {
	path := filepath.Join(Dir(), "goldens", name+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var g Golden
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &g, nil
}

// Prompts returns the token ids of the golden's prompts, in case order.
func (g *Golden) Prompts() [][]int32 {
	var p [][]int32
	for _, c := range g.Cases {
		p = append(p, c.PromptIDs)
	}
	return p
}

// Load loads the base model onto b in quantization q and adds the world's
// adapters under their names.
func Load(b backend.Backend, q llama.Quant) (*llama.Model, error) {
	m, err := llama.LoadDir(b, filepath.Join(Dir(), "base"), llama.Options{Quant: q})
	if err != nil {
		return nil, err
	}
	for _, name := range Adapters {
		a, err := adapter.Load(filepath.Join(Dir(), "adapters", name))
		if err != nil {
			return nil, err
		}
		a.Name = name
		if err := m.AddAdapter(a); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Activate makes m run what g was generated with: the base, one adapter,
// or the cat/svd combination of its adapters (merged once, then kept in m
// under the golden's config name).
func Activate(m *llama.Model, g *Golden) error {
	active := llama.Base
	switch g.Kind {
	case "single":
		active = g.Adapters[0]
	case "cat", "svd":
		if m.Adapter(g.Config) == nil {
			var ins []*adapter.Adapter
			for _, n := range g.Adapters {
				ins = append(ins, m.Adapter(n))
			}
			res, err := merge.Merge(ins, merge.Options{Method: merge.Method(g.Kind), Weights: g.Weights, Name: g.Config})
			if err != nil {
				return err
			}
			if err := m.AddAdapter(res.Adapter); err != nil {
				return err
			}
		}
		active = g.Config
	}
	return m.SetActive(active)
}
