package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"loramix/suites/sweep"
)

func init() {
	register("sweep", "evaluate a grid of adapter weights, resumably: sweep --adapter N=DIR... --method svd,cat --weights-grid 0:1:0.1 --task T... --out DIR", runSweep)
}

// evalSetup is what sweep and search need from the model side to evaluate
// systems.
type evalSetup struct {
	Model    string   // checkpoint directory or hub id
	Adapters []string // NAME=DIR, in weight order
	Tasks    []string // task names or task files
	Quant    string   // nf4, fp16 or fp32
}

// systemEvaluator builds the evaluation that sweep and search run. The file
// that wires the engine and the suites sets it in its init; until then only
// --synthetic works.
var systemEvaluator func(ctx context.Context, setup evalSetup) (sweep.Evaluate, error)

// evalFlags registers the flags of evalSetup on fs.
func evalFlags(fs *flag.FlagSet) (*evalSetup, *bool) {
	s := &evalSetup{}
	fs.StringVar(&s.Model, "model", "", "base model: checkpoint directory or hub id")
	fs.Var((*stringList)(&s.Adapters), "adapter", "NAME=DIR of an adapter; repeat, in weight order")
	fs.Var((*stringList)(&s.Tasks), "task", "task to evaluate; repeatable")
	fs.StringVar(&s.Quant, "quant", "nf4", "base weights: nf4, fp16 or fp32")
	synthetic := fs.Bool("synthetic", false, "evaluate with made-up deterministic metrics instead of a model (to try the machinery)")
	return s, synthetic
}

// adapterNames returns the NAME of each NAME=DIR (or the value itself when
// it has no '=').
func (s *evalSetup) adapterNames() ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, a := range s.Adapters {
		name, _, _ := strings.Cut(a, "=")
		if name == "" {
			return nil, fmt.Errorf("--adapter %q: want NAME=DIR", a)
		}
		if seen[name] {
			return nil, fmt.Errorf("--adapter %q: name %s given twice", a, name)
		}
		seen[name] = true
		names = append(names, name)
	}
	return names, nil
}

// evaluator builds the Evaluate for the parsed flags.
func (s *evalSetup) evaluator(ctx context.Context, synthetic bool) (sweep.Evaluate, error) {
	if len(s.Tasks) == 0 {
		return nil, errors.New("name at least one --task")
	}
	if synthetic {
		return sweep.Synthetic(s.Tasks), nil
	}
	if systemEvaluator == nil {
		return nil, errors.New("this build has no model evaluator wired in yet; --synthetic runs the same machinery on made-up metrics")
	}
	return systemEvaluator(ctx, *s)
}

// interruptible returns a context cancelled by SIGINT or SIGTERM, so that
// an interrupted sweep stops cleanly between points.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runSweep(args []string) error {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	setup, synthetic := evalFlags(fs)
	methods := fs.String("method", "svd", "combination types, comma-separated (e.g. svd,cat; svd-exact for the exact mode)")
	gridSpec := fs.String("weights-grid", "0:1:0.1", "weights per adapter: start:stop:step (stop included) or one value")
	out := fs.String("out", "", "directory for the sweep's JSONL results (sweep.jsonl, or sweep-shard-I-of-N.jsonl)")
	shardSpec := fs.String("shard", "", "evaluate only shard i/n (every n-th point from i, 0-based); each shard writes its own file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return errors.New("--out DIR is required")
	}
	names, err := setup.adapterNames()
	if err != nil {
		return err
	}
	if len(names) < 2 {
		return fmt.Errorf("a sweep combines at least 2 adapters (have %d --adapter)", len(names))
	}
	ms, err := sweep.ParseMethods(*methods)
	if err != nil {
		return err
	}
	grid, err := sweep.ParseGrid(*gridSpec)
	if err != nil {
		return err
	}
	shard, err := sweep.ParseShard(*shardSpec)
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	eval, err := setup.evaluator(ctx, *synthetic)
	if err != nil {
		return err
	}

	all := sweep.Points(names, ms, grid)
	points := shard.Take(all)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(*out, "sweep.jsonl")
	if shard.N > 1 {
		path = filepath.Join(*out, fmt.Sprintf("sweep-shard-%d-of-%d.jsonl", shard.I, shard.N))
	}
	fmt.Fprintf(os.Stderr, "sweep: %d points (%d methods x %d weights^%d adapters), shard %s has %d; results in %s\n",
		len(all), len(ms), len(grid), len(names), shard, len(points), path)
	st, err := sweep.Run(ctx, points, eval, path, os.Stderr)
	fmt.Printf("sweep: %d points, %d done before, %d evaluated now; %s\n", st.Points, st.Skipped, st.Evaluated, path)
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted; run the same command again to carry on")
	}
	return err
}
