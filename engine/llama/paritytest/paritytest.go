// Package paritytest reads the parity goldens that reference/parity.py
// wrote from transformers (testdata/parity) and loads the tiny checkpoints
// they were made from (testdata/tiny). The engines' specs share it.
package paritytest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"loramix/engine/backend"
	"loramix/engine/llama"
	"loramix/engine/safetensors"
)

// Root is the repository's root folder.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// TinyDir is the folder of the tiny checkpoint model (llama-mha, llama-gqa,
// llama-tied).
func TinyDir(model string) string { return filepath.Join(Root(), "testdata", "tiny", model) }

// Golden is what reference/parity.py recorded for one tiny model; Logits
// holds the logits tensors ("base.s0", "nf4.s1", "<adapter>.s0", ...).
type Golden struct {
	Seqs        [][]int32 `json:"seqs"`
	Greedy      [][]int32 `json:"greedy"`
	GreedyBatch [][]int32 `json:"greedy_batch"`
	NF4Greedy   [][]int32 `json:"nf4_greedy"`
	NewTokens   int       `json:"new_tokens"`
	EOS         int32     `json:"eos"`
	Adapters    map[string]struct {
		Greedy [][]int32 `json:"greedy"`
	} `json:"adapters"`
	Logits *safetensors.File `json:"-"`
}

// ReadGolden reads the golden of model and opens its logits; the caller
// closes g.Logits.
func ReadGolden(model string) (*Golden, error) {
	dir := filepath.Join(Root(), "testdata", "parity")
	b, err := os.ReadFile(filepath.Join(dir, model+".json"))
	if err != nil {
		return nil, err
	}
	var g Golden
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("%s.json: %w", model, err)
	}
	if g.Logits, err = safetensors.Open(filepath.Join(dir, model+".safetensors")); err != nil {
		return nil, err
	}
	return &g, nil
}

// LoadTiny loads the tiny checkpoint model onto b.
func LoadTiny(b backend.Backend, model string, o llama.Options) (*llama.Model, error) {
	return llama.LoadDir(b, TinyDir(model), o)
}
