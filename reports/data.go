package reports

import (
	"cmp"
	"slices"
	"strings"

	"loramix/suites/results"
	"loramix/suites/sweep"
)

// dataset is the records of all inputs, one per (system, task): a later
// file's record replaces an earlier one's.
type dataset struct {
	recs    []results.Record           // in system order, then task
	byKey   map[recKey]*results.Record // (system key, task) -> record
	systems []results.System           // distinct, in system order
	tasks   []string                   // sorted
}

type recKey struct{ system, task string }

func newDataset(files []*results.File) *dataset {
	d := &dataset{byKey: map[recKey]*results.Record{}}
	last := map[recKey]results.Record{}
	for _, f := range files {
		for _, r := range f.Records {
			last[recKey{r.System.Key(), r.Task}] = r
		}
	}
	for _, r := range last {
		d.recs = append(d.recs, r)
	}
	slices.SortFunc(d.recs, func(a, b results.Record) int {
		if c := compareSystems(a.System, b.System); c != 0 {
			return c
		}
		return strings.Compare(a.Task, b.Task)
	})
	seenTask := map[string]bool{}
	for i := range d.recs {
		r := &d.recs[i]
		d.byKey[recKey{r.System.Key(), r.Task}] = r
		if n := len(d.systems); n == 0 || d.systems[n-1].Key() != r.System.Key() {
			d.systems = append(d.systems, r.System)
		}
		if !seenTask[r.Task] {
			seenTask[r.Task] = true
			d.tasks = append(d.tasks, r.Task)
		}
	}
	slices.Sort(d.tasks)
	return d
}

// get returns the record of a system on a task, or nil.
func (d *dataset) get(s results.System, task string) *results.Record {
	return d.byKey[recKey{s.Key(), task}]
}

// compareSystems orders the base first, then single adapters, then
// combinations by method, adapters and weights (numerically).
func compareSystems(a, b results.System) int {
	rank := func(s results.System) int {
		switch {
		case len(s.Adapters) == 0:
			return 0
		case s.Method == "":
			return 1
		}
		return 2
	}
	if c := cmp.Compare(rank(a), rank(b)); c != 0 {
		return c
	}
	if c := strings.Compare(a.Method, b.Method); c != 0 {
		return c
	}
	if a.Exact != b.Exact {
		if a.Exact {
			return 1
		}
		return -1
	}
	if c := slices.Compare(a.Adapters, b.Adapters); c != 0 {
		return c
	}
	return slices.Compare(a.Weights, b.Weights)
}

// metric returns a metric of a record: a recorded one, or length_words /
// mean_words derived from its lengths.
func metric(r *results.Record, name string) (float64, bool) {
	if r == nil {
		return 0, false
	}
	v, err := sweep.MetricRef{Metric: name, Task: r.Task}.Value([]results.Record{*r})
	return v, err == nil
}

// bleuTask is the translation task to chart: want if given, else the first
// task whose records carry "bleu".
func (d *dataset) bleuTask(want string) string {
	if want != "" {
		return want
	}
	for _, t := range d.tasks {
		for _, r := range d.recs {
			if r.Task == t {
				if _, ok := r.Metrics["bleu"]; ok {
					return t
				}
			}
		}
	}
	return ""
}

// lengthTasks are the chat tasks to chart against BLEU: want if given, else
// every task other than the BLEU task whose records have response lengths.
func (d *dataset) lengthTasks(want, bleuTask string) []string {
	if want != "" {
		return []string{want}
	}
	var out []string
	for _, t := range d.tasks {
		if t == bleuTask {
			continue
		}
		for _, r := range d.recs {
			if _, ok := metric(&r, "length_words"); ok && r.Task == t {
				out = append(out, t)
				break
			}
		}
	}
	return out
}
