// Package tasks loads declarative evaluation tasks: one YAML (or JSON) file
// per task holds the prompt template, the dataset split and its fields, the
// reference field, the stop strings, max_new_tokens, the metrics (each with
// its direction) and the format rules, with a version. Users add a task by
// adding a file; no code changes.
//
// A task file (see fren.yaml, oasst.yaml and clash.yaml beside this file,
// which are also built in):
//
//	name: fren                       # [a-z0-9_.+-]+
//	version: "1"                     # bump when anything below changes
//	description: French to English translation
//	dataset:
//	  dir: datasets/build/fren       # relative to the repository root
//	  split: test                    # reads <dir>/<split>.jsonl ...
//	  file: test.jsonl               # ... unless file is given
//	  fields: {question: prompt}     # optional renames: name used here -> JSONL key
//	prompt: "{{.source}} ###>"       # Go text/template over the record's fields
//	reference_field: target
//	stop: ["\n", "</s>"]
//	max_new_tokens: 130
//	metrics:
//	  - name: bleu
//	    higher_is_better: true
//	  - name: repetition
//	    higher_is_better: false
//	    params: {order: 3}
//	format:                          # metrics.FormatRules
//	  single_line: true
//
// Unknown keys, unknown metrics or parameters, a direction that contradicts
// the metric, and templates or patterns that do not parse are errors that
// name the file and the field.
package tasks

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"

	"loramix/suites/metrics"
)

// Task is one evaluation task.
type Task struct {
	Name         string              `json:"name"`
	Version      Version             `json:"version"`
	Description  string              `json:"description,omitempty"`
	Dataset      Dataset             `json:"dataset"`
	Prompt       string              `json:"prompt"`
	Reference    string              `json:"reference_field"`
	Stop         []string            `json:"stop,omitempty"`
	MaxNewTokens int                 `json:"max_new_tokens"`
	Metrics      []MetricSpec        `json:"metrics"`
	Format       metrics.FormatRules `json:"format,omitempty"`

	// File is where the task was loaded from ("builtin:NAME.yaml" for the
	// built-in ones).
	File string `json:"-"`

	prompt  *template.Template
	checker *metrics.FormatChecker
}

// Dataset locates a task's records: JSON Lines, one object per example.
type Dataset struct {
	Dir   string `json:"dir"`
	Split string `json:"split"`
	File  string `json:"file,omitempty"`
	// Fields renames record fields for the prompt, the reference and the
	// format rules: name used in the task -> key in the JSONL objects.
	Fields map[string]string `json:"fields,omitempty"`
}

// MetricSpec is one metric a task reports.
type MetricSpec struct {
	Name           string             `json:"name"`
	HigherIsBetter *bool              `json:"higher_is_better"`
	Params         map[string]float64 `json:"params,omitempty"`
}

// Higher reports whether larger values are better.
func (m MetricSpec) Higher() bool { return m.HigherIsBetter != nil && *m.HigherIsBetter }

// Param returns the metric parameter, or its documented default.
func (m MetricSpec) Param(name string) float64 {
	if v, ok := m.Params[name]; ok {
		return v
	}
	return KnownMetrics[m.Name].Params[name]
}

// Version is a task version; files may write it as a string or a number.
type Version string

// UnmarshalJSON accepts "1.2" and 1.2 alike.
func (v *Version) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*v = Version(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("version: want a string or a number, got %s", b)
	}
	*v = Version(n.String())
	return nil
}

// MetricInfo documents a metric name that task files may use.
type MetricInfo struct {
	Doc string
	// Direction is fixed for metrics where better is unambiguous; nil where
	// the task decides (lengths).
	HigherIsBetter *bool
	// Params are the accepted parameters with their defaults.
	Params map[string]float64
}

func ptr(b bool) *bool { return &b }

