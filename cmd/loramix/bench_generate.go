package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"loramix/engine/backend"
	"loramix/engine/cpu"
	"loramix/engine/dtype"
	"loramix/engine/llama"
)

// `loramix bench generate` measures prefill and decode throughput.
func init() {
	registerBench("generate", "prefill and decode tokens/s: bench generate [--model DIR | --shape small,7b-layer] [--quant nf4] [--batch 1,8]",
		func(args []string) error { return runBenchGenerate(args, os.Stdout, os.Stderr) })
}

// worldBase is the in-repo model, used when it has been built.
const worldBase = "datasets/world/base"

// BenchGenerateResult is one measured configuration (one JSON line with
// --json); `loramix report --bench` reads these lines as reports.Throughput.
type BenchGenerateResult struct {
	Model       string  `json:"model"`
	Device      string  `json:"device"`
	Card        string  `json:"card,omitempty"` // the CPU model
	Quant       string  `json:"quant"`
	Threads     int     `json:"threads"`
	Batch       int     `json:"batch"`
	PromptLen   int     `json:"prompt_len"`
	NewTokens   int     `json:"new_tokens"`
	PrefillTokS float64 `json:"prefill_tok_s"`
	DecodeTokS  float64 `json:"decode_tok_s"`
	// DecodeAllocs is the number of heap allocations per decode step.
	DecodeAllocs float64 `json:"decode_allocs_per_step"`
}

func runBenchGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "checkpoint folder (default: "+worldBase+" if built, else the random shapes)")
	shapes := fs.String("shape", "", "random F16 models: small (hidden 192, 4 layers, vocab 32000), world (the world model's shape: hidden 160, 6 layers), 7b-layer (one Llama-2-7B layer); comma-separated")
	quant := fs.String("quant", "nf4", "decoder linear layers: nf4, fp16 or fp32")
	batches := fs.String("batch", "1,8", "batch sizes, comma-separated")
	promptLen := fs.Int("prompt-len", 64, "prompt tokens per sequence")
	fs.IntVar(promptLen, "prompt", 64, "alias of --prompt-len")
	newTokens := fs.Int("new", 32, "decode steps")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	device := fs.String("device", "cpu", "cpu, or cuda in a binary built with -tags cuda (make cuda)")
	asJSON := fs.Bool("json", false, "print one JSON line per configuration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *device != "cpu" && *device != "cuda" {
		return fmt.Errorf("--device %q: want cpu or cuda", *device)
	}
	q, err := llama.ParseQuant(*quant)
	if err != nil {
		return err
	}
	var bs []int
	for _, f := range strings.Split(*batches, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || b <= 0 {
			return fmt.Errorf("--batch: %q is not a positive size", f)
		}
		bs = append(bs, b)
	}
	if *promptLen <= 0 || *newTokens <= 0 {
		return errors.New("--prompt-len and --new must be positive")
	}
	if *device == "cuda" { // random weights made on the GPU: bench_generate_cuda.go (-tags cuda)
		if benchGenerateCUDA == nil {
			return errors.New("--device cuda: this binary was built without the cuda tag (make cuda)")
		}
		return benchGenerateCUDA(cudaBenchArgs{Shape: *shapes, Quant: *quant, Batches: bs, Prompt: *promptLen,
			New: *newTokens, LoRARank: 16, Log: stdout})
	}
	if *threads <= 0 {
		*threads = runtime.GOMAXPROCS(0)
	}
	type target struct {
		name string
		load func() (*llama.Model, error)
	}
	newBackend := func() backend.Backend { return cpu.New(cpu.Options{Threads: *threads}) }
	var targets []target
	if *model == "" && *shapes == "" && fileExists(worldBase+"/config.json") {
		*model = worldBase
	}
	if *model != "" {
		dir := *model
		targets = append(targets, target{dir, func() (*llama.Model, error) { return loadModelOn(newBackend(), dir, q) }})
	}
	if *shapes == "" && *model == "" {
		*shapes = "small,world,7b-layer"
	}
	for _, s := range strings.Split(*shapes, ",") {
		var shape llama.Shape
		switch strings.TrimSpace(s) {
		case "":
			continue
		case "small":
			shape = llama.SmallShape
		case "world":
			shape = llama.WorldShape
		case "7b-layer":
			shape = llama.Llama7BLayer
		default:
			return fmt.Errorf("--shape %q: want small, world or 7b-layer", s)
		}
		name := "random-" + strings.TrimSpace(s)
		targets = append(targets, target{name, func() (*llama.Model, error) {
			cfg, err := shape.Config()
			if err != nil {
				return nil, err
			}
			return llama.Load(newBackend(), cfg, llama.RandomWeights(cfg, 1, 0.02, dtype.F16), llama.Options{Quant: q})
		}})
	}

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if !*asJSON {
		fmt.Fprintln(tw, "model\tquant\tthreads\tbatch\tprompt\tnew\tprefill tok/s\tdecode tok/s\tallocs/step\t")
	}
	for _, t := range targets {
		fmt.Fprintf(stderr, "loading %s (%s)\n", t.name, q)
		m, err := t.load()
		if err != nil {
			return err
		}
		for _, b := range bs {
			r, err := benchGenerate(m, b, *promptLen, *newTokens)
			if err != nil {
				return err
			}
			r.Model, r.Device, r.Card, r.Quant, r.Threads = t.name, *device, cpuModel(), string(q), *threads
			if *asJSON {
				line, _ := json.Marshal(r)
				fmt.Fprintln(stdout, string(line))
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t\n", r.Model, r.Quant, r.Threads, r.Batch, r.PromptLen, r.NewTokens, r.PrefillTokS, r.DecodeTokS, r.DecodeAllocs)
		}
	}
	return tw.Flush()
}

