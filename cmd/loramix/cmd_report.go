package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"loramix/reports"
	"loramix/suites/results"
)

func init() {
	register("report", "draw charts and write report.html/report.md: report RESULTS... --out DIR [--bench FILE...]",
		func(args []string) error { return runReport(args, os.Stdout) })
}

func runReport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("out", "", "directory for the charts (PNG, SVG), report.html and report.md")
	var bench stringList
	fs.Var(&bench, "bench", "benchmark JSON (MergeTiming or Throughput records); repeatable")
	bleuTask := fs.String("bleu-task", "", "translation task of the Pareto chart (default: the first task with BLEU)")
	lengthTask := fs.String("length-task", "", "chat task of the Pareto chart (default: the first other task with response lengths)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: loramix report RESULTS... --out DIR [--bench FILE...] [--bleu-task T] [--length-task T]\n\nRESULTS are results files: JSON from `loramix eval` or JSONL from `loramix sweep`.")
		fs.PrintDefaults()
	}
	// Flags may come before, between or after the results files.
	var paths []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		paths = append(paths, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if *out == "" {
		return errors.New("--out DIR is required")
	}
	if len(paths) == 0 && len(bench) == 0 {
		return errors.New("name at least one results file or --bench file")
	}

	in := reports.Input{BLEUTask: *bleuTask, LengthTask: *lengthTask}
	for _, p := range paths {
		f, err := results.Read(p)
		if err != nil {
			return err
		}
		in.Results = append(in.Results, f)
		in.ResultPaths = append(in.ResultPaths, p)
	}
	for _, b := range bench {
		m, t, err := reports.ReadBench(b)
		if err != nil {
			return err
		}
		in.Merge = append(in.Merge, m...)
		in.Throughput = append(in.Throughput, t...)
	}

	rep, err := reports.Build(in, *out)
	if err != nil {
		return err
	}
	for _, c := range rep.Charts {
		fmt.Fprintf(stdout, "drew %-40s %s\n", c.Name+".{png,svg}", c.Title)
	}
	for _, s := range rep.Notes {
		fmt.Fprintf(stdout, "note: %s\n", s)
	}
	abs, err := filepath.Abs(rep.HTML)
	if err != nil {
		abs = rep.HTML
	}
	fmt.Fprintf(stdout, "report: %s (and %s)\n", abs, filepath.Base(rep.Markdown))
	return nil
}
