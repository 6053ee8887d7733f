package sweep_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/results"
	"loramix/suites/sweep"
)

var _ = Describe("ParseGrid", func() {
	DescribeTable("valid grids",
		func(spec string, want []float64) {
			Expect(sweep.ParseGrid(spec)).To(Equal(want))
		},
		Entry("tenths, stop included, no float drift", "0:1:0.1",
			[]float64{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}),
		Entry("stop off the grid", "0:1:0.3", []float64{0, 0.3, 0.6, 0.9}),
		Entry("negative start", "-0.2:0.2:0.2", []float64{-0.2, 0, 0.2}),
		Entry("one value", "0.5", []float64{0.5}),
		Entry("start == stop", "1:1:0.1", []float64{1}),
	)
	DescribeTable("bad grids name the problem",
		func(spec, msg string) {
			_, err := sweep.ParseGrid(spec)
			Expect(err).To(MatchError(ContainSubstring(msg)))
		},
		Entry("reversed", "1:0:0.1", "stop is below start"),
		Entry("zero step", "0:1:0", "step must be positive"),
		Entry("not a number", "0:x:0.1", `"x" is not a number`),
		Entry("two parts", "0:1", "want start:stop:step"),
		Entry("NaN", "0:NaN:0.1", "not a number"),
	)
})

var _ = Describe("ParseMethods", func() {
	It("accepts PEFT types and the exact suffix", func() {
		Expect(sweep.ParseMethods("svd, cat,svd-exact")).To(Equal([]string{"svd", "cat", "svd-exact"}))
	})
	It("refuses unknown types and empty lists", func() {
		_, err := sweep.ParseMethods("svd,avg")
		Expect(err).To(MatchError(ContainSubstring(`method "avg": unknown`)))
		_, err = sweep.ParseMethods(" , ")
		Expect(err).To(HaveOccurred())
	})
})

var _ = Describe("Points", func() {
	grid := []float64{0, 0.5, 1}
	It("is the cartesian product per method, first adapter slowest", func() {
		pts := sweep.Points([]string{"fren", "oasst"}, []string{"svd", "cat-exact"}, grid)
		Expect(pts).To(HaveLen(2 * 3 * 3))
		Expect(pts[0]).To(Equal(results.System{Adapters: []string{"fren", "oasst"}, Method: "svd", Weights: []float64{0, 0}}))
		Expect(pts[1].Weights).To(Equal([]float64{0, 0.5}))
		Expect(pts[3].Weights).To(Equal([]float64{0.5, 0}))
		Expect(pts[9].Method).To(Equal("cat"))
		Expect(pts[9].Exact).To(BeTrue())
		keys := map[string]bool{}
		for _, p := range pts {
			keys[p.Key()] = true
		}
		Expect(keys).To(HaveLen(18))
		Expect(keys).To(HaveKey("svd[0.5,1](fren,oasst)"))
	})
	It("handles three adapters", func() {
		Expect(sweep.Points([]string{"a", "b", "c"}, []string{"cat"}, grid)).To(HaveLen(27))
	})
})

var _ = Describe("Shard", func() {
	pts := sweep.Points([]string{"a", "b"}, []string{"svd", "cat"}, []float64{0, 0.25, 0.5, 0.75, 1})
	DescribeTable("the shards partition the points",
		func(n int) {
			count := map[string]int{}
			for i := 0; i < n; i++ {
				s, err := sweep.ParseShard(sweep.Shard{I: i, N: n}.String())
				Expect(err).NotTo(HaveOccurred())
				part := s.Take(pts)
				Expect(len(part)).To(BeNumerically("~", len(pts)/n, 1))
				for _, p := range part {
					count[p.Key()]++
				}
			}
			Expect(count).To(HaveLen(len(pts)))
			for k, c := range count {
				Expect(c).To(Equal(1), k)
			}
		},
		Entry("1", 1), Entry("2", 2), Entry("3", 3), Entry("7", 7), Entry("more shards than points", 60),
	)
	It("parses and refuses", func() {
		Expect(sweep.ParseShard("")).To(Equal(sweep.Shard{I: 0, N: 1}))
		Expect(sweep.ParseShard("1/4")).To(Equal(sweep.Shard{I: 1, N: 4}))
		for _, bad := range []string{"4/4", "-1/2", "1", "a/b", "0/0"} {
			_, err := sweep.ParseShard(bad)
			Expect(err).To(MatchError(ContainSubstring("want i/n")), bad)
		}
	})
})
