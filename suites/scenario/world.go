// Package scenario holds reusable Ginkgo scenarios, in the cluster-api
// style: a scenario is a function that takes an input getter and declares
// its specs, so users run the reference experiment on their own base model
// and adapters from their own suite:
//
//	var _ = Describe("my adapters", func() {
//		scenario.ReferenceExperiment(func() scenario.Input {
//			return scenario.Input{Config: eval.Config{Model: "meta-llama/Llama-2-7b-hf", ...}, ...}
//		})
//	})
package scenario

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"loramix/engine/adapter"
	"loramix/engine/merge"
	"loramix/suites/eval"
	"loramix/suites/results"
	"loramix/suites/tasks"
)

// Roles names the parts of the reference experiment in the user's world.
type Roles struct {
	Translation     string // adapter trained on the translation format ("fren")
	Chat            string // adapter trained on the chat format ("oasst")
	TranslationTask string // task whose prompts are in the translation format ("fren")
	ChatTask        string // task whose prompts are in the chat format ("oasst")
	// Clash, when set, is an adapter trained on a format that clashes with
	// the translation format, and ClashTask its task.
	Clash, ClashTask string
}

// Input is what a scenario needs.
type Input struct {
	Config   eval.Config
	Roles    Roles
	DataRoot string   // folder the tasks' dataset dirs are relative to
	TaskDirs []string // extra task folders; the built-in tasks are the fallback
	Limit    int      // examples per task (0: all)
	Expect   Expectations
}

// World is a loaded session with memoized records. One is built per
// process and input, so `ginkgo -p` loads the model once per process.
type World struct {
	Input   Input
	Session *eval.Session
	tasks   map[string]*tasks.Task
	exs     map[string][]tasks.Example
	mu      sync.Mutex
	records map[[2]string]results.Record
}

var (
	worldsMu sync.Mutex
	worlds   = map[string]*World{}
)

// Load returns the process's World for in, loading the model, adapters and
// task examples the first time.
func Load(in Input) (*World, error) {
	key := fmt.Sprintf("%+v", in.Config) + "|" + in.DataRoot + "|" + strings.Join(in.TaskDirs, ",") + fmt.Sprint(in.Limit)
	worldsMu.Lock()
	defer worldsMu.Unlock()
	if w := worlds[key]; w != nil {
		return w, nil
	}
	s, err := eval.Open(in.Config)
	if err != nil {
		return nil, err
	}
	w := &World{Input: in, Session: s, tasks: map[string]*tasks.Task{}, exs: map[string][]tasks.Example{}, records: map[[2]string]results.Record{}}
	for _, n := range []string{in.Roles.TranslationTask, in.Roles.ChatTask, in.Roles.ClashTask} {
		if n == "" {
			continue
		}
		t, err := tasks.Find(n, in.TaskDirs...)
		if err != nil {
			return nil, err
		}
		exs, err := t.Examples(in.DataRoot, in.Limit)
		if err != nil {
			return nil, err
		}
		w.tasks[n], w.exs[n] = t, exs
	}
	worlds[key] = w
	return w, nil
}

// Record evaluates sys on task, once per process.
func (w *World) Record(sys results.System, task string) (results.Record, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := [2]string{sys.Key(), task}
	if r, ok := w.records[k]; ok {
		return r, nil
	}
	t := w.tasks[task]
	if t == nil {
		return results.Record{}, fmt.Errorf("scenario: task %q is not part of this world", task)
	}
	recs, err := w.Session.Evaluate(t, w.exs[task], []results.System{sys}, nil)
	if err != nil {
		return results.Record{}, err
	}
	w.records[k] = recs[0]
	return recs[0], nil
}

// Adapter returns an input adapter by name.
func (w *World) Adapter(name string) *adapter.Adapter { return w.Session.Input(name) }

// Merge combines the named input adapters.
func (w *World) Merge(names []string, opts merge.Options) (*merge.Result, error) {
	var ads []*adapter.Adapter
	for _, n := range names {
		a := w.Adapter(n)
		if a == nil {
			return nil, fmt.Errorf("scenario: no adapter %q", n)
		}
		ads = append(ads, a)
	}
	return merge.Merge(ads, opts)
}

// Single is the system of one adapter alone.
func Single(name string) results.System { return results.System{Adapters: []string{name}} }

// Combo is the system of the translation and chat adapters combined.
func (r Roles) Combo(method string, wTranslation, wChat float64) results.System {
	return results.System{Adapters: []string{r.Translation, r.Chat}, Method: method, Weights: []float64{wTranslation, wChat}}
}

// RepoRoot finds the folder holding go.mod above the working directory
// (tests run in their package folder).
func RepoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
