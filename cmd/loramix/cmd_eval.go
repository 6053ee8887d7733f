package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"loramix/engine/llama"
	"loramix/engine/safetensors"
	"loramix/suites/eval"
	"loramix/suites/results"
	"loramix/suites/tasks"
)

// `loramix eval` runs tasks on a base model, its adapters and their
// combinations, and writes the results with confidence intervals.
func init() {
	register("eval", "evaluate adapters and combinations on tasks: eval --model DIR --adapter N=DIR ... --task T ... [--combine svd:0.5,1 ...] --out FILE",
		func(args []string) error { return runEval(args, os.Stdout) })
}

func runEval(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	setup := evalFlags(fs)
	var combines stringList
	fs.Var(&combines, "combine", "system to evaluate: base, an adapter name, METHOD:W1,W2 or METHOD:W1,W2@A,B (repeatable; default: base and each adapter)")
	out := fs.String("out", "", "results file to write (JSON)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if setup.Model == "" || len(setup.Tasks) == 0 || *out == "" {
		return errors.New("--model, --task and --out are required")
	}
	if setup.Synthetic {
		return errors.New("--synthetic is for sweep and search; eval runs a model")
	}
	q, err := llama.ParseQuant(setup.Quant)
	if err != nil {
		return err
	}
	ads, err := eval.ParseNamedDirs(setup.Adapters)
	if err != nil {
		return err
	}
	var names []string
	for _, a := range ads {
		names = append(names, a.Name)
	}
	systems, err := parseSystems(combines, names)
	if err != nil {
		return err
	}
	var ts []*tasks.Task
	for _, n := range setup.Tasks {
		t, err := tasks.Find(n, setup.TasksDirs...)
		if err != nil {
			return err
		}
		ts = append(ts, t)
	}
	s, err := eval.Open(eval.Config{Model: setup.Model, Tokenizer: setup.Tokenizer, Adapters: ads, Quant: q, Threads: setup.Threads, Batch: setup.Batch})
	if err != nil {
		return err
	}
	for _, w := range s.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	config := setup.config()
	config["combine"] = []string(combines)
	f, err := s.Run(eval.Plan{Tasks: ts, Systems: systems, DataRoot: setup.Data, Limit: setup.Limit, Progress: !*quiet}, config)
	if err != nil {
		return err
	}
	if err := writeResults(*out, f); err != nil {
		return err
	}
	printSummary(stdout, f)
	fmt.Fprintf(stdout, "results written to %s\n", *out)
	return nil
}

// parseSystems turns --combine values into systems; none means the base and
// each adapter alone.
func parseSystems(specs []string, names []string) ([]results.System, error) {
	if len(specs) == 0 {
		specs = append([]string{"base"}, names...)
	}
	var out []results.System
	for _, c := range specs {
		sys, err := eval.ParseCombine(c, names)
		if err != nil {
			return nil, err
		}
		out = append(out, sys)
	}
	return out, nil
}

// writeResults writes f as indented JSON, atomically.
func writeResults(path string, f *results.File) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return safetensors.WriteFileAtomic(path, append(data, '\n'))
}

// printSummary prints one line per (system, task) with every metric and the
// routing shares.
func printSummary(w io.Writer, f *results.File) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "system\ttask\tmetrics\trouting (closest single adapter)")
	for _, r := range f.Records {
		var ms []string
		for _, n := range sortedNames(r.Metrics) {
			m := r.Metrics[n]
			ms = append(ms, fmt.Sprintf("%s %.2f [%.2f,%.2f]", n, m.Value, m.CILow, m.CIHigh))
		}
		var rs []string
		for _, n := range sortedNames(r.Routing) {
			rs = append(rs, fmt.Sprintf("%s %.0f%%", n, 100*r.Routing[n]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.System.Key(), r.Task, strings.Join(ms, "  "), strings.Join(rs, " "))
	}
	tw.Flush()
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
