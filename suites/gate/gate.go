// Package gate compares an evaluation against a committed baseline and
// decides whether any metric regressed beyond its tolerance.
package gate

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"loramix/suites/results"
)

// Tolerance says how far a metric may move in its worse direction.
// A metric regresses when it is worse than the baseline by more than
// max(Relative*|baseline|, Absolute[metric]).
type Tolerance struct {
	Relative float64            // e.g. 0.1 for 10%
	Absolute map[string]float64 // per metric name, in the metric's units
}

// Allowed returns the largest permitted move for a metric with baseline value b.
func (t Tolerance) Allowed(metric string, b float64) float64 {
	return math.Max(t.Relative*math.Abs(b), t.Absolute[metric])
}

// ParseTolerance reads "0.1" (relative) or a comma list that may mix a
// relative default with per-metric absolute values: "0.1,bleu=2,length_words=3".
func ParseTolerance(s string) (Tolerance, error) {
	t := Tolerance{Absolute: map[string]float64{}}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, isAbs := strings.Cut(part, "=")
		if !isAbs {
			val = name
		}
		var v float64
		if _, err := fmt.Sscanf(val, "%g", &v); err != nil || v < 0 || math.IsNaN(v) {
			return t, fmt.Errorf("tolerance %q: %q is not a non-negative number", s, val)
		}
		if isAbs {
			t.Absolute[name] = v
		} else {
			t.Relative = v
		}
	}
	return t, nil
}

// Row is one compared metric.
type Row struct {
	System, Task, Metric string
	Baseline, Result     float64
	Allowed              float64
	Missing              bool // the result lacks this (system, task, metric)
	Regressed            bool
}

// Delta is Result - Baseline, signed so that negative means worse.
func (r Row) Delta(higherIsBetter bool) float64 {
	if higherIsBetter {
		return r.Result - r.Baseline
	}
	return r.Baseline - r.Result
}

// Compare checks every metric of every baseline record against the result
// with the same system and task. A baseline metric the results lack counts as
// a regression (a gate must not pass by dropping a task).
func Compare(baseline, res *results.File, tol Tolerance) []Row {
	return compare(baseline, res, tol, false)
}

// CompareByTask is Compare for a deployed combination whose weights or
// method may change between runs: each baseline record is compared with the
// result's only record of the same task, whatever its system. It is an error
// (a missing row) for the results to hold several records of one task.
func CompareByTask(baseline, res *results.File, tol Tolerance) []Row {
	return compare(baseline, res, tol, true)
}

func compare(baseline, res *results.File, tol Tolerance, byTask bool) []Row {
	var rows []Row
	for _, b := range baseline.Records {
		key := b.System.Key()
		r := res.Find(key, b.Task)
		if byTask {
			r = onlyRecord(res, b.Task)
			if r != nil {
				key = b.System.Key() + " -> " + r.System.Key()
			}
		}
		names := make([]string, 0, len(b.Metrics))
		for n := range b.Metrics {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			bm := b.Metrics[n]
			row := Row{System: key, Task: b.Task, Metric: n, Baseline: bm.Value, Allowed: tol.Allowed(n, bm.Value)}
			rm, ok := results.Metric{}, false
			if r != nil {
				rm, ok = r.Metrics[n]
			}
			if !ok || math.IsNaN(rm.Value) {
				row.Missing, row.Regressed = true, true
			} else {
				row.Result = rm.Value
				row.Regressed = -row.Delta(bm.HigherIsBetter) > row.Allowed
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// onlyRecord returns the single record of task in f, or nil.
func onlyRecord(f *results.File, task string) *results.Record {
	var found *results.Record
	for i := range f.Records {
		if f.Records[i].Task == task {
			if found != nil {
				return nil
			}
			found = &f.Records[i]
		}
	}
	return found
}

// Failed reports whether any row regressed.
func Failed(rows []Row) bool {
	for _, r := range rows {
		if r.Regressed {
			return true
		}
	}
	return false
}

// WriteTable writes rows as an aligned table, regressions marked FAIL.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "system\ttask\tmetric\tbaseline\tresult\tchange\tallowed\tstatus")
	for _, r := range rows {
		status, result, change := "ok", "-", "-"
		if !r.Missing {
			result = fmt.Sprintf("%.3f", r.Result)
			change = fmt.Sprintf("%+.3f", r.Result-r.Baseline)
		}
		if r.Regressed {
			status = "FAIL"
			if r.Missing {
				status = "FAIL (missing)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t%s\t%s\t%.3f\t%s\n", r.System, r.Task, r.Metric, r.Baseline, result, change, r.Allowed, status)
	}
	return tw.Flush()
}
