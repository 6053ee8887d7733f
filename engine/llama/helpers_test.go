package llama_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"

	. "github.com/onsi/gomega"

	"loramix/engine/backend"
	"loramix/engine/checkpoint"
	"loramix/engine/cpu"
	"loramix/engine/llama"
	"loramix/engine/safetensors"
)

const (
	tinyDir   = "../../testdata/tiny"
	parityDir = "../../testdata/parity"
)

// golden is what reference/parity.py recorded for one tiny model.
type golden struct {
	Seqs        [][]int32 `json:"seqs"`
	Greedy      [][]int32 `json:"greedy"`
	GreedyBatch [][]int32 `json:"greedy_batch"`
	NF4Greedy   [][]int32 `json:"nf4_greedy"`
	NewTokens   int       `json:"new_tokens"`
	EOS         int32     `json:"eos"`
	Adapters    map[string]struct {
		Greedy [][]int32 `json:"greedy"`
	} `json:"adapters"`
	logits *safetensors.File
}

func loadGolden(model string) *golden {
	b, err := os.ReadFile(filepath.Join(parityDir, model+".json"))
	Expect(err).NotTo(HaveOccurred())
	var g golden
	Expect(json.Unmarshal(b, &g)).To(Succeed())
	g.logits, err = safetensors.Open(filepath.Join(parityDir, model+".safetensors"))
	Expect(err).NotTo(HaveOccurred())
	return &g
}

// want returns a golden logits tensor, e.g. "base.s0", as (len, vocab) row-major.
func (g *golden) want(name string) []float32 {
	v, _, err := g.logits.Float32(name)
	Expect(err).NotTo(HaveOccurred(), name)
	return v
}

func newCPU() backend.Backend { return cpu.New(cpu.Options{Threads: 2}) }

// load opens a tiny checkpoint on a CPU backend.
func load(model string, o llama.Options, threads int) *llama.Model {
	dir := filepath.Join(tinyDir, model)
	cfg, err := checkpoint.LoadConfig(dir)
	Expect(err).NotTo(HaveOccurred())
	w, err := checkpoint.OpenWeights(dir)
	Expect(err).NotTo(HaveOccurred())
	defer w.Close()
	m, err := llama.Load(cpu.New(cpu.Options{Threads: threads, Compute: backend.F32}), cfg, w, o)
	Expect(err).NotTo(HaveOccurred())
	return m
}

// relErr is the relative Frobenius error ||got - want|| / ||want||.
func relErr(got, want []float32) float64 {
	Expect(got).To(HaveLen(len(want)))
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

func ids(r []llama.Result) [][]int32 {
	out := make([][]int32, len(r))
	for i := range r {
		out[i] = r[i].IDs
	}
	return out
}
