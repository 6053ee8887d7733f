package matchers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/adapter"
	"loramix/engine/merge"
	. "loramix/suites/matchers"
	"loramix/suites/results"
)

type fakeMerged map[string][]float64

func (f fakeMerged) SingularValues() map[string][]float64 { return f }

func rec(bleu, loop float64, lengths []int, routing map[string]float64) results.Record {
	return results.Record{
		System:  results.System{Adapters: []string{"fren", "oasst"}, Method: "svd", Weights: []float64{0.2, 1}},
		Task:    "fren",
		Samples: len(lengths),
		Lengths: lengths,
		Routing: routing,
		Metrics: map[string]results.Metric{
			"bleu":      {Value: bleu, CILow: bleu - 1, CIHigh: bleu + 1, HigherIsBetter: true},
			"loop_rate": {Value: loop},
		},
		Worst: []results.Example{{Prompt: "Tu es le seul client du magasin. ###>", Output: "###> You are###> You are", Reference: "You are the only customer in the store.", Score: 0.1}},
	}
}

var _ = Describe("rank matchers", func() {
	It("counts singular values above the relative tolerance", func() {
		Expect(NumericalRank([]float64{3, 2, 1e-9, 0}, DefaultRankTol)).To(Equal(2))
		Expect(NumericalRank(nil, DefaultRankTol)).To(Equal(0))
	})
	It("checks every module and names the ones that fail", func() {
		m := fakeMerged{"layers.0.mlp.up_proj": {5, 4, 3}, "layers.1.mlp.up_proj": {5, 1e-12, 0}}
		Expect(m).NotTo(HaveRank(3))
		Expect(m).To(HaveRankAtMost(3))
		Expect(m).NotTo(HaveRankAtMost(2))
		matcher := HaveRank(3)
		ok, err := matcher.Match(m)
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeFalse())
		Expect(matcher.FailureMessage(m)).To(And(ContainSubstring("layers.1.mlp.up_proj: rank 1"), Not(ContainSubstring("layers.0"))))
		Expect([]float64{2, 1}).To(HaveRank(2))
	})
	It("refuses values it cannot rank", func() {
		_, err := HaveRank(1).Match("nope")
		Expect(err).To(MatchError(ContainSubstring("not string")))
	})
})

var _ = Describe("record matchers", func() {
	r := rec(14.2, 0.3, []int{1, 9, 3, 7}, map[string]float64{"fren": 0.4, "oasst": 0.6})

	It("checks BLEU and shows the numbers and worst examples on failure", func() {
		Expect(r).To(HaveBLEUAtLeast(14))
		m := HaveBLEUAtLeast(20)
		ok, err := m.Match(&r)
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeFalse())
		msg := m.FailureMessage(&r)
		Expect(msg).To(ContainSubstring("BLEU of at least 20.00"))
		Expect(msg).To(ContainSubstring("14.200"))
		Expect(msg).To(ContainSubstring("svd[0.2,1](fren,oasst)"))
		Expect(msg).To(ContainSubstring("###> You are"))
	})
	It("routes by the shares of outputs attributed to each adapter", func() {
		Expect(r).NotTo(RouteTo("oasst")) // 60% is not twice fren's 40%
		Expect(r).NotTo(RouteTo("fren"))
		Expect(r).To(RouteToAtLeast("fren", 0.4))
		clear := rec(1, 0, nil, map[string]float64{"oasst": 0.46, "clash": 0.15, "fren": 0.03, "tie": 0.36})
		Expect(clear).To(RouteTo("oasst"))
		Expect(clear).NotTo(RouteTo("clash"))
		silent := rec(1, 0, nil, map[string]float64{"fren": 0.04, "tie": 0.96})
		Expect(silent).NotTo(RouteTo("fren")) // ties outweigh it
		m := RouteTo("fren")
		m.Match(r)
		Expect(m.FailureMessage(r)).To(ContainSubstring("fren 40%"))
	})
	It("takes the median length with a nested matcher or a number", func() {
		Expect(Median([]int{1, 9, 3, 7})).To(Equal(5.0))
		Expect(Median([]int{4, 1, 9})).To(Equal(4.0))
		Expect(r).To(HaveMedianLength(BeNumerically(">=", 5)))
		Expect(r).To(HaveMedianLength(5))
		m := HaveMedianLength(BeNumerically(">", 10))
		ok, _ := m.Match(r)
		Expect(ok).To(BeFalse())
		Expect(m.FailureMessage(r)).To(ContainSubstring("median response length 5"))
	})
	It("fails NotRepeat on looping outputs", func() {
		Expect(r).NotTo(NotRepeat())
		Expect(r).To(NotRepeatMoreThan(0.5))
		Expect(rec(1, 0, []int{1}, nil)).To(NotRepeat())
	})
	It("compares against a baseline in each metric's worse direction", func() {
		base := rec(15, 0.3, nil, nil)
		Expect(r).To(StayWithin(base, 0.1))     // 14.2 is within 10% of 15
		Expect(r).NotTo(StayWithin(base, 0.01)) // but not within 1%
		base = rec(15, 0.2, nil, nil)
		worseLoops := rec(15, 0.5, nil, nil)
		m := StayWithin(base, 0.2)
		ok, _ := m.Match(worseLoops)
		Expect(ok).To(BeFalse())
		Expect(m.FailureMessage(worseLoops)).To(ContainSubstring("loop_rate: 0.200 -> 0.500"))
	})
	It("reports a missing metric as an error", func() {
		_, err := HaveBLEUAtLeast(1).Match(results.Record{Task: "oasst", Metrics: map[string]results.Metric{}})
		Expect(err).To(MatchError(ContainSubstring(`no metric "bleu"`)))
	})
})

var _ = Describe("rank of adapters", func() {
	It("reads each module's rank from the LoRA factors", func() {
		shapes := merge.MLPShapes(2, 16, 24)
		a := merge.RandomAdapter("a", shapes, 4, 8, 1)
		b := merge.RandomAdapter("b", shapes, 4, 8, 2)
		Expect(a).To(HaveRank(4))
		res, err := merge.Merge([]*adapter.Adapter{a, b}, merge.Options{Method: merge.Method("cat"), Weights: []float64{1, 1}})
		Expect(err).NotTo(HaveOccurred())
		Expect(res).To(HaveRank(8))
		res, err = merge.Merge([]*adapter.Adapter{a, b}, merge.Options{Method: merge.Method("svd"), Weights: []float64{1, 1}, SVDRank: 3})
		Expect(err).NotTo(HaveOccurred())
		Expect(res).To(HaveRankAtMost(3))
		Expect(res).NotTo(HaveRankAtMost(2))
	})
})
