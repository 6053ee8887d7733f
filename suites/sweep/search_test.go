package sweep_test

import (
	"context"
	"math"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/results"
	"loramix/suites/sweep"
)

// quadratic is a smooth objective with its maximum 50 at (x0, y0).
func quadratic(x0, y0 float64, calls *int) sweep.Evaluate {
	return func(ctx context.Context, s results.System) ([]results.Record, error) {
		*calls++
		dx, dy := s.Weights[0]-x0, s.Weights[1]-y0
		v := 50 - 100*(dx*dx+dy*dy)
		return []results.Record{{System: s, Task: "t", Metrics: map[string]results.Metric{
			"score": {Value: v, HigherIsBetter: true},
			"other": {Value: s.Weights[0] + s.Weights[1], HigherIsBetter: true},
		}}}, nil
	}
}

var _ = Describe("ParseObjective", func() {
	It("parses a target and constraints", func() {
		o, err := sweep.ParseObjective("maximize bleu(fren) subject to length_words(oasst) >= 40 and repetition(oasst) <= 0.1")
		Expect(err).NotTo(HaveOccurred())
		Expect(o.Maximize).To(BeTrue())
		Expect(o.Target).To(Equal(sweep.MetricRef{Metric: "bleu", Task: "fren"}))
		Expect(o.Constraints).To(Equal([]sweep.Constraint{
			{Ref: sweep.MetricRef{Metric: "length_words", Task: "oasst"}, AtLeast: true, Bound: 40},
			{Ref: sweep.MetricRef{Metric: "repetition", Task: "oasst"}, AtLeast: false, Bound: 0.1},
		}))
		Expect(o.String()).To(Equal("maximize bleu(fren) subject to length_words(oasst) >= 40 and repetition(oasst) <= 0.1"))
		o, err = sweep.ParseObjective("min chrf(x)")
		Expect(err).NotTo(HaveOccurred())
		Expect(o.Maximize).To(BeFalse())
		Expect(o.Constraints).To(BeEmpty())
	})
	DescribeTable("refuses malformed objectives",
		func(s, msg string) {
			_, err := sweep.ParseObjective(s)
			Expect(err).To(MatchError(ContainSubstring(msg)))
		},
		Entry("no direction", "bleu(fren)", "want \"maximize"),
		Entry("bad constraint", "maximize bleu(fren) subject to len > 3", `constraint "len > 3"`),
		Entry("bad bound", "maximize bleu(fren) s.t. x(y) >= abc", `bound "abc"`),
	)
	It("scores with a penalty per unit of violation", func() {
		recs, _ := sweep.Synthetic([]string{"fren", "oasst"})(context.Background(),
			results.System{Adapters: []string{"fren", "oasst"}, Method: "cat", Weights: []float64{0.8, 0}})
		o, _ := sweep.ParseObjective("maximize bleu(fren) subject to length_words(oasst) >= 100")
		bleu := recs[0].Metrics["bleu"].Value
		median := recs[1].Metrics["length_words"].Value
		Expect(bleu).To(Equal(45.0))
		s, feasible, err := o.Score(recs)
		Expect(err).NotTo(HaveOccurred())
		Expect(feasible).To(BeFalse())
		Expect(s).To(BeNumerically("~", bleu-sweep.DefaultPenalty*(100-median), 1e-9))
		_, _, err = sweep.Objective{Target: sweep.MetricRef{Metric: "bleu", Task: "nope"}}.Score(recs)
		Expect(err).To(MatchError(ContainSubstring(`no record for task "nope"`)))
		_, _, err = sweep.Objective{Target: sweep.MetricRef{Metric: "rouge", Task: "fren"}}.Score(recs)
		Expect(err).To(MatchError(ContainSubstring(`no metric "rouge" (have bleu, chrf, length_words)`)))
	})
	It("derives length_words from lengths", func() {
		v, err := sweep.MetricRef{Metric: "length_words", Task: "t"}.Value([]results.Record{{Task: "t", Lengths: []int{5, 1, 9, 3}}})
		Expect(err).NotTo(HaveOccurred())
		Expect(v).To(Equal(4.0))
		v, err = sweep.MetricRef{Metric: "mean_words", Task: "t"}.Value([]results.Record{{Task: "t", Lengths: []int{5, 1, 9, 3}}})
		Expect(err).NotTo(HaveOccurred())
		Expect(v).To(Equal(4.5))
		By("preferring the recorded metric, also under its alias median_words")
		rec := results.Record{Task: "t", Lengths: []int{5, 1, 9, 3}, Metrics: map[string]results.Metric{"length_words": {Value: 7}}}
		v, err = sweep.MetricRef{Metric: "median_words", Task: "t"}.Value([]results.Record{rec})
		Expect(err).NotTo(HaveOccurred())
		Expect(v).To(Equal(7.0))
	})
})

