//go:build cuda

package cuda

import (
	"fmt"
	"math"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/backend"
)

// The benchmark's fused decode step (stepFused) must compute what the plain
// ops compute (step), with and without an adapter (whose shrinks the
// one-token products compute themselves there).
var _ = Describe("the benchmark model", Label("gpu"), func() {
	DescribeTable("decodes the same logits with the fused kernels as with the plain ops", func(s BenchShape) {
		c, m, b := testModel(s, 8, 7, 1, 5)
		next := promptThenNext(c, m, b, s.Vocab)
		logits := func(fused, lora bool) []float32 {
			return next(func() {
				if fused {
					m.stepFused(b, c.view(b.ids, 1), 1, lora)
				} else {
					m.step(b, c.view(b.ids, 1), 1, 1, lora)
				}
			})
		}
		for _, lora := range []bool{false, true} {
			want, got := logits(false, lora), logits(true, lora)
			Expect(relErr(got, want)).To(BeNumerically("<", 1e-5), "lora %v", lora)
			// again: the in-kernel shrinks' counters were reset, and the
			// fused step is deterministic
			Expect(logits(true, lora)).To(Equal(got), "lora %v, second fused step", lora)
		}
		Expect(c.Sync()).To(Succeed())
	},
		Entry("one warp a row group", BenchShape{Name: "small", Hidden: 256, Intermediate: 544, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 1000}),
		// 2048 inputs: 2 warps a row group share the norm; 5504: 6 warps, the last one 12 lanes wide
		Entry("several warps a row group", BenchShape{Name: "wide", Hidden: 2048, Intermediate: 5504, Layers: 1, Heads: 16, KVHeads: 16, Vocab: 1000}),
		// 8448 inputs to down: more than 8 k-warps, one row group a block
		Entry("down over 8192 inputs", BenchShape{Name: "wider", Hidden: 512, Intermediate: 8448, Layers: 1, Heads: 8, KVHeads: 8, Vocab: 1000}),
	)
})

// The tensor-core one-token step (tc1: the benchmark's batch-1 default)
// rounds operands and weights to half, so its logits follow the plain ops'
// float32 ones within fp16 compute's error, with and without the adapter
// (whose shrinks and expands the gate/up and down products compute); a
// second step gives the same logits but for the order of down's atomic
// adds (the shrinks' counters were reset).
var _ = Describe("the benchmark model's tensor-core step", Label("gpu"), func() {
	It("decodes a 7B layer's logits as the plain ops do, within fp16 compute", func() {
		s := BenchShape{Name: "7b-layer", Hidden: 4096, Intermediate: 11008, Layers: 1, Heads: 32, KVHeads: 32, Vocab: 1000}
		c, m, b := testModel(s, 16, 11, 1, 5)
		next := promptThenNext(c, m, b, s.Vocab)
		logits := func(tc, lora bool) []float32 {
			return next(func() {
				m.tc1 = tc
				m.step(b, c.view(b.ids, 1), 1, 1, lora)
				m.tc1 = false
			})
		}
		// the adapter with down's shrink chained from gate/up (the default)
		// and in down's own prologue (v12's)
		for _, v := range []struct{ lora, jobs bool }{{false, false}, {true, false}, {true, true}} {
			m.tcDownJobs = v.jobs
			want, got := logits(false, v.lora), logits(true, v.lora)
			rel := relErr(got, want)
			AddReportEntry(fmt.Sprintf("tensor-core step, lora %v, down's own shrink %v, against the plain ops: rel err", v.lora, v.jobs), rel)
			Expect(rel).To(BeNumerically("<", 5e-3), "%+v", v)
			// down's k splits add atomically, in any order
			Expect(relErr(logits(true, v.lora), got)).To(BeNumerically("<", 1e-5), "%+v, a second step", v)
		}
		m.tcDownJobs = false
		Expect(c.Sync()).To(Succeed())
	})
})

