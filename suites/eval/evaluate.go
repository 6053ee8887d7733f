package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"loramix/suites/metrics"
	"loramix/suites/results"
	"loramix/suites/tasks"
)

// BootstrapSamples is the number of resamples behind every confidence
// interval (sacreBLEU's default).
const BootstrapSamples = 1000

// AttributionMargin is the chrF margin under which an output counts as a
// tie between two single-adapter outputs.
const AttributionMargin = 2.0

// Evaluate runs task on examples under every system and scores each
// system's outputs with the task's metrics. Each record's Routing holds the
// share of outputs attributed (by chrF, see metrics.Attribute) to each
// single adapter's output on the same prompt, or to "tie": a combination's
// outputs are compared with its own adapters' outputs, the base's and a
// single adapter's with every input adapter's. The single adapters are run
// too when systems lack them (their records are returned only if asked for).
func (s *Session) Evaluate(task *tasks.Task, examples []tasks.Example, systems []results.System, progress func(done, total int)) ([]results.Record, error) {
	if len(examples) == 0 {
		return nil, fmt.Errorf("task %s: no examples", task.Name)
	}
	run := append([]results.System(nil), systems...)
	for _, n := range s.Names {
		single := results.System{Adapters: []string{n}}
		if !slices.ContainsFunc(run, func(x results.System) bool { return x.Key() == single.Key() }) {
			run = append(run, single)
		}
	}
	var reqs []Request
	for _, sys := range run {
		for _, ex := range examples {
			reqs = append(reqs, Request{System: sys, Prompt: ex.Prompt})
		}
	}
	start := time.Now()
	var prog func(int)
	if progress != nil {
		prog = func(done int) { progress(done, len(reqs)) }
	}
	gens, err := s.Generate(reqs, task.MaxNewTokens, task.Stop, prog)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", task.Name, err)
	}
	elapsed := time.Since(start).Seconds()
	totalTokens := 0
	for _, g := range gens {
		totalTokens += len(g.IDs)
	}
	n := len(examples)
	outputs := func(i int) []Generation { return gens[i*n : (i+1)*n] }
	singles := map[string][]Generation{}
	for i, sys := range run {
		if len(sys.Adapters) == 1 && sys.Method == "" {
			singles[sys.Adapters[0]] = outputs(i)
		}
	}
	var recs []results.Record
	for i, sys := range systems {
		rec, err := score(task, examples, sys, outputs(i), singles)
		if err != nil {
			return nil, err
		}
		if totalTokens > 0 {
			rec.Seconds = elapsed * float64(rec.Tokens) / float64(totalTokens)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// score computes one system's record from its outputs.
func score(task *tasks.Task, examples []tasks.Example, sys results.System, outs []Generation, singles map[string][]Generation) (results.Record, error) {
	rec := results.Record{System: sys, Task: task.Name, TaskVersion: string(task.Version), Samples: len(examples), Metrics: map[string]results.Metric{}}
	hyps := make([]string, len(outs))
	refs := make([]string, len(outs))
	sentence := make([]float64, len(outs)) // per-example quality, for the worst examples
	for i, g := range outs {
		hyps[i], refs[i] = g.Text, examples[i].Reference
		rec.Tokens += len(g.IDs)
		rec.Lengths = append(rec.Lengths, metrics.WordCount(g.Text))
	}
	hasQuality := false
	for _, spec := range task.Metrics {
		m, err := compute(spec, task, examples, hyps, refs, rec.Lengths, outs)
		if err != nil {
			return rec, fmt.Errorf("task %s, system %s, metric %s: %w", task.Name, sys.Key(), spec.Name, err)
		}
		m.HigherIsBetter = spec.Higher()
		rec.Metrics[spec.Name] = m
		if spec.Name == "bleu" || spec.Name == "chrf" {
			hasQuality = true
		}
	}
	// Worst examples: lowest sentence chrF for reference tasks, shortest
	// answers otherwise.
	for i := range hyps {
		if hasQuality {
			sentence[i] = metrics.SentenceCHRF(hyps[i], refs[i]).Score
		} else {
			sentence[i] = float64(rec.Lengths[i])
		}
	}
	order := make([]int, len(hyps))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return sentence[order[a]] < sentence[order[b]] })
	for _, i := range order[:min(5, len(order))] {
		rec.Worst = append(rec.Worst, results.Example{Prompt: examples[i].Prompt, Output: hyps[i], Reference: refs[i], Score: sentence[i]})
	}
	// Routing by attribution: is each output closer to one input adapter's
	// output on the same prompt than to the others'? A combination is
	// compared with its own adapters; the base and single adapters with
	// every input adapter.
	if len(singles) > 0 {
		rec.Routing = map[string]float64{}
		names := sys.Adapters
		if sys.Method == "" {
			names = nil
			for name := range singles {
				names = append(names, name)
			}
		}
		for i := range hyps {
			cands := map[string]string{}
			for _, name := range names {
				cands[name] = singles[name][i].Text
			}
			rec.Routing[metrics.Attribute(hyps[i], cands, AttributionMargin).Closest] += 1 / float64(len(hyps))
		}
	}
	return rec, nil
}