// KnownMetrics are the metric names task files may use.
var KnownMetrics = map[string]MetricInfo{
	"bleu":             {Doc: "corpus BLEU, sacreBLEU 2.6.0 defaults (metrics.CorpusBLEU)", HigherIsBetter: ptr(true)},
	"chrf":             {Doc: "corpus chrF2 (metrics.CorpusCHRF)", HigherIsBetter: ptr(true)},
	"chrf++":           {Doc: "corpus chrF2++ (metrics.ChrFPlusPlus)", HigherIsBetter: ptr(true)},
	"length_words":     {Doc: "median response length in words, up to EOS or a stop string (metrics.MeasureLength)"},
	"length_tokens":    {Doc: "median response length in tokens, up to EOS or a stop string (metrics.MeasureLength)"},
	"repetition":       {Doc: "mean share of repeated word n-grams per response (metrics.RepeatedNGramShare)", HigherIsBetter: ptr(false), Params: map[string]float64{"order": metrics.DefaultRepeatN}},
	"loop_rate":        {Doc: "share of responses with a loop of >= min_chars characters repeated >= min_repeats times (metrics.FindTextLoop)", HigherIsBetter: ptr(false), Params: map[string]float64{"min_chars": 10, "min_repeats": 2}},
	"format_adherence": {Doc: "share of responses that follow the task's format rules (metrics.FormatChecker)", HigherIsBetter: ptr(true)},
}

