// Package results defines what an evaluation writes: one Record per
// (system, task) pair, with every metric's value, standard error and
// confidence interval, the configuration, versions and timings. `loramix
// eval` writes a File; `loramix sweep` appends Records to a JSONL file as
// soon as each point is done; `loramix gate` and `loramix report` read both.
package results

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// System names one evaluated model: the base alone, one adapter, or a
// combination of adapters with a method and weights.
type System struct {
	Adapters []string  `json:"adapters,omitempty"` // adapter names, in weight order
	Method   string    `json:"method,omitempty"`   // "" for base or a single adapter; else a combination type
	Weights  []float64 `json:"weights,omitempty"`
	Exact    bool      `json:"exact,omitempty"`
}

// Key is a comparable identity for a System, e.g. "svd[0.5,1](fren,oasst)".
func (s System) Key() string {
	switch {
	case len(s.Adapters) == 0:
		return "base"
	case s.Method == "":
		return s.Adapters[0]
	}
	w := make([]string, len(s.Weights))
	for i, x := range s.Weights {
		w[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	m := s.Method
	if s.Exact {
		m += "-exact"
	}
	return fmt.Sprintf("%s[%s](%s)", m, strings.Join(w, ","), strings.Join(s.Adapters, ","))
}

// Metric is one measured quantity with its uncertainty.
type Metric struct {
	Value          float64 `json:"value"`
	StdErr         float64 `json:"stderr"`
	CILow          float64 `json:"ci_low"`
	CIHigh         float64 `json:"ci_high"`
	HigherIsBetter bool    `json:"higher_is_better"`
	N              int     `json:"n"` // samples it was computed on
}

// Example is one generated output kept for failure messages and reports.
type Example struct {
	Prompt    string  `json:"prompt"`
	Output    string  `json:"output"`
	Reference string  `json:"reference,omitempty"`
	Score     float64 `json:"score"` // the example's own metric (e.g. sentence BLEU); lower is worse
}

// Record is the evaluation of one System on one task.
type Record struct {
	System      System             `json:"system"`
	Task        string             `json:"task"`
	TaskVersion string             `json:"task_version"`
	Metrics     map[string]Metric  `json:"metrics"`
	Samples     int                `json:"samples"`
	Lengths     []int              `json:"lengths,omitempty"` // response length in words, per sample
	Worst       []Example          `json:"worst,omitempty"`
	Routing     map[string]float64 `json:"routing,omitempty"` // behaviour -> share of outputs
	Seconds     float64            `json:"seconds"`           // wall time of generation + scoring
	Tokens      int                `json:"tokens"`            // generated tokens
}

// File is a complete evaluation run.
type File struct {
	Schema      int               `json:"schema"`
	Created     time.Time         `json:"created"`
	GitRevision string            `json:"git_revision"`
	Versions    map[string]string `json:"versions"`
	Config      map[string]any    `json:"config"`
	Records     []Record          `json:"records"`
}

// SchemaVersion is written into every File.
const SchemaVersion = 1

// Find returns the record for a system key and task, or nil.
func (f *File) Find(systemKey, task string) *Record {
	for i := range f.Records {
		if f.Records[i].System.Key() == systemKey && f.Records[i].Task == task {
			return &f.Records[i]
		}
	}
	return nil
}

// Read loads a results file: either a JSON File or a JSONL stream of Records
// (as a sweep writes). A truncated last JSONL line, left by an interrupted
// sweep, is ignored.
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	trim := strings.TrimSpace(string(data))
	if strings.HasPrefix(trim, "{") && !strings.Contains(trim, "\n{") && !isRecord(trim) {
		var f File
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("results %s: %v", path, err)
		}
		return &f, nil
	}
	f := &File{Schema: SchemaVersion}
	lines := strings.Split(trim, "\n")
	for i, l := range lines {
		var r Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			if i == len(lines)-1 && !strings.HasSuffix(string(data), "\n") {
				break // the last line of an interrupted append
			}
			return nil, fmt.Errorf("results %s: line %d: %v", path, i+1, err)
		}
		f.Records = append(f.Records, r)
	}
	return f, nil
}

// isRecord reports whether a one-line JSON object is a Record (a JSONL file
// of one line) rather than a File.
func isRecord(obj string) bool {
	var probe struct {
		System *System `json:"system"`
	}
	return json.Unmarshal([]byte(obj), &probe) == nil && probe.System != nil
}

// Tasks returns the distinct task names, sorted.
func (f *File) Tasks() []string {
	seen := map[string]bool{}
	for _, r := range f.Records {
		seen[r.Task] = true
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
