// Package eval runs tasks on a base model with adapters and their
// combinations, and turns the outputs into results.Records.
//
// A Session loads the base model and the named input adapters once. Each
// evaluated system (the base, one adapter, or a combination) becomes one
// adapter loaded in the model under its system key; one batch may mix
// systems, since the engine applies a per-sequence adapter.
package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"loramix/engine/adapter"
	"loramix/engine/backend"
	"loramix/engine/checkpoint"
	"loramix/engine/cpu"
	"loramix/engine/cuda"
	"loramix/engine/llama"
	"loramix/engine/merge"
	"loramix/engine/tokenizer"
	"loramix/suites/results"
)

// NamedDir is an adapter to load under a name ("fren=datasets/world/adapters/fren").
type NamedDir struct{ Name, Dir string }

// ParseNamedDirs reads NAME=DIR pairs.
func ParseNamedDirs(specs []string) ([]NamedDir, error) {
	var out []NamedDir
	seen := map[string]bool{}
	for _, s := range specs {
		name, dir, ok := strings.Cut(s, "=")
		if !ok || name == "" || dir == "" {
			return nil, fmt.Errorf("adapter %q: want NAME=DIR", s)
		}
		if seen[name] {
			return nil, fmt.Errorf("adapter %q: name %q given twice", s, name)
		}
		seen[name] = true
		out = append(out, NamedDir{name, dir})
	}
	return out, nil
}

// Config says what a Session loads.
type Config struct {
	Model     string // checkpoint folder or hub id
	Tokenizer string // tokenizer.json; "" looks beside the model, then at LORAMIX_TOKENIZER
	Adapters  []NamedDir
	Quant     llama.Quant // default NF4, as in the reference experiment
	Threads   int         // CPU threads; 0 means all
	Batch     int         // sequences per generation batch; 0 means 32
	// Device is "cpu" (the default) or "cuda" (a binary built with -tags
	// cuda). With several GPUs, worker i of a parallel run (Worker, 0-based,
	// e.g. GinkgoParallelProcess()-1) uses GPU i modulo their count.
	Device string
	Worker int
}

// NewBackend returns the backend cfg asks for.
func NewBackend(cfg Config) (backend.Backend, error) {
	switch cfg.Device {
	case "", "cpu":
		return cpu.New(cpu.Options{Threads: cfg.Threads}), nil
	case "cuda":
		n, err := cuda.DeviceCount()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("device cuda: no CUDA device")
		}
		return cuda.New(cuda.Options{Device: cfg.Worker % n, Compute: backend.F16})
	}
	return nil, fmt.Errorf("device %q: want cpu or cuda", cfg.Device)
}

// Session is a loaded base model with its input adapters.
type Session struct {
	Model *llama.Model
	Tok   *tokenizer.Tokenizer
	// Names are the input adapters in the order given.
	Names  []string
	inputs map[string]*adapter.Adapter
	// Merges records, per system key, the merge that made it.
	Merges map[string]*merge.Result
	// MergeSeconds records how long each merge took.
	MergeSeconds map[string]float64
	loaded       map[string]bool
	batch        int
	// done caches generations: greedy decoding is deterministic, so a
	// system's output on a prompt never needs computing twice.
	done     map[genKey]Generation
	Warnings []string
}

