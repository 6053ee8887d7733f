package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"loramix/engine/llama"
	"loramix/engine/safetensors"
	"loramix/suites/eval"
	"loramix/suites/results"
	"loramix/suites/sweep"
	"loramix/suites/tasks"
)

func init() {
	register("sweep", "evaluate a grid of adapter weights, resumably: sweep --adapter N=DIR... --method svd,cat --weights-grid 0:1:0.1 --task T... --out DIR",
		func(args []string) error { return runSweep(args, os.Stdout) })
}

// evalSetup is what sweep and search need to evaluate systems: the model,
// adapters and tasks, as `loramix eval` takes them.
type evalSetup struct {
	Model     string   // checkpoint directory or hub id
	Tokenizer string   // tokenizer.json ("" = beside the model or LORAMIX_TOKENIZER)
	Adapters  []string // NAME=DIR, in weight order
	Tasks     []string // task names
	TasksDirs []string // folders of task files that take precedence
	Data      string   // folder the tasks' dataset dirs are relative to
	Limit     int      // examples per task; 0 means all
	Quant     string   // nf4, fp16 or fp32
	Threads   int
	Batch     int
	Synthetic bool // made-up metrics, no model
}

// evalFlags registers the flags of evalSetup on fs.
func evalFlags(fs *flag.FlagSet) *evalSetup {
	s := &evalSetup{}
	fs.StringVar(&s.Model, "model", "", "base model: checkpoint directory or cached hub id")
	fs.StringVar(&s.Tokenizer, "tokenizer", "", "tokenizer.json (default: beside the model, or LORAMIX_TOKENIZER)")
	fs.Var((*stringList)(&s.Adapters), "adapter", "NAME=DIR of an adapter; repeat, in weight order")
	fs.Var((*stringList)(&s.Tasks), "task", "task to evaluate (built-in: fren, oasst, clash); repeatable")
	fs.Var((*stringList)(&s.TasksDirs), "tasks-dir", "folder of task files that take precedence over the built-in ones; repeatable")
	fs.StringVar(&s.Data, "data", ".", "folder that the tasks' dataset dirs are relative to")
	fs.IntVar(&s.Limit, "limit", 0, "examples per task (0: all)")
	fs.StringVar(&s.Quant, "quant", "nf4", "decoder linear layers: nf4, fp16 or fp32")
	fs.IntVar(&s.Threads, "threads", 0, "CPU threads (0: all)")
	fs.IntVar(&s.Batch, "batch", 32, "sequences per generation batch")
	fs.BoolVar(&s.Synthetic, "synthetic", false, "evaluate with made-up deterministic metrics instead of a model (to try the machinery)")
	return s
}

// adapterNames returns the NAME of each NAME=DIR (a bare NAME is accepted
// with --synthetic).
func (s *evalSetup) adapterNames() ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, a := range s.Adapters {
		name, dir, _ := strings.Cut(a, "=")
		if name == "" || (dir == "" && !s.Synthetic) {
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

// config is the setup as recorded in results files.
func (s *evalSetup) config() map[string]any {
	if s.Synthetic {
		return map[string]any{"evaluator": "synthetic", "adapters": s.Adapters, "tasks": s.Tasks}
	}
	return map[string]any{"model": s.Model, "adapters": s.Adapters, "tasks": s.Tasks, "quant": s.Quant,
		"limit": s.Limit, "decoding": "greedy"}
}

// evaluator loads the model, adapters and tasks once and returns the
// evaluation of one system on every task. The model runs one point at a
// time, so a cancelled context takes effect between points.
func (s *evalSetup) evaluator() (sweep.Evaluate, error) {
	if len(s.Tasks) == 0 {
		return nil, errors.New("name at least one --task")
	}
	if s.Synthetic {
		return sweep.Synthetic(s.Tasks), nil
	}
	if s.Model == "" {
		return nil, errors.New("--model is required (or --synthetic for made-up metrics)")
	}
	q, err := llama.ParseQuant(s.Quant)
	if err != nil {
		return nil, err
	}
	ads, err := eval.ParseNamedDirs(s.Adapters)
	if err != nil {
		return nil, err
	}
	var ts []*tasks.Task
	examples := map[string][]tasks.Example{}
	for _, n := range s.Tasks {
		t, err := tasks.Find(n, s.TasksDirs...)
		if err != nil {
			return nil, err
		}
		if examples[t.Name], err = t.Examples(s.Data, s.Limit); err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	sess, err := eval.Open(eval.Config{Model: s.Model, Tokenizer: s.Tokenizer, Adapters: ads, Quant: q, Threads: s.Threads, Batch: s.Batch})
	if err != nil {
		return nil, err
	}
	for _, w := range sess.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	return func(ctx context.Context, sys results.System) ([]results.Record, error) {
		var recs []results.Record
		for _, t := range ts {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			r, err := sess.Evaluate(t, examples[t.Name], []results.System{sys}, nil)
			if err != nil {
				return nil, err
			}
			recs = append(recs, r...)
		}
		return recs, nil
	}, nil
}

// writeInfo writes DIR/NAME: a results file with no records that holds the
// configuration, versions and git revision of a sweep or search, for
// `loramix report` to show beside the JSONL records.
func writeInfo(path string, setup *evalSetup, extra map[string]any) error {
	cfg := setup.config()
	for k, v := range extra {
		cfg[k] = v
	}
	f := results.File{Schema: results.SchemaVersion, Created: time.Now().UTC(), GitRevision: eval.GitRevision(),
		Versions: eval.Versions(), Config: cfg}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return safetensors.WriteFileAtomic(path, append(data, '\n'))
}

// interruptible returns a context cancelled by the first SIGINT or SIGTERM,
// so that an interrupted sweep stops cleanly after the current point; a
// second signal ends the process at once.
func interruptible() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // restore the default handling for the next signal
	}()
	return ctx, stop
}

func runSweep(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	setup := evalFlags(fs)
	methods := fs.String("method", "svd", "combination types, comma-separated (e.g. svd,cat; svd-exact for the exact mode)")
	gridSpec := fs.String("weights-grid", "0:1:0.1", "weights per adapter: start:stop:step (stop included) or one value")
	out := fs.String("out", "", "directory for the sweep's JSONL results (sweep.jsonl, or sweep-shard-I-of-N.jsonl) and sweep-info.json")
	quiet := fs.Bool("quiet", false, "no progress bar")
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
	evaluate, err := setup.evaluator()
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()

	all := sweep.Points(names, ms, grid)
	points := shard.Take(all)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(*out, "sweep.jsonl")
	if shard.N > 1 {
		path = filepath.Join(*out, fmt.Sprintf("sweep-shard-%d-of-%d.jsonl", shard.I, shard.N))
	}
	if err := writeInfo(filepath.Join(*out, "sweep-info.json"), setup, map[string]any{
		"methods": ms, "weights_grid": *gridSpec, "shard": shard.String()}); err != nil {
		return err
	}
	var progress io.Writer = os.Stderr
	if *quiet {
		progress = nil
	}
	fmt.Fprintf(stdout, "sweep: %d points (%d methods x %d weights^%d adapters), shard %s has %d; results in %s\n",
		len(all), len(ms), len(grid), len(names), shard, len(points), path)
	st, err := sweep.Run(ctx, points, evaluate, path, progress)
	fmt.Fprintf(stdout, "sweep: %d points, %d done before, %d evaluated now; %s\n", st.Points, st.Skipped, st.Evaluated, path)
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted after a whole point; run the same command again to carry on")
	}
	return err
}