var _ = Describe("ParetoFront", func() {
	pts := []sweep.Point{{"A", 1, 5}, {"B", 2, 4}, {"C", 3, 3}, {"D", 2, 2}, {"E", 0.5, 5}, {"F", 3, 3}}
	labels := func(ps []sweep.Point) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Label)
		}
		return out
	}
	It("keeps the non-dominated points when both are higher-is-better", func() {
		Expect(labels(sweep.ParetoFront(pts, true, true))).To(Equal([]string{"A", "B", "C", "F"}))
	})
	It("follows the direction of each metric", func() {
		Expect(labels(sweep.ParetoFront(pts, true, false))).To(Equal([]string{"D", "C", "F"}))
		Expect(labels(sweep.ParetoFront(pts, false, false))).To(Equal([]string{"E", "D"}))
	})
	It("is empty for no points", func() {
		Expect(sweep.ParetoFront(nil, true, true)).To(BeEmpty())
	})
})

var _ = Describe("Search", func() {
	spec := func(opt string) sweep.SearchSpec {
		o, err := sweep.ParseObjective("maximize score(t)")
		Expect(err).NotTo(HaveOccurred())
		return sweep.SearchSpec{
			Adapters: []string{"a", "b"}, Method: "svd", Objective: o,
			Lower: []float64{0, 0}, Upper: []float64{1, 1},
			Budget: 150, Optimizer: opt, Resolution: 1e-4, Seed: 1,
		}
	}
	DescribeTable("finds the maximum of a smooth objective",
		func(opt string, budget int, tol float64) {
			calls := 0
			s := spec(opt)
			s.Budget = budget
			res, err := sweep.Search(context.Background(), s, quadratic(0.3, 0.7, &calls))
			Expect(err).NotTo(HaveOccurred())
			Expect(res.Best.System.Weights[0]).To(BeNumerically("~", 0.3, tol))
			Expect(res.Best.System.Weights[1]).To(BeNumerically("~", 0.7, tol))
			Expect(res.Best.Score).To(BeNumerically("~", 50, 100*2*tol*tol))
			Expect(res.Best.System.Method).To(Equal("svd"))
			By("evaluating each distinct system once, within the budget")
			Expect(calls).To(Equal(len(res.Trials)))
			Expect(calls).To(BeNumerically("<=", budget))
			seen := map[string]bool{}
			for _, t := range res.Trials {
				Expect(seen).NotTo(HaveKey(t.System.Key()))
				seen[t.System.Key()] = true
			}
		},
		Entry("Nelder–Mead, precisely and cheaply", "neldermead", 80, 0.005),
		// gonum's CMA-ES is a global method that narrows down slowly.
		Entry("CMA-ES, roughly", "cmaes", 300, 0.1),
	)
	It("stays inside the bounds when the optimum is outside", func() {
		calls := 0
		res, err := sweep.Search(context.Background(), spec(""), quadratic(1.4, -0.2, &calls))
		Expect(err).NotTo(HaveOccurred())
		for _, t := range res.Trials {
			Expect(t.System.Weights[0]).To(BeNumerically(">=", 0))
			Expect(t.System.Weights[0]).To(BeNumerically("<=", 1))
			Expect(t.System.Weights[1]).To(BeNumerically(">=", 0))
			Expect(t.System.Weights[1]).To(BeNumerically("<=", 1))
		}
		Expect(res.Best.System.Weights).To(Equal([]float64{1, 0}))
	})
	It("stops at the budget", func() {
		calls := 0
		s := spec("")
		s.Budget = 7
		res, err := sweep.Search(context.Background(), s, quadratic(0.3, 0.7, &calls))
		Expect(err).NotTo(HaveOccurred())
		Expect(calls).To(Equal(7))
		Expect(res.Stopped).To(Equal("evaluation budget spent"))
	})
	It("meets a floor on chat length, as a grid search would, and reports the Pareto front", func() {
		tasks := []string{"fren", "oasst"}
		o, err := sweep.ParseObjective("maximize bleu(fren) subject to length_words(oasst) >= 50")
		Expect(err).NotTo(HaveOccurred())
		eval := sweep.Synthetic(tasks)

		// The best feasible point of a fine grid.
		grid, _ := sweep.ParseGrid("0:1:0.02")
		bestGrid := math.Inf(-1)
		for _, p := range sweep.Points(tasks, []string{"cat"}, grid) {
			recs, _ := eval(context.Background(), p)
			if s, ok, _ := o.Score(recs); ok && s > bestGrid {
				bestGrid = s
			}
		}

		res, err := sweep.Search(context.Background(), sweep.SearchSpec{
			Adapters: tasks, Method: "cat", Objective: o,
			Lower: []float64{0, 0}, Upper: []float64{1, 1}, Budget: 80, Resolution: 0.01,
		}, eval)
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Best.Feasible).To(BeTrue())
		Expect(res.Best.Score).To(BeNumerically(">=", bestGrid-0.5))
		Expect(res.Front).NotTo(BeEmpty())
		var pts []sweep.Point
		for _, t := range res.Trials {
			b, _ := sweep.MetricRef{Metric: "bleu", Task: "fren"}.Value(t.Records)
			m, _ := sweep.MetricRef{Metric: "length_words", Task: "oasst"}.Value(t.Records)
			pts = append(pts, sweep.Point{Label: t.System.Key(), X: b, Y: m})
		}
		Expect(res.Front).To(Equal(sweep.ParetoFront(pts, true, true)))
	})
	It("resumes from a journal without evaluating anything twice", func() {
		path := filepath.Join(GinkgoT().TempDir(), "search.jsonl")
		run := func(budget int) (*sweep.SearchResult, int) {
			j, err := sweep.OpenJournal(path)
			Expect(err).NotTo(HaveOccurred())
			defer j.Close()
			calls := 0
			s := spec("")
			s.Budget = budget
			res, err := sweep.Search(context.Background(), s, j.Cached(quadratic(0.3, 0.7, &calls)))
			Expect(err).NotTo(HaveOccurred())
			return res, calls
		}
		first, calls := run(12) // as if interrupted after 12 evaluations
		Expect(calls).To(Equal(12))
		second, calls := run(40)
		Expect(calls).To(Equal(40 - 12))
		Expect(second.Trials[:12]).To(HaveLen(12))
		for i := range first.Trials {
			Expect(second.Trials[i].System).To(Equal(first.Trials[i].System))
		}
		f, err := results.Read(path)
		Expect(err).NotTo(HaveOccurred())
		Expect(f.Records).To(HaveLen(40))
	})

	It("stops on cancel and on evaluation errors, and refuses a bad spec", func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		calls := 0
		_, err := sweep.Search(ctx, spec(""), quadratic(0.3, 0.7, &calls))
		Expect(err).To(MatchError(context.Canceled))
		Expect(calls).To(Equal(0))

		failing := func(ctx context.Context, s results.System) ([]results.Record, error) {
			return nil, context.DeadlineExceeded
		}
		_, err = sweep.Search(context.Background(), spec(""), failing)
		Expect(err).To(MatchError(ContainSubstring("search: svd[0.5,0.5](a,b)")))

		s := spec("")
		s.Upper = []float64{1}
		_, err = sweep.Search(context.Background(), s, failing)
		Expect(err).To(MatchError(ContainSubstring("bounds")))
		s = spec("bfgs")
		_, err = sweep.Search(context.Background(), s, failing)
		Expect(err).To(MatchError(ContainSubstring(`optimizer "bfgs"`)))
	})
})