func knownMetricNames() string {
	names := make([]string, 0, len(KnownMetrics))
	for n := range KnownMetrics {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

var nameRE = regexp.MustCompile(`^[a-z0-9_.+-]+$`)

// Parse reads one task from YAML or JSON. file names the source in errors.
func Parse(data []byte, file string) (*Task, error) {
	var t Task
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	t.File = file
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &t, nil
}

// validate checks every field and compiles the template and format rules.
func (t *Task) validate() error {
	switch {
	case t.Name == "":
		return errors.New("name: missing")
	case !nameRE.MatchString(t.Name):
		return fmt.Errorf("name: %q must match %s", t.Name, nameRE)
	case t.Version == "":
		return errors.New("version: missing")
	case t.Dataset.Dir == "":
		return errors.New("dataset.dir: missing")
	case t.Dataset.Split == "" && t.Dataset.File == "":
		return errors.New("dataset.split: missing")
	case strings.ContainsAny(t.Dataset.Split, `/\`):
		return fmt.Errorf("dataset.split: %q is a path; use dataset.file", t.Dataset.Split)
	case t.Prompt == "":
		return errors.New("prompt: missing")
	case t.Reference == "":
		return errors.New("reference_field: missing")
	case t.MaxNewTokens <= 0:
		return fmt.Errorf("max_new_tokens: want > 0, got %d", t.MaxNewTokens)
	case len(t.Metrics) == 0:
		return errors.New("metrics: none given")
	}
	for k, v := range t.Dataset.Fields {
		if k == "" || v == "" {
			return fmt.Errorf("dataset.fields: empty name in %q: %q", k, v)
		}
	}
	for i, s := range t.Stop {
		if s == "" {
			return fmt.Errorf("stop[%d]: empty string", i)
		}
	}
	tmpl, err := template.New(t.Name).Option("missingkey=error").Parse(t.Prompt)
	if err != nil {
		return fmt.Errorf("prompt: %w", err)
	}
	t.prompt = tmpl

	seen := map[string]bool{}
	for i, m := range t.Metrics {
		info, ok := KnownMetrics[m.Name]
		if !ok {
			return fmt.Errorf("metrics[%d].name: unknown metric %q (known: %s)", i, m.Name, knownMetricNames())
		}
		if seen[m.Name] {
			return fmt.Errorf("metrics[%d].name: %q listed twice", i, m.Name)
		}
		seen[m.Name] = true
		if m.HigherIsBetter == nil {
			return fmt.Errorf("metrics[%d].higher_is_better: missing for %s", i, m.Name)
		}
		if info.HigherIsBetter != nil && *info.HigherIsBetter != *m.HigherIsBetter {
			return fmt.Errorf("metrics[%d].higher_is_better: %s is %s-is-better", i, m.Name, map[bool]string{true: "higher", false: "lower"}[*info.HigherIsBetter])
		}
		for p := range m.Params {
			if _, ok := info.Params[p]; !ok {
				hint := ""
				if p == "true" || p == "false" {
					hint = " (YAML reads the keys y, n, yes, no, on and off as booleans: quote them)"
				}
				return fmt.Errorf("metrics[%d].params.%s: %s takes no parameter %q%s", i, p, m.Name, p, hint)
			}
		}
	}
	c, err := t.Format.Compile()
	if err != nil {
		return fmt.Errorf("format.%w", err)
	}
	t.checker = c
	return nil
}

// Load reads one task file.
func Load(path string) (*Task, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// LoadDir loads every *.yaml, *.yml and *.json file of dir, sorted by file
// name; two tasks with one name are an error.
func LoadDir(dir string) ([]*Task, error) {
	return loadFS(os.DirFS(dir), dir)
}

//go:embed *.yaml
var builtin embed.FS

// Builtin returns the tasks shipped with loramix: fren, oasst and clash.
func Builtin() ([]*Task, error) { return loadFS(builtin, "builtin:") }

func loadFS(fsys fs.FS, prefix string) ([]*Task, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var out []*Task
	byName := map[string]string{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		file := filepath.Join(prefix, e.Name())
		if strings.HasSuffix(prefix, ":") {
			file = prefix + e.Name()
		}
		data, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		t, err := Parse(data, file)
		if err != nil {
			return nil, err
		}
		if other, dup := byName[t.Name]; dup {
			return nil, fmt.Errorf("%s: name: task %q is also defined in %s", file, t.Name, other)
		}
		byName[t.Name] = file
		out = append(out, t)
	}
	return out, nil
}

// Find returns the task called name from the first of dirs that defines
// it, else from the built-in tasks.
func Find(name string, dirs ...string) (*Task, error) {
	var known []string
	for _, d := range dirs {
		ts, err := LoadDir(d)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if t.Name == name {
				return t, nil
			}
			known = append(known, t.Name)
		}
	}
	ts, err := Builtin()
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.Name == name {
			return t, nil
		}
		known = append(known, t.Name)
	}
	slices.Sort(known)
	return nil, fmt.Errorf("no task %q (have %s)", name, strings.Join(slices.Compact(known), ", "))
}

// DataPath is the JSONL file of the task's split under root.
func (t *Task) DataPath(root string) string {
	f := t.Dataset.File
	if f == "" {
		f = t.Dataset.Split + ".jsonl"
	}
	return filepath.Join(root, t.Dataset.Dir, f)
}

// RenderPrompt fills the prompt template with a record's fields. A field
// the template uses and the record lacks is an error naming it.
func (t *Task) RenderPrompt(fields map[string]string) (string, error) {
	var b bytes.Buffer
	if err := t.prompt.Execute(&b, fields); err != nil {
		return "", fmt.Errorf("task %s (%s): prompt: %w", t.Name, t.File, err)
	}
	return b.String(), nil
}

// Checker returns the compiled format rules.
func (t *Task) Checker() *metrics.FormatChecker { return t.checker }

// Metric returns the task's spec for a metric name.
func (t *Task) Metric(name string) (MetricSpec, bool) {
	for _, m := range t.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return MetricSpec{}, false
}

// Example is one record of a task's dataset, ready to generate from.
type Example struct {
	Line      int               // 1-based line in the JSONL file
	Fields    map[string]string // the record's fields, renames applied
	Prompt    string
	Reference string
}

// Examples reads the task's split under root and renders each record's
// prompt; limit > 0 keeps the first limit records. Errors name the file and
// line, and the task field that needs what is missing.
func (t *Task) Examples(root string, limit int) ([]Example, error) {
	path := t.DataPath(root)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("task %s (%s): dataset: %w", t.Name, t.File, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<26)
	var out []Example
	for line := 1; sc.Scan() && (limit <= 0 || len(out) < limit); line++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		fields, err := t.recordFields(raw)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		ref, ok := fields[t.Reference]
		if !ok {
			return nil, fmt.Errorf("%s:%d: no field %q (reference_field of %s)", path, line, t.Reference, t.File)
		}
		prompt, err := t.RenderPrompt(fields)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, Example{Line: line, Fields: fields, Prompt: prompt, Reference: ref})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no records", path)
	}
	return out, nil
}

// recordFields decodes one JSON object into string fields (numbers and
// booleans as written, other values as JSON) and applies the renames.
func (t *Task) recordFields(raw []byte) (map[string]string, error) {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	fields := make(map[string]string, len(rec)+len(t.Dataset.Fields))
	for k, v := range rec {
		var s string
		if json.Unmarshal(v, &s) == nil {
			fields[k] = s
		} else {
			fields[k] = strings.TrimSpace(string(v))
		}
	}
	for name, key := range t.Dataset.Fields {
		v, ok := fields[key]
		if !ok {
			return nil, fmt.Errorf("no field %q (dataset.fields.%s of %s)", key, name, t.File)
		}
		fields[name] = v
	}
	return fields, nil
}
