package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"loramix/suites/gate"
	"loramix/suites/results"
)

// errGateFailed makes main exit non-zero after the table was printed.
var errGateFailed = errors.New("a metric regressed beyond its tolerance (rows marked FAIL)")

func init() {
	register("gate", "compare results with a baseline; exit 1 on a regression",
		func(args []string) error { return runGateTo(args, os.Stdout) })
}

func runGateTo(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gate", flag.ContinueOnError)
	base := fs.String("baseline", "", "baseline results file (JSON or JSONL)")
	res := fs.String("results", "", "results file to check (JSON or JSONL)")
	tolS := fs.String("tolerance", "0.1", "relative tolerance, optionally with per-metric absolute ones: 0.1,bleu=2")
	byTask := fs.Bool("by-task", false, "compare each baseline record with the result's only record of the same task, whatever its system (a deployed combination whose weights change)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" || *res == "" {
		return errors.New("--baseline and --results are required")
	}
	tol, err := gate.ParseTolerance(*tolS)
	if err != nil {
		return err
	}
	b, err := results.Read(*base)
	if err != nil {
		return err
	}
	r, err := results.Read(*res)
	if err != nil {
		return err
	}
	rows := gate.Compare(b, r, tol)
	if *byTask {
		rows = gate.CompareByTask(b, r, tol)
	}
	if err := gate.WriteTable(stdout, rows); err != nil {
		return err
	}
	if gate.Failed(rows) {
		return errGateFailed
	}
	fmt.Fprintln(stdout, "gate: every metric within tolerance")
	return nil
}
