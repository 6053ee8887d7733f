package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"loramix/engine/adapter"
	"loramix/engine/merge"
)

// `loramix merge` combines adapters the way PEFT's add_weighted_adapter does
// and writes the result as a PEFT adapter directory.
func init() {
	register("merge", "combine adapters (PEFT add_weighted_adapter): merge --adapter NAME=DIR ... --weights W,... --method M --out DIR",
		func(args []string) error { return runMerge(args, os.Stdout) })
}

// repeated collects a repeatable string flag.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func runMerge(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	var specs repeated
	fs.Var(&specs, "adapter", "NAME=DIR of an input adapter (repeat, in weight order)")
	weights := fs.String("weights", "", "comma-separated weights, one per --adapter (negative subtracts)")
	method := fs.String("method", "svd", "combination type: "+methodNames())
	svdRank := fs.Int("svd-rank", 0, "rank of an svd merge (default: the largest input rank)")
	svdClamp := fs.Float64("svd-clamp", 0, "clamp svd factors to this quantile of their entries, in (0, 1] (default: no clamp)")
	density := fs.Float64("density", 0, "fraction kept by ties, dare and magnitude_prune, in (0, 1]")
	sign := fs.String("majority-sign", "total", "majority sign method of ties and dare_ties: total or frequency")
	seed := fs.Uint64("seed", 0, "seed of DARE's random masks")
	exact := fs.Bool("exact", false, "linear/cat: write the exact weighted sum (cat form); svd: its truncated SVD; use_rslora off")
	fullMatrix := fs.Bool("full-matrix", false, "svd: form the full update and use gonum's full SVD (slow; for checks)")
	outDir := fs.String("out", "", "directory to write the merged PEFT adapter to")
	name := fs.String("name", "merged", "the merged adapter's name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(specs) == 0 {
		return fmt.Errorf("--adapter: give at least one NAME=DIR")
	}
	if *outDir == "" {
		return fmt.Errorf("--out: give the directory to write the merged adapter to")
	}
	ws, err := parseWeights(*weights, len(specs))
	if err != nil {
		return err
	}
	ads := make([]*adapter.Adapter, len(specs))
	names := make([]string, len(specs))
	for i, s := range specs {
		n, dir, ok := strings.Cut(s, "=")
		if !ok || n == "" || dir == "" {
			return fmt.Errorf("--adapter %q: want NAME=DIR", s)
		}
		a, err := adapter.Load(dir)
		if err != nil {
			return fmt.Errorf("--adapter %s: %w", n, err)
		}
		a.Name = n
		ads[i], names[i] = a, n
	}
	opts := merge.Options{Method: merge.Method(*method), Weights: ws, SVDRank: *svdRank, SVDClamp: *svdClamp,
		Density: *density, MajoritySign: *sign, Seed: *seed, Exact: *exact, FullMatrix: *fullMatrix,
		CompareLinear: true, Name: *name}
	t0 := time.Now()
	res, err := merge.Merge(ads, opts)
	if err != nil {
		return err
	}
	elapsed := time.Since(t0)
	if err := adapter.Save(*outDir, res.Adapter); err != nil {
		return err
	}
	cfg := res.Adapter.Config
	fmt.Fprintf(w, "merged %s with %s (weights %s)", strings.Join(names, ", "), res.Method, *weights)
	if *exact {
		fmt.Fprint(w, ", exact")
	}
	fmt.Fprintf(w, ": %d modules\n", len(res.Adapter.Modules))
	fmt.Fprintf(w, "new adapter: r=%d, lora_alpha=%g, use_rslora=%t\n", res.Rank, res.Alpha, cfg.UseRSLoRA)
	fmt.Fprintf(w, "merge time: %.3f s\n", elapsed.Seconds())
	if !math.IsNaN(res.TruncRelErr) {
		fmt.Fprintf(w, "svd truncation: relative error %.3g\n", res.TruncRelErr)
	}
	if math.IsNaN(res.LinearRelErr) {
		fmt.Fprintln(w, "linear vs exact: n/a (linear needs equal ranks)")
	} else {
		fmt.Fprintf(w, "linear vs exact: relative error %.3g\n", res.LinearRelErr)
	}
	fmt.Fprintf(w, "wrote %s\n", *outDir)
	return nil
}

func parseWeights(s string, n int) ([]float64, error) {
	if s == "" {
		return nil, fmt.Errorf("--weights: give %d comma-separated weights", n)
	}
	parts := strings.Split(s, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("--weights: %d values for %d adapters", len(parts), n)
	}
	ws := make([]float64, n)
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("--weights: %q is not a number", p)
		}
		ws[i] = v
	}
	return ws, nil
}

func methodNames() string {
	s := make([]string, len(merge.Methods))
	for i, m := range merge.Methods {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}