// benchGenerate runs batch prompts of promptLen random tokens through one
// prefill step and newTokens greedy decode steps, after a short warm-up.
func benchGenerate(m *llama.Model, batch, promptLen, newTokens int) (BenchGenerateResult, error) {
	r := BenchGenerateResult{Batch: batch, PromptLen: promptLen, NewTokens: newTokens}
	V := m.Config.VocabSize
	m.Reserve(batch, promptLen+newTokens+1)
	var ids, seq, pos, want []int32
	for b := 0; b < batch; b++ {
		for j := 0; j < promptLen; j++ {
			ids = append(ids, int32((b*7919+j*104729)%(V-3)+3))
			seq, pos = append(seq, int32(b)), append(pos, int32(j))
		}
		want = append(want, int32(len(ids)-1))
	}
	logits := make([]float32, batch*V)
	// Warm up (buffers, rope tables) on a short prompt.
	if err := m.Forward(ids[:1], seq[:1], pos[:1], []int32{0}, logits[:V]); err != nil {
		return r, err
	}
	t0 := time.Now()
	if err := m.Forward(ids, seq, pos, want, logits); err != nil {
		return r, err
	}
	r.PrefillTokS = float64(batch*promptLen) / time.Since(t0).Seconds()

	step := make([]int32, batch)
	dseq, dpos, dwant := make([]int32, batch), make([]int32, batch), make([]int32, batch)
	for b := range dseq {
		dseq[b], dwant[b] = int32(b), int32(b)
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	t0 = time.Now()
	for s := 0; s < newTokens; s++ {
		for b := 0; b < batch; b++ {
			step[b] = argmax(logits[b*V : (b+1)*V])
			dpos[b] = int32(promptLen + s)
		}
		if err := m.Forward(step, dseq, dpos, dwant, logits); err != nil {
			return r, err
		}
	}
	r.DecodeTokS = float64(batch*newTokens) / time.Since(t0).Seconds()
	runtime.ReadMemStats(&ms1)
	r.DecodeAllocs = float64(ms1.Mallocs-ms0.Mallocs) / float64(newTokens)
	return r, nil
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

// cpuModel returns the processor's model name from /proc/cpuinfo, or "".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
