package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"loramix/suites/sweep"
)

func init() {
	register("search", "find adapter weights that maximize an objective: search --adapter N=DIR... --task T... --objective \"maximize bleu(fren) subject to length_words(oasst) >= 40\" --out DIR",
		func(args []string) error { return runSearch(args, os.Stdout) })
}

func runSearch(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("search", flag.ContinueOnError)
	setup := evalFlags(fs)
	method := fs.String("method", "svd", "combination type (svd-exact for the exact mode)")
	objective := fs.String("objective", "", `what to optimize, e.g. "maximize bleu(fren) subject to length_words(oasst) >= 40"`)
	penalty := fs.Float64("penalty", sweep.DefaultPenalty, "score lost per unit of constraint violation")
	bounds := fs.String("bounds", "0:1", "weight bounds LO:HI for every adapter, or one LO:HI per adapter, comma-separated")
	start := fs.String("start", "", "first weights tried, comma-separated (default: the middle of the bounds)")
	budget := fs.Int("budget", 40, "most systems evaluated")
	optimizer := fs.String("optimizer", "neldermead", "neldermead or cmaes")
	resolution := fs.Float64("resolution", 0.01, "weights are rounded to multiples of this")
	seed := fs.Uint64("seed", 1, "seed of CMA-ES's sampling")
	out := fs.String("out", "", "directory for search.jsonl: every evaluated system's records (a restarted search reuses them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return errors.New("--out DIR is required")
	}
	if *objective == "" {
		return errors.New(`--objective is required, e.g. "maximize bleu(fren) subject to length_words(oasst) >= 40"`)
	}
	obj, err := sweep.ParseObjective(*objective)
	if err != nil {
		return err
	}
	obj.Penalty = *penalty
	names, err := setup.adapterNames()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("name the adapters to weigh with --adapter NAME=DIR")
	}
	if _, err := sweep.ParseMethods(*method); err != nil {
		return err
	}
	lo, hi, err := parseBounds(*bounds, len(names))
	if err != nil {
		return err
	}
	var first []float64
	if *start != "" {
		if first, err = parseFloats(*start); err != nil {
			return fmt.Errorf("--start: %w", err)
		}
	}

	evaluate, err := setup.evaluator()
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := writeInfo(filepath.Join(*out, "search-info.json"), setup, map[string]any{
		"method": *method, "objective": obj.String(), "penalty": obj.Penalty, "bounds": *bounds,
		"budget": *budget, "optimizer": *optimizer, "resolution": *resolution, "seed": *seed}); err != nil {
		return err
	}
	path := filepath.Join(*out, "search.jsonl")
	j, err := sweep.OpenJournal(path)
	if err != nil {
		return err
	}
	defer j.Close()

	res, err := sweep.Search(ctx, sweep.SearchSpec{
		Adapters: names, Method: *method, Objective: obj,
		Lower: lo, Upper: hi, Budget: *budget, Start: first,
		Optimizer: *optimizer, Resolution: *resolution, Seed: *seed,
	}, j.Cached(evaluate))
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted; run the same command again to carry on from %s", path)
	}
	if err != nil {
		return err
	}
	printSearch(stdout, res, obj, path)
	return nil
}

func printSearch(w io.Writer, res *sweep.SearchResult, obj sweep.Objective, path string) {
	fmt.Fprintf(w, "objective: %s\n", obj)
	fmt.Fprintf(w, "evaluated %d systems (%s); records in %s\n", len(res.Trials), res.Stopped, path)
	feasible := "meets every constraint"
	if !res.Best.Feasible {
		feasible = "VIOLATES a constraint (no evaluated system met them all)"
	}
	fmt.Fprintf(w, "best: %s  score %.4g, %s\n", res.Best.System.Key(), res.Best.Score, feasible)
	for _, ref := range append([]sweep.MetricRef{obj.Target}, constraintRefs(obj)...) {
		if v, err := ref.Value(res.Best.Records); err == nil {
			fmt.Fprintf(w, "  %-28s %.4g\n", ref, v)
		}
	}
	if len(res.Front) > 0 {
		fmt.Fprintf(w, "Pareto front of %s against %s (%d systems):\n", obj.Target, obj.Constraints[0].Ref, len(res.Front))
		for _, p := range res.Front {
			fmt.Fprintf(w, "  %-36s %10.4g %10.4g\n", p.Label, p.X, p.Y)
		}
	}
}

func constraintRefs(o sweep.Objective) []sweep.MetricRef {
	var out []sweep.MetricRef
	for _, c := range o.Constraints {
		out = append(out, c.Ref)
	}
	return out
}

// parseBounds reads "LO:HI" (for every adapter) or one "LO:HI" per adapter,
// comma-separated.
func parseBounds(s string, n int) (lo, hi []float64, err error) {
	parts := strings.Split(s, ",")
	if len(parts) != 1 && len(parts) != n {
		return nil, nil, fmt.Errorf("--bounds %q: want LO:HI or %d of them", s, n)
	}
	for i := 0; i < n; i++ {
		p := parts[0]
		if len(parts) == n {
			p = parts[i]
		}
		a, b, ok := strings.Cut(p, ":")
		l, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
		h, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
		if !ok || err1 != nil || err2 != nil || l > h {
			return nil, nil, fmt.Errorf("--bounds %q: %q is not LO:HI with LO <= HI", s, p)
		}
		lo, hi = append(lo, l), append(hi, h)
	}
	return lo, hi, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, v)
	}
	return out, nil
}
