package metrics

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// DefaultResamples is sacreBLEU's number of bootstrap resamples.
const DefaultResamples = 1000

// DefaultSeed is sacreBLEU's default seed (SACREBLEU_SEED=12345).
const DefaultSeed = 12345

// CI is a bootstrap estimate of a corpus score.
type CI struct {
	Score     float64 // the score on the original corpus
	Mean      float64 // mean over resamples
	Low, High float64 // the 95% interval: order statistics n/40 and n-1-n/40
	HalfWidth float64 // (High-Low)/2, what sacreBLEU prints after "±"
	Samples   int
}

// resampleIndices draws samples x n indices in [0, n) with replacement from
// a PCG generator seeded by seed, so that paired tests resample both systems
// identically.
func resampleIndices(samples, n int, seed uint64) [][]int {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	idx := make([][]int, samples)
	for s := range idx {
		row := make([]int, n)
		for i := range row {
			row[i] = rng.IntN(n)
		}
		idx[s] = row
	}
	return idx
}

// resampledScores scores stats summed over each index row.
func resampledScores(m Metric, stats [][]int, idx [][]int) []float64 {
	out := make([]float64, len(idx))
	sum := make([]int, len(stats[0]))
	for s, row := range idx {
		clear(sum)
		for _, i := range row {
			for j, x := range stats[i] {
				sum[j] += x
			}
		}
		out[s] = m.ScoreStats(sum)
	}
	return out
}

// estimateCI is sacreBLEU's estimate_ci: mean and the interval between the
// order statistics n/40 and n-1-n/40 of the sorted scores.
func estimateCI(scores []float64) (mean, low, high float64) {
	sorted := slices.Clone(scores)
	slices.Sort(sorted)
	n := len(sorted)
	lo := n / 40
	for _, x := range sorted {
		mean += x
	}
	return mean / float64(n), sorted[lo], sorted[n-lo-1]
}

// Bootstrap estimates a 95% confidence interval of the corpus score of one
// system from its per-segment statistics (see CorpusStats) with samples
// resamples of the segments drawn with seed. samples must be positive.
func Bootstrap(m Metric, stats [][]int, samples int, seed uint64) (CI, error) {
	if len(stats) == 0 || samples <= 0 {
		return CI{}, fmt.Errorf("metrics: bootstrap %s: need segments and samples > 0 (have %d, %d)", m.Name(), len(stats), samples)
	}
	scores := resampledScores(m, stats, resampleIndices(samples, len(stats), seed))
	mean, lo, hi := estimateCI(scores)
	return CI{Score: m.ScoreStats(SumStats(stats)), Mean: mean, Low: lo, High: hi, HalfWidth: 0.5 * (hi - lo), Samples: samples}, nil
}

// Paired is the result of a paired bootstrap test of a system against a
// baseline on the same segments.
type Paired struct {
	Baseline, System CI
	// Diff is System.Score - Baseline.Score on the full corpus.
	Diff float64
	// PValue is the probability, under the null hypothesis that the systems
	// are equally good, of a difference at least as large as |Diff|:
	// (1 + #{ |d_s| - mean|d| >= |Diff| }) / (1 + samples), where d_s is the
	// difference on resample s (sacreBLEU's paired_bs, after Koehn 2004).
	// sacreBLEU counts with '>' instead, which gives identical systems the
	// smallest p-value, 1/(1+samples); with '>=' they get 1. The two agree
	// whenever no resampled difference ties |Diff| exactly.
	PValue float64
}

// PairedBootstrap compares system against baseline (per-segment statistics
// of the same segments, in the same order) with sacreBLEU's paired bootstrap
// resampling: both are resampled with the same indices.
func PairedBootstrap(m Metric, baseline, system [][]int, samples int, seed uint64) (Paired, error) {
	if len(baseline) != len(system) {
		return Paired{}, fmt.Errorf("metrics: paired bootstrap %s: baseline has %d segments, system %d", m.Name(), len(baseline), len(system))
	}
	if len(system) == 0 || samples <= 0 {
		return Paired{}, fmt.Errorf("metrics: paired bootstrap %s: need segments and samples > 0 (have %d, %d)", m.Name(), len(system), samples)
	}
	idx := resampleIndices(samples, len(system), seed)
	bl := resampledScores(m, baseline, idx)
	sy := resampledScores(m, system, idx)

	var p Paired
	for i, sc := range [][]float64{bl, sy} {
		st := [][][]int{baseline, system}[i]
		mean, lo, hi := estimateCI(sc)
		ci := CI{Score: m.ScoreStats(SumStats(st)), Mean: mean, Low: lo, High: hi, HalfWidth: 0.5 * (hi - lo), Samples: samples}
		if i == 0 {
			p.Baseline = ci
		} else {
			p.System = ci
		}
	}
	p.Diff = p.System.Score - p.Baseline.Score
	real := abs(p.Diff)

	diffs := make([]float64, samples)
	meanDiff := 0.0
	for s := range diffs {
		diffs[s] = abs(sy[s] - bl[s])
		meanDiff += diffs[s]
	}
	meanDiff /= float64(samples)
	c := 0
	for _, d := range diffs {
		if d-meanDiff >= real {
			c++
		}
	}
	p.PValue = float64(c+1) / float64(samples+1)
	return p, nil
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
