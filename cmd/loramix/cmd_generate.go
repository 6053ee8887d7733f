package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"loramix/engine/adapter"
	"loramix/engine/backend"
	"loramix/engine/checkpoint"
	"loramix/engine/cpu"
	"loramix/engine/dtype"
	"loramix/engine/llama"
	"loramix/engine/safetensors"
	"loramix/engine/tokenizer"
)

// `loramix generate` continues one prompt with a Llama checkpoint on the
// CPU, optionally with LoRA adapters (one active), and can write the prompt
// logits for comparison with other engines.
func init() {
	register("generate", "continue a prompt: generate --model DIR_OR_ID (--prompt TEXT | --prompt-ids 1,2,3) [flags]",
		func(args []string) error { return runGenerate(args, os.Stdout, os.Stderr) })
}

// adapterFlags collects repeated --adapter NAME=DIR values, in order.
type adapterFlags []struct{ name, dir string }

func (a *adapterFlags) String() string { return fmt.Sprint(*a) }

func (a *adapterFlags) Set(v string) error {
	name, dir, ok := strings.Cut(v, "=")
	if !ok || name == "" || dir == "" {
		return fmt.Errorf("want NAME=DIR, got %q", v)
	}
	for _, e := range *a {
		if e.name == name {
			return fmt.Errorf("adapter name %q given twice", name)
		}
	}
	*a = append(*a, struct{ name, dir string }{name, dir})
	return nil
}

// generateOutput is the --format json line; ids are the new tokens only.
type generateOutput struct {
	IDs  []int32 `json:"ids"`
	Text *string `json:"text,omitempty"`
}

func runGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "checkpoint folder or cached hub id (required)")
	tokPath := fs.String("tokenizer", "", "tokenizer.json (default: the one beside the model, if any)")
	var adapters adapterFlags
	fs.Var(&adapters, "adapter", "load a PEFT adapter: NAME=DIR (repeatable)")
	active := fs.String("active", "", "the adapter to apply (default: the first --adapter; \"base\" for none)")
	quant := fs.String("quant", "nf4", "decoder linear layers: nf4, fp16 or fp32")
	compute := fs.String("compute", "fp32", "compute dtype: fp32 or fp16 (emulated by rounding on the CPU)")
	prompt := fs.String("prompt", "", "prompt text (needs a tokenizer)")
	promptIDs := fs.String("prompt-ids", "", "prompt token ids, comma-separated")
	maxNew := fs.Int("max-new-tokens", 64, "new tokens at most")
	greedy := fs.Bool("greedy", false, "greedy decoding (the default unless --temperature > 0)")
	temp := fs.Float64("temperature", 0, "sampling temperature (0: greedy)")
	topP := fs.Float64("top-p", 0, "sampling: nucleus probability (0: off)")
	topK := fs.Int("top-k", 0, "sampling: keep the k most likely tokens (0: off)")
	seed := fs.Uint64("seed", 0, "sampling seed")
	var stops stringList
	fs.Var(&stops, "stop", "stop when the new text contains this string (repeatable; needs a tokenizer)")
	logitsOut := fs.String("logits-out", "", "write the F32 logits of every prompt position to this .safetensors file (tensor \"logits\", [positions, vocab])")
	format := fs.String("format", "text", "output: text or json ({\"ids\": [...], \"text\": \"...\"})")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case *model == "":
		return errors.New("--model is required")
	case (*prompt == "") == (*promptIDs == ""):
		return errors.New("give exactly one of --prompt and --prompt-ids")
	case *format != "text" && *format != "json":
		return fmt.Errorf("--format %q: want text or json", *format)
	case *greedy && *temp > 0:
		return errors.New("--greedy and --temperature > 0 contradict each other")
	case *maxNew <= 0:
		return fmt.Errorf("--max-new-tokens %d: want > 0", *maxNew)
	}
	q, err := llama.ParseQuant(*quant)
	if err != nil {
		return err
	}
	cdt := backend.F32
	switch *compute {
	case "fp32":
	case "fp16":
		cdt = backend.F16
	default:
		return fmt.Errorf("--compute %q: want fp32 or fp16", *compute)
	}

	dir, err := checkpoint.Resolve(*model)
	if err != nil {
		return err
	}
	var tok *tokenizer.Tokenizer
	if *tokPath == "" {
		if p := filepath.Join(dir, "tokenizer.json"); fileExists(p) {
			*tokPath = p
		}
	}
	if *tokPath != "" {
		if tok, err = tokenizer.Load(*tokPath); err != nil {
			return err
		}
	}
	if tok == nil && (*prompt != "" || len(stops) > 0) {
		return fmt.Errorf("--prompt and --stop need a tokenizer: give --tokenizer or put tokenizer.json in %s", dir)
	}

	start := time.Now()
	fmt.Fprintf(stderr, "loading %s (%s)\n", dir, q)
	m, err := loadModel(dir, q, cdt, *threads)
	if err != nil {
		return err
	}
	for _, a := range adapters {
		ad, err := adapter.Load(a.dir)
		if err != nil {
			return err
		}
		ad.Name = a.name
		if err := m.AddAdapter(ad); err != nil {
			return err
		}
	}
	if *active == "" && len(adapters) > 0 {
		*active = adapters[0].name
	}
	if *active != "" {
		if err := m.SetActive(*active); err != nil {
			return fmt.Errorf("--active: %v", err)
		}
	}
	fmt.Fprintf(stderr, "loaded in %.1fs\n", time.Since(start).Seconds())

	var ids []int32
	if *prompt != "" {
		for _, id := range tok.Encode(*prompt, tok.AddsBOS()) {
			ids = append(ids, int32(id))
		}
	} else if ids, err = parseGenIDs(*promptIDs); err != nil {
		return fmt.Errorf("--prompt-ids: %v", err)
	}
	vocab := m.Config.VocabSize
	for _, id := range ids {
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("--prompt-ids: id %d outside the model's vocabulary of %d", id, vocab)
		}
	}
	if len(ids) == 0 {
		return errors.New("the prompt has no tokens")
	}

	if *logitsOut != "" {
		lg, err := m.Logits([][]int32{ids})
		if err != nil {
			return err
		}
		raw, err := dtype.FromFloat32(lg[0], dtype.F32)
		if err != nil {
			return err
		}
		t := safetensors.Tensor{Name: "logits", DType: dtype.F32, Shape: []int{len(ids), vocab}, Data: raw}
		if err := safetensors.Write(*logitsOut, []safetensors.Tensor{t}, map[string]string{"model": dir, "adapter": m.Active(), "quant": string(q)}); err != nil {
			return err
		}
	}

	opts := llama.GenOptions{MaxNewTokens: *maxNew, Temperature: *temp, TopP: *topP, TopK: *topK, Seed: *seed, StopStrings: stops}
	if tok != nil {
		opts.Decode = func(ids []int32) string { return tok.Decode(toInts(ids)) }
	}
	genStart, last := time.Now(), time.Now()
	opts.Progress = func(done, total int) {
		if time.Since(last) > time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "generated %d/%d tokens (%.1f tok/s)\n", done, total, float64(done)/time.Since(genStart).Seconds())
		}
	}
	res, err := m.Generate([][]int32{ids}, opts)
	if err != nil {
		return err
	}
	r := res[0]
	secs := time.Since(genStart).Seconds()
	fmt.Fprintf(stderr, "%d prompt + %d new tokens in %.2fs (%.1f tok/s), stop: %s\n", len(ids), len(r.IDs), secs, float64(len(r.IDs))/secs, r.Reason)

	out := generateOutput{IDs: r.IDs}
	if tok != nil {
		text := tok.Decode(toInts(r.IDs))
		out.Text = &text
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(out)
	}
	if out.Text != nil {
		_, err = fmt.Fprintln(stdout, *out.Text)
		return err
	}
	_, err = fmt.Fprintln(stdout, strings.Trim(strings.Join(strings.Fields(fmt.Sprint(r.IDs)), ","), "[]"))
	return err
}

// loadModel opens a checkpoint folder and builds the model on the CPU.
func loadModel(dir string, q llama.Quant, compute backend.DType, threads int) (*llama.Model, error) {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	return loadModelOn(cpu.New(cpu.Options{Threads: threads, Compute: compute}), dir, q)
}

// loadModelOn opens a checkpoint folder and builds the model on b.
func loadModelOn(b backend.Backend, dir string, q llama.Quant) (*llama.Model, error) {
	return llama.LoadDir(b, dir, llama.Options{Quant: q})
}

func parseGenIDs(s string) ([]int32, error) {
	var ids []int32
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q is not a token id", f)
		}
		ids = append(ids, int32(v))
	}
	return ids, nil
}

func toInts(ids []int32) []int {
	out := make([]int, len(ids))
	for i, v := range ids {
		out[i] = int(v)
	}
	return out
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