// Open loads the model (quantized as cfg.Quant says), the tokenizer and the
// adapters, and checks each adapter against the base.
func Open(cfg Config) (*Session, error) {
	if cfg.Quant == "" {
		cfg.Quant = llama.NF4
	}
	ck, err := checkpoint.Open(cfg.Model)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	tokPath, err := findTokenizer(cfg.Tokenizer, ck.Dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", cfg.Model, err)
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > ck.Config.VocabSize {
		return nil, fmt.Errorf("tokenizer %s has %d tokens, model %s only %d", tokPath, tok.VocabSize(), cfg.Model, ck.Config.VocabSize)
	}
	b, err := NewBackend(cfg)
	if err != nil {
		return nil, err
	}
	m, err := llama.Load(b, ck.Config, ck.Weights, llama.Options{Quant: cfg.Quant})
	if err != nil {
		return nil, err
	}
	s := &Session{Model: m, Tok: tok, inputs: map[string]*adapter.Adapter{}, Merges: map[string]*merge.Result{},
		MergeSeconds: map[string]float64{}, loaded: map[string]bool{}, batch: cfg.Batch, done: map[genKey]Generation{}}
	if s.batch <= 0 {
		s.batch = 32
	}
	for _, nd := range cfg.Adapters {
		a, err := adapter.Load(nd.Dir)
		if err != nil {
			return nil, err
		}
		a.Name = nd.Name
		warns, err := adapter.Validate(a, ck.Config, ck.Weights)
		if err != nil {
			return nil, err
		}
		s.Warnings = append(s.Warnings, warns...)
		s.inputs[nd.Name] = a
		s.Names = append(s.Names, nd.Name)
	}
	return s, nil
}

// findTokenizer picks the tokenizer: the one given, else the model's own
// tokenizer.json, else LORAMIX_TOKENIZER (the in-repo world ships none:
// the Makefile fetches it).
func findTokenizer(given, modelDir string) (string, error) {
	if given != "" {
		return given, nil
	}
	beside := filepath.Join(modelDir, "tokenizer.json")
	if _, err := os.Stat(beside); err == nil {
		return beside, nil
	}
	if env := os.Getenv("LORAMIX_TOKENIZER"); env != "" {
		return env, nil
	}
	return "", fmt.Errorf("no tokenizer.json beside the model and LORAMIX_TOKENIZER is unset; pass --tokenizer")
}

// Input returns a loaded input adapter, or nil.
func (s *Session) Input(name string) *adapter.Adapter { return s.inputs[name] }

// Prepare makes sys available for generation and returns the name of its
// adapter in the model (llama.Base for the base model). A combination is
// merged once, and the merge is kept for later calls.
func (s *Session) Prepare(sys results.System) (string, error) {
	key := sys.Key()
	if key == "base" {
		return llama.Base, nil
	}
	if s.loaded[key] {
		return key, nil
	}
	var ads []*adapter.Adapter
	for _, n := range sys.Adapters {
		a := s.inputs[n]
		if a == nil {
			return "", fmt.Errorf("system %s: no adapter %q is loaded (have %s)", key, n, strings.Join(s.Names, ", "))
		}
		ads = append(ads, a)
	}
	var a *adapter.Adapter
	if sys.Method == "" {
		cp := *ads[0]
		a = &cp
	} else {
		start := time.Now()
		res, err := merge.Merge(ads, merge.Options{Method: merge.Method(sys.Method), Weights: sys.Weights, Exact: sys.Exact, Name: key})
		if err != nil {
			return "", fmt.Errorf("system %s: %w", key, err)
		}
		s.MergeSeconds[key] = time.Since(start).Seconds()
		s.Merges[key] = res
		a = res.Adapter
	}
	a.Name = key
	if err := s.Model.AddAdapter(a); err != nil {
		return "", err
	}
	s.loaded[key] = true
	return key, nil
}

// Generation is one completed prompt.
type Generation struct {
	Text   string  // the new text, cut at the first stop string, stop string excluded
	IDs    []int32 // the new tokens, cut the same way (EOS excluded)
	Reason string  // "eos", "stop" or "length"
}

// Request is one prompt to run under one system.
type Request struct {
	System results.System
	Prompt string
}

// genKey identifies one greedy generation.
type genKey struct {
	system, prompt, stops string
	maxNew                int
}

// Generate runs every request greedily, in batches that may mix systems,
// with at most maxNew new tokens each and the given stop strings. Requests
// answered before (same system, prompt, limit and stops) come from a cache.
// progress, if not nil, is called with the number of requests finished.
func (s *Session) Generate(reqs []Request, maxNew int, stops []string, progress func(done int)) ([]Generation, error) {
	out := make([]Generation, len(reqs))
	stopKey := strings.Join(stops, "\x00")
	key := func(i int) genKey { return genKey{reqs[i].System.Key(), reqs[i].Prompt, stopKey, maxNew} }
	// Sort by prompt length so a batch wastes few steps on padding-free but
	// unequal prefill; keep the original positions.
	var order []int
	ids := make([][]int32, len(reqs))
	names := make([]string, len(reqs))
	for i, r := range reqs {
		if g, ok := s.done[key(i)]; ok {
			out[i] = g
			continue
		}
		order = append(order, i)
		name, err := s.Prepare(r.System)
		if err != nil {
			return nil, err
		}
		names[i] = name
		for _, t := range s.Tok.Encode(r.Prompt, true) {
			ids[i] = append(ids[i], int32(t))
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return len(ids[order[a]]) < len(ids[order[b]]) })
	decode := func(x []int32) string { return s.Tok.Decode(toInts(x)) }
	for lo := 0; lo < len(order); lo += s.batch {
		hi := min(lo+s.batch, len(order))
		var bp [][]int32
		var bn []string
		for _, i := range order[lo:hi] {
			bp = append(bp, ids[i])
			bn = append(bn, names[i])
		}
		res, err := s.Model.Generate(bp, llama.GenOptions{MaxNewTokens: maxNew, StopStrings: stops, Decode: decode, Adapters: bn})
		if err != nil {
			return nil, err
		}
		for j, i := range order[lo:hi] {
			out[i] = s.finish(res[j], stops)
			s.done[key(i)] = out[i]
		}
		if progress != nil {
			progress(len(reqs) - len(order) + hi)
		}
	}
	return out, nil
}

// finish decodes a result and cuts it at EOS and at the first stop string.
func (s *Session) finish(r llama.Result, stops []string) Generation {
	ids := r.IDs
	if r.Reason == "eos" && len(ids) > 0 {
		ids = ids[:len(ids)-1]
	}
	text := s.Tok.Decode(toInts(ids))
	if r.Reason == "stop" {
		cut := len(text)
		for _, st := range stops {
			if i := strings.Index(text, st); i >= 0 && i < cut {
				cut = i
			}
		}
		text = text[:cut]
	}
	return Generation{Text: text, IDs: ids, Reason: r.Reason}
}

func toInts(x []int32) []int {
	out := make([]int, len(x))
	for i, v := range x {
		out[i] = int(v)
	}
	return out
}
