package reports

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"loramix/suites/results"
	"loramix/suites/sweep"
)

// table is one table of the report, rendered to both HTML and Markdown.
type table struct {
	Title  string
	Header []string
	Rows   [][]string
}

// resultTables is one table per task: each system's metrics with standard
// error and confidence interval, sample count, median length and speed.
func resultTables(d *dataset) []table {
	var out []table
	for _, task := range d.tasks {
		names := map[string]bool{}
		higher := map[string]bool{}
		for _, r := range d.recs {
			if r.Task == task {
				for n, m := range r.Metrics {
					names[n] = true
					higher[n] = m.HigherIsBetter
				}
			}
		}
		var metrics []string
		for n := range names {
			metrics = append(metrics, n)
		}
		sort.Strings(metrics)
		t := table{Title: "Results on " + task, Header: []string{"system"}}
		for _, n := range metrics {
			arrow := " ↓"
			if higher[n] {
				arrow = " ↑"
			}
			t.Header = append(t.Header, n+arrow)
		}
		// The median length gets its own column unless a metric has it.
		derivedMedian := !names["length_words"]
		t.Header = append(t.Header, "samples")
		if derivedMedian {
			t.Header = append(t.Header, "median words")
		}
		t.Header = append(t.Header, "tokens/s", "version")
		for _, s := range d.systems {
			r := d.get(s, task)
			if r == nil {
				continue
			}
			row := []string{s.Key()}
			for _, n := range metrics {
				m, ok := r.Metrics[n]
				if !ok {
					row = append(row, "–")
					continue
				}
				row = append(row, fmtMetric(m))
			}
			row = append(row, strconv.Itoa(r.Samples))
			if derivedMedian {
				med := "–"
				if len(r.Lengths) > 0 {
					med = fmtNum(sweep.Median(r.Lengths))
				}
				row = append(row, med)
			}
			speed := "–"
			if r.Seconds > 0 && r.Tokens > 0 {
				speed = fmtNum(float64(r.Tokens) / r.Seconds)
			}
			row = append(row, speed, r.TaskVersion)
			t.Rows = append(t.Rows, row)
		}
		out = append(out, t)
	}
	return out
}

// fmtMetric writes "v ± se [lo, hi]", leaving out what is not known.
func fmtMetric(m results.Metric) string {
	s := fmtNum(m.Value)
	if m.StdErr > 0 {
		s += " ± " + fmtNum(m.StdErr)
	}
	if m.CILow != 0 || m.CIHigh != 0 {
		s += " [" + fmtNum(m.CILow) + ", " + fmtNum(m.CIHigh) + "]"
	}
	return s
}

// fmtNum prints with about 4 significant digits, never in exponent form for
// everyday magnitudes.
func fmtNum(x float64) string {
	switch a := math.Abs(x); {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return strconv.FormatFloat(x, 'g', -1, 64)
	case a == 0:
		return "0"
	case a >= 1000:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(x, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strconv.FormatFloat(x, 'g', 3, 64)
}

func frontTable(front []sweep.Point, bleuTask, lengthTask string) table {
	t := table{
		Title:  fmt.Sprintf("Pareto front: BLEU on %s against median length on %s", bleuTask, lengthTask),
		Header: []string{"system", "BLEU on " + bleuTask, "median words on " + lengthTask},
	}
	for _, p := range front {
		t.Rows = append(t.Rows, []string{p.Label, fmtNum(p.X), fmtNum(p.Y)})
	}
	return t
}

func mergeTable(ms []MergeTiming) table {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b MergeTiming) int { return a.Rank - b.Rank })
	t := table{Title: "SVD merge time", Header: []string{"rank", "modules", "low-rank (s)", "full-matrix (s)", "speedup"}}
	for _, m := range ms {
		speed := "–"
		if m.LowRankSeconds > 0 && m.FullSeconds > 0 {
			speed = fmtNum(m.FullSeconds/m.LowRankSeconds) + "×"
		}
		t.Rows = append(t.Rows, []string{strconv.Itoa(m.Rank), strconv.Itoa(m.Modules), fmtNum(m.LowRankSeconds), fmtNum(m.FullSeconds), speed})
	}
	return t
}

func throughputTable(ts []Throughput) table {
	names, runs := seriesNames(ts)
	idx := make([]int, len(ts))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if c := strings.Compare(names[a], names[b]); c != 0 {
			return c
		}
		return ts[a].Batch - ts[b].Batch
	})
	t := table{Title: "Generation throughput", Header: []string{"device", "card", "model", "quant", "run", "batch", "prefill tokens/s", "decode tokens/s"}}
	for _, i := range idx {
		x := ts[i]
		t.Rows = append(t.Rows, []string{x.Device, x.Card, x.Model, x.Quant, runs[i], strconv.Itoa(x.Batch), fmtNum(x.PrefillTokS), fmtNum(x.DecodeTokS)})
	}
	return t
}

// provenance is one table per input file: when and from which revision it
// was made, the versions and the configuration.
func provenance(files []*results.File, paths []string) []table {
	var out []table
	for i, f := range files {
		name := fmt.Sprintf("input %d", i+1)
		if i < len(paths) {
			name = paths[i]
		}
		t := table{Title: "Input " + name, Header: []string{"field", "value"}}
		if !f.Created.IsZero() {
			t.Rows = append(t.Rows, []string{"created", f.Created.UTC().Format("2006-01-02 15:04:05 MST")})
		}
		if f.GitRevision != "" {
			t.Rows = append(t.Rows, []string{"git revision", f.GitRevision})
		}
		t.Rows = append(t.Rows, []string{"schema", strconv.Itoa(f.Schema)}, []string{"records", strconv.Itoa(len(f.Records))})
		for _, k := range sortedKeys(f.Versions) {
			t.Rows = append(t.Rows, []string{"version of " + k, f.Versions[k]})
		}
		for _, k := range sortedKeys(f.Config) {
			t.Rows = append(t.Rows, []string{"config " + k, configValue(f.Config[k])})
		}
		out = append(out, t)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func configValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
