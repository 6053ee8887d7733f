package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"loramix/engine/adapter"
	"loramix/engine/merge"
)

// `loramix rank DIR` prints each module's singular values and numerical rank,
// computed from the factors without forming the full update.
func init() {
	register("rank", "singular values and numerical rank of each module's update: rank [--tol T] DIR",
		func(args []string) error { return runRank(args, os.Stdout) })
}

func runRank(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("rank", flag.ContinueOnError)
	tol := fs.Float64("tol", 0, "relative tolerance: count singular values above tol * the largest (default max(out, in) * machine epsilon)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("give one adapter directory")
	}
	a, err := adapter.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: %d modules, r=%d, lora_alpha=%g\n", a.Dir, len(a.Modules), a.Config.R, a.Config.LoraAlpha)
	minRank, maxRank := -1, 0
	for _, name := range a.ModuleNames() {
		m := a.Modules[name]
		s := merge.Spectrum(m)
		rank := s.Rank(*tol)
		vals := make([]string, len(s.S))
		for i, v := range s.S {
			vals[i] = formatG(v)
		}
		fmt.Fprintf(w, "%s (%dx%d, r=%d): rank %d; singular values %s\n", name, m.Out, m.In, m.R, rank, strings.Join(vals, " "))
		if minRank < 0 || rank < minRank {
			minRank = rank
		}
		maxRank = max(maxRank, rank)
	}
	fmt.Fprintf(w, "numerical rank: %d to %d over %d modules\n", minRank, maxRank, len(a.Modules))
	return nil
}

func formatG(v float64) string { return fmt.Sprintf("%.4g", v) }
