package llama_test

import (
	"fmt"
	"path/filepath"
	"sort"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/adapter"
	"loramix/engine/llama"
)

func loadAdapter(model, name string) *adapter.Adapter {
	a, err := adapter.Load(filepath.Join(tinyDir, model, "adapters", name))
	Expect(err).NotTo(HaveOccurred())
	return a
}

var _ = Describe("LoRA on the fly against PEFT (goldens from reference/parity.py)", func() {
	for _, name := range models {
		Context(name, Ordered, func() {
			var g *golden
			var m *llama.Model
			var names []string
			BeforeAll(func() {
				g = loadGolden(name)
				DeferCleanup(g.Logits.Close)
				m = load(name, llama.Options{}, 2)
				for a := range g.Adapters {
					names = append(names, a)
				}
				sort.Strings(names)
				Expect(names).NotTo(BeEmpty())
				for _, a := range names { // all loaded at once, as PEFT's load_adapter
					Expect(m.AddAdapter(loadAdapter(name, a))).To(Succeed())
				}
			})

			It("matches PEFT's logits and greedy tokens for each adapter, switching without reload", func() {
				for round := 0; round < 2; round++ {
					for _, a := range names {
						Expect(m.SetActive(a)).To(Succeed())
						got, err := m.Logits(g.Seqs)
						Expect(err).NotTo(HaveOccurred())
						for i := range g.Seqs {
							e := relErr(got[i], want(g, fmt.Sprintf("%s.s%d", a, i)))
							Expect(e).To(BeNumerically("<", tol), "%s s%d", a, i)
							Expect(relErr(got[i], want(g, fmt.Sprintf("base.s%d", i)))).To(BeNumerically(">", 1e-3))
						}
						for i, s := range g.Seqs {
							res, err := m.Generate([][]int32{s}, llama.GenOptions{MaxNewTokens: g.NewTokens, EOS: []int32{g.EOS}})
							Expect(err).NotTo(HaveOccurred())
							Expect(res[0].IDs).To(Equal(g.Adapters[a].Greedy[i]), "%s s%d", a, i)
						}
					}
				}
				Expect(m.SetActive(llama.Base)).To(Succeed())
				got, err := m.Logits(g.Seqs[:1])
				Expect(err).NotTo(HaveOccurred())
				Expect(relErr(got[0], want(g, "base.s0"))).To(BeNumerically("<", tol))
			})

			It("applies a different adapter to each sequence of one batch", func() {
				Expect(m.SetActive(llama.Base)).To(Succeed())
				// sequence 0 with the first adapter, sequence 1 with the base model,
				// then sequence 1 with the last adapter.
				res, err := m.Generate(g.Seqs, llama.GenOptions{MaxNewTokens: g.NewTokens, EOS: []int32{g.EOS},
					Adapters: []string{names[0], llama.Base}})
				Expect(err).NotTo(HaveOccurred())
				Expect(res[0].IDs).To(Equal(g.Adapters[names[0]].Greedy[0]))
				Expect(res[1].IDs).To(Equal(g.Greedy[1]))
				last := names[len(names)-1]
				res, err = m.Generate(g.Seqs, llama.GenOptions{MaxNewTokens: g.NewTokens, EOS: []int32{g.EOS},
					Adapters: []string{llama.Base, last}})
				Expect(err).NotTo(HaveOccurred())
				Expect(res[0].IDs).To(Equal(g.Greedy[0]))
				Expect(res[1].IDs).To(Equal(g.Adapters[last].Greedy[1]))
			})

			It("merges an adapter into fp32 weights without changing the output, and into NF4 at a measured cost", func() {
				a := names[0]
				want := want(g, a+".s0")
				merged := load(name, llama.Options{}, 1)
				Expect(merged.AddAdapter(loadAdapter(name, a))).To(Succeed())
				n, err := merged.Merge(a)
				Expect(err).NotTo(HaveOccurred())
				Expect(n).To(BeNumerically(">", 0))
				Expect(merged.Adapters()).To(BeEmpty())
				got, err := merged.Logits(g.Seqs[:1])
				Expect(err).NotTo(HaveOccurred())
				Expect(relErr(got[0], want)).To(BeNumerically("<", tol))

				q := load(name, llama.Options{Quant: llama.NF4}, 1)
				Expect(q.AddAdapter(loadAdapter(name, a))).To(Succeed())
				Expect(q.SetActive(a)).To(Succeed())
				onTheFly, err := q.Logits(g.Seqs[:1])
				Expect(err).NotTo(HaveOccurred())
				_, err = q.Merge(a)
				Expect(err).NotTo(HaveOccurred())
				requant, err := q.Logits(g.Seqs[:1])
				Expect(err).NotTo(HaveOccurred())
				eFly, eMerged := relErr(onTheFly[0], want), relErr(requant[0], want)
				AddReportEntry(name+" NF4 vs fp32 PEFT logits: on the fly / merged+requantized", []float64{eFly, eMerged})
				// The tiny random models are very sensitive to NF4 (about 0.25 relative
				// logit error already); requantizing after the merge rounds the
				// adapter's delta too, which costs more.
				Expect(eFly).To(BeNumerically("<", 0.5))
				Expect(eMerged).To(BeNumerically(">", eFly))
				Expect(eMerged).To(BeNumerically("<", 1))
			})

			It("refuses unknown adapters and reserved names", func() {
				Expect(m.SetActive("nope")).To(MatchError(ContainSubstring(`no adapter "nope"`)))
				Expect(m.AddAdapter(loadAdapter(name, names[0]))).To(MatchError(ContainSubstring("already loaded")))
			})
		})
	}
})
