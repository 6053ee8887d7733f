package llama_test

import (
	"math"

	. "github.com/onsi/gomega"

	"loramix/engine/backend"
	"loramix/engine/cpu"
	"loramix/engine/llama"
	"loramix/engine/llama/paritytest"
)

const tinyDir = "../../testdata/tiny"

// golden is what reference/parity.py recorded for one tiny model.
type golden = paritytest.Golden

func loadGolden(model string) *golden {
	g, err := paritytest.ReadGolden(model)
	Expect(err).NotTo(HaveOccurred())
	return g
}

// want returns a golden logits tensor, e.g. "base.s0", as (len, vocab) row-major.
func want(g *golden, name string) []float32 {
	v, _, err := g.Logits.Float32(name)
	Expect(err).NotTo(HaveOccurred(), name)
	return v
}

func newCPU() backend.Backend { return cpu.New(cpu.Options{Threads: 2}) }

// load opens a tiny checkpoint on a CPU backend.
func load(model string, o llama.Options, threads int) *llama.Model {
	m, err := paritytest.LoadTiny(cpu.New(cpu.Options{Threads: threads, Compute: backend.F32}), model, o)
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
