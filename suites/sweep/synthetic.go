package sweep

import (
	"context"
	"math"
	"slices"

	"loramix/suites/results"
)

// Synthetic returns a deterministic stand-in for a model evaluation, for
// tests and for trying the sweep, search and report machinery without a
// model (`loramix sweep --synthetic`). Its numbers are made up; they only
// behave plausibly: for each task, the adapter named like the task (or the
// task's index modulo the adapter count) is its "own" adapter. BLEU peaks
// when the own weight is 0.8 and falls as the other weights grow; the
// median response length grows with the own weight and shrinks with the
// others; svd loses a little BLEU against cat. Each record carries the
// metrics bleu, chrf and length_words (median words), 24 response lengths and routing
// shares over the behaviours named by the tasks.
func Synthetic(tasks []string) Evaluate {
	return func(ctx context.Context, s results.System) ([]results.Record, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var recs []results.Record
		for ti, task := range tasks {
			own, other := syntheticWeights(s, tasks, ti)
			bleu := math.Max(0, 45-60*(own-0.8)*(own-0.8)-18*other*other)
			if s.Method == "svd" && !s.Exact {
				bleu = math.Max(0, bleu-1.5)
			}
			median := math.Max(1, 8+60*own-25*other)
			lengths := make([]int, 24)
			for i := range lengths {
				// a skewed spread around the median, the same every call
				off := float64(i-12) * (0.15 + 0.02*float64(i%5)) * median / 4
				lengths[i] = int(math.Max(1, math.Round(median+off)))
			}
			routing := map[string]float64{}
			total := own + other
			for tj, t := range tasks {
				share := 1 / float64(len(tasks))
				if total > 0 {
					o, _ := syntheticWeights(s, tasks, tj)
					share = o / total
				}
				routing[t] = math.Round(share*1000) / 1000
			}
			recs = append(recs, results.Record{
				System:      s,
				Task:        task,
				TaskVersion: "synthetic-1",
				Metrics: map[string]results.Metric{
					"bleu":         {Value: bleu, StdErr: 1.2, CILow: bleu - 2.4, CIHigh: bleu + 2.4, HigherIsBetter: true, N: 24},
					"chrf":         {Value: 20 + 0.8*bleu, StdErr: 0.9, CILow: 18.2 + 0.8*bleu, CIHigh: 21.8 + 0.8*bleu, HigherIsBetter: true, N: 24},
					"length_words": {Value: Median(lengths), HigherIsBetter: true, N: 24},
				},
				Samples: 24,
				Lengths: lengths,
				Routing: routing,
				Seconds: 0.5 + 0.01*float64(ti),
				Tokens:  24 * int(median),
			})
		}
		return recs, nil
	}
}

// syntheticWeights splits a system's weights into the weight of the task's
// own adapter (the one named like the task; when no adapter is named like
// any task, the one at the task's index) and the sum of the others'. The
// base has none; a single adapter has weight 1.
func syntheticWeights(s results.System, tasks []string, ti int) (own, other float64) {
	w := s.Weights
	if len(w) != len(s.Adapters) {
		w = make([]float64, len(s.Adapters))
		for i := range w {
			w[i] = 1
		}
	}
	k := slices.Index(s.Adapters, tasks[ti])
	if k < 0 && !slices.ContainsFunc(s.Adapters, func(a string) bool { return slices.Contains(tasks, a) }) {
		k = ti
	}
	for i, x := range w {
		if i == k {
			own = x
		} else {
			other += math.Abs(x)
		}
	}
	return own, other
}