// compute evaluates one metric spec with its uncertainty.
func compute(spec tasks.MetricSpec, task *tasks.Task, examples []tasks.Example, hyps, refs []string, words []int, outs []Generation) (results.Metric, error) {
	switch spec.Name {
	case "bleu", "chrf", "chrf++":
		var m metrics.Metric = metrics.BLEU{}
		switch spec.Name {
		case "chrf":
			m = metrics.ChrF
		case "chrf++":
			m = metrics.ChrFPlusPlus
		}
		stats, err := metrics.CorpusStats(m, hyps, [][]string{refs})
		if err != nil {
			return results.Metric{}, err
		}
		ci, err := metrics.Bootstrap(m, stats, BootstrapSamples, metrics.DefaultSeed)
		if err != nil {
			return results.Metric{}, err
		}
		return results.Metric{Value: ci.Score, StdErr: ci.HalfWidth / 1.96, CILow: ci.Low, CIHigh: ci.High, N: len(hyps)}, nil
	case "length_words":
		return medianCI(words), nil
	case "length_tokens":
		toks := make([]int, len(outs))
		for i, g := range outs {
			toks[i] = len(g.IDs)
		}
		return medianCI(toks), nil
	case "repetition":
		order := int(spec.Param("order"))
		xs := make([]float64, len(hyps))
		for i, h := range hyps {
			xs[i] = metrics.RepeatedNGramShare(metrics.Words(h), order)
		}
		return meanCI(xs), nil
	case "loop_rate":
		xs := make([]float64, len(hyps))
		for i, h := range hyps {
			if _, ok := metrics.FindTextLoop(h, int(spec.Param("min_chars")), int(spec.Param("min_repeats"))); ok {
				xs[i] = 1
			}
		}
		return meanCI(xs), nil
	case "format_adherence":
		xs := make([]float64, len(hyps))
		for i, h := range hyps {
			if len(task.Checker().Check(h, examples[i].Fields)) == 0 {
				xs[i] = 1
			}
		}
		return meanCI(xs), nil
	}
	return results.Metric{}, fmt.Errorf("loramix eval does not compute metric %q", spec.Name)
}

// meanCI is the mean with a normal-approximation 95% interval.
func meanCI(xs []float64) results.Metric {
	n := float64(len(xs))
	var sum, sq float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / n
	for _, x := range xs {
		sq += (x - mean) * (x - mean)
	}
	se := 0.0
	if n > 1 {
		se = math.Sqrt(sq/(n-1)) / math.Sqrt(n)
	}
	return results.Metric{Value: mean, StdErr: se, CILow: mean - 1.96*se, CIHigh: mean + 1.96*se, N: len(xs)}
}

// medianCI is the median with a seeded bootstrap 95% interval.
func medianCI(xs []int) results.Metric {
	med := metrics.Median(xs)
	rng := rand.New(rand.NewPCG(metrics.DefaultSeed, 1))
	meds := make([]float64, BootstrapSamples)
	buf := make([]int, len(xs))
	for s := range meds {
		for i := range buf {
			buf[i] = xs[rng.IntN(len(xs))]
		}
		meds[s] = metrics.Median(buf)
	}
	sort.Float64s(meds)
	lo, hi := meds[BootstrapSamples/40], meds[BootstrapSamples-1-BootstrapSamples/40]
	return results.Metric{Value: med, StdErr: (hi - lo) / 2 / 1.96, CILow: lo, CIHigh: hi, N: len(xs)}
}