// From 2 to 16 tokens, step runs q,k,v and gate,up as multi-weight
// tensor-core products (nf4_mmaxm_16): the logits must equal those of one
// launch per weight (the same kernel body).
var _ = Describe("the benchmark model's batch step", Label("gpu"), func() {
	DescribeTable("decodes a batch the same with multi-weight products as with one launch per weight", func(s BenchShape) {
		const B, P = 6, 4
		c, m, b := testModel(s, 0, 9, B, B*P)
		ids, seq, pos, last := make([]int32, B*P), make([]int32, B*P), make([]int32, B*P), make([]int32, B)
		for i := range ids {
			ids[i], seq[i], pos[i] = int32(7*i+3), int32(i/P), int32(i%P)
		}
		for i := range last {
			last[i] = int32(i*P + P - 1)
		}
		c.SetInt32(b.ids, ids)
		c.SetInt32(b.seq, seq)
		c.SetInt32(b.pos, pos)
		c.SetInt32(b.last, last)
		m.step(b, b.ids, B*P, B, false) // the prompts: more than 16 tokens, plain ops
		logits := func(noMany bool) []float32 {
			next, nseq, npos, nlast := make([]int32, B), make([]int32, B), make([]int32, B), make([]int32, B)
			for i := range next {
				next[i], nseq[i], npos[i], nlast[i] = int32(100+i), int32(i), P, int32(i)
			}
			c.SetInt32(c.view(b.ids, B), next)
			c.SetInt32(c.view(b.seq, B), nseq)
			c.SetInt32(c.view(b.pos, B), npos)
			c.SetInt32(c.view(b.last, B), nlast)
			m.noMany = noMany
			m.step(b, c.view(b.ids, B), B, B, false)
			out := make([]float32, B*s.Vocab)
			c.Float32(out, c.view(b.logits, B))
			return out
		}
		want, got := logits(true), logits(false)
		rel := relErr(got, want)
		AddReportEntry("batch step "+s.Name+" multi vs single rel err", rel)
		// a 7B layer's down product adds its three 4096-input k splits
		// atomically, in any order (3e-6 seen)
		Expect(rel).To(BeNumerically("<", 2e-5))
		Expect(c.Sync()).To(Succeed())
	},
		Entry("small", BenchShape{Name: "small", Hidden: 256, Intermediate: 768, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 1000}),
		Entry("a 7B layer", BenchShape{Name: "7b-layer", Hidden: 4096, Intermediate: 11008, Layers: 1, Heads: 32, KVHeads: 32, Vocab: 1000}),
	)
})

// testModel opens the card (skipping the spec without one) and builds a
// random benchmark model of shape s: adapters of rank (0: none), KV caches
// of B sequences of 16 positions, buffers for steps of up to T tokens, and
// its multi-weight products.
func testModel(s BenchShape, rank int, seed uint64, B, T int) (*CUDA, *benchModel, *benchBufs) {
	c, err := New(Options{})
	if err != nil {
		Skip("no CUDA device: " + err.Error())
	}
	DeferCleanup(c.Close)
	m := newBenchModel(c, s, rank, seed)
	kvd := s.KVHeads * s.Hidden / s.Heads
	for _, l := range m.layers {
		l.kc, l.vc = c.newT(backend.F16, B, 16, kvd), c.newT(backend.F16, B, 16, kvd)
	}
	b := m.bufs(T, B)
	func() { defer c.bind()(); m.multi(b, rank) }()
	return c, m, b
}

// promptThenNext runs a five-token prompt of one sequence through m's plain
// step, and returns next: the logits (vocab) after run, a one-token step of
// token 977 at position 5 that reads b.ids' first row.
func promptThenNext(c *CUDA, m *benchModel, b *benchBufs, vocab int) (next func(run func()) []float32) {
	const P = 5
	c.SetInt32(b.ids, []int32{3, 14, 159, 265, 358})
	c.SetInt32(b.seq, []int32{0, 0, 0, 0, 0})
	c.SetInt32(b.pos, []int32{0, 1, 2, 3, 4})
	c.SetInt32(b.last, []int32{P - 1})
	m.step(b, b.ids, P, 1, false)
	return func(run func()) []float32 {
		c.SetInt32(c.view(b.ids, 1), []int32{977})
		c.SetInt32(c.view(b.pos, 1), []int32{P})
		c.SetInt32(c.view(b.last, 1), []int32{0})
		run()
		out := make([]float32, vocab)
		c.Float32(out, c.view(b.logits, 1))
		return out
	}
}

// relErr is |got - want| / |want| (Euclidean norms); want must not be zero.
func relErr(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i] - want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	Expect(den).To(BeNumerically(">", 0))
	return math.Sqrt(num / den)
}
