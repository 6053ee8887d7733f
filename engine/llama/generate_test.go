package llama_test

import (
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/backend"
	"loramix/engine/checkpoint"
	"loramix/engine/cpu"
	"loramix/engine/llama"
)

var _ = Describe("generation and precision options", Ordered, func() {
	const name = "llama-gqa"
	var g *golden
	var m *llama.Model
	BeforeAll(func() {
		g = loadGolden(name)
		DeferCleanup(g.Logits.Close)
		m = load(name, llama.Options{}, 2)
	})

	It("gives the same logits when a step is split into chunks of MaxTokens", func() {
		small := load(name, llama.Options{MaxTokens: 4}, 1)
		got, err := small.Logits(g.Seqs)
		Expect(err).NotTo(HaveOccurred())
		for i := range g.Seqs {
			Expect(relErr(got[i], want(g, "batch.s"+string(rune('0'+i))))).To(BeNumerically("<", tol))
		}
	})

	It("keeps fp16 weights and fp16 compute close to fp32", func() {
		want := want(g, "base.s0")
		h := load(name, llama.Options{Quant: llama.FP16}, 2)
		got, err := h.Logits(g.Seqs[:1])
		Expect(err).NotTo(HaveOccurred())
		e16 := relErr(got[0], want)
		Expect(e16).To(And(BeNumerically(">", 1e-6), BeNumerically("<", 5e-3)))

		dir := tinyDir + "/" + name
		cfg, err := checkpoint.LoadConfig(dir)
		Expect(err).NotTo(HaveOccurred())
		w, err := checkpoint.OpenWeights(dir)
		Expect(err).NotTo(HaveOccurred())
		defer w.Close()
		hc, err := llama.Load(cpu.New(cpu.Options{Compute: backend.F16}), cfg, w, llama.Options{Quant: llama.FP16})
		Expect(err).NotTo(HaveOccurred())
		got, err = hc.Logits(g.Seqs[:1])
		Expect(err).NotTo(HaveOccurred())
		ec := relErr(got[0], want)
		AddReportEntry("fp16 weights / fp16 compute rel err", []float64{e16, ec})
		Expect(ec).To(And(BeNumerically(">", e16), BeNumerically("<", 2e-2)))
	})

	It("samples deterministically for a seed; top-k 1 is greedy", func() {
		opts := llama.GenOptions{MaxNewTokens: 15, Temperature: 1.3, TopP: 0.95, TopK: 50, Seed: 42, EOS: []int32{}}
		a, err := m.Generate(g.Seqs, opts)
		Expect(err).NotTo(HaveOccurred())
		b, err := m.Generate(g.Seqs, opts)
		Expect(err).NotTo(HaveOccurred())
		Expect(ids(a)).To(Equal(ids(b)))
		opts.Seed = 43
		c, err := m.Generate(g.Seqs, opts)
		Expect(err).NotTo(HaveOccurred())
		Expect(ids(c)).NotTo(Equal(ids(a)))
		Expect(a[0].IDs).NotTo(Equal(g.Greedy[0][:15]))

		greedy, err := m.Generate(g.Seqs, llama.GenOptions{MaxNewTokens: 15, Temperature: 0.7, TopK: 1, Seed: 1, EOS: []int32{}})
		Expect(err).NotTo(HaveOccurred())
		Expect(greedy[0].IDs).To(Equal(g.Greedy[0][:15]))
		Expect(greedy[1].IDs).To(Equal(g.Greedy[1][:15]))
	})

	It("stops at EOS, at a stop string and at max_new_tokens", func() {
		s := g.Seqs[0]
		k := 2 // the first position whose token did not come before
		for slices.Contains(g.Greedy[0][:k], g.Greedy[0][k]) {
			k++
		}
		r, err := m.Generate([][]int32{s}, llama.GenOptions{MaxNewTokens: 20, EOS: []int32{g.Greedy[0][k]}})
		Expect(err).NotTo(HaveOccurred())
		Expect(r[0].IDs).To(Equal(g.Greedy[0][:k+1]))
		Expect(r[0].Reason).To(Equal("eos"))

		decode := func(ids []int32) string {
			var b strings.Builder
			for _, id := range ids {
				b.WriteString("<" + string(rune('a'+id%26)) + ">")
			}
			return b.String()
		}
		stop := decode(g.Greedy[0][4:6])
		r, err = m.Generate([][]int32{s}, llama.GenOptions{MaxNewTokens: 20, EOS: []int32{}, StopStrings: []string{stop}, Decode: decode})
		Expect(err).NotTo(HaveOccurred())
		Expect(r[0].Reason).To(Equal("stop"))
		Expect(decode(r[0].IDs)).To(HaveSuffix(stop))
		Expect(len(r[0].IDs)).To(BeNumerically("<=", 6))

		r, err = m.Generate([][]int32{s}, llama.GenOptions{MaxNewTokens: 4, EOS: []int32{}})
		Expect(err).NotTo(HaveOccurred())
		Expect(r[0].IDs).To(Equal(g.Greedy[0][:4]))
		Expect(r[0].Reason).To(Equal("length"))

		_, err = m.Generate([][]int32{s}, llama.GenOptions{StopStrings: []string{"x"}})
		Expect(err).To(MatchError(ContainSubstring("tokenizer")))
	})

	It("returns errors for bad token ids and empty prompts", func() {
		_, err := m.Logits([][]int32{{1, 9999}})
		Expect(err).To(MatchError(ContainSubstring("outside the vocabulary")))
		_, err = m.Generate([][]int32{{}}, llama.GenOptions{})
		Expect(err).To(MatchError(ContainSubstring("empty")))
	})
})
