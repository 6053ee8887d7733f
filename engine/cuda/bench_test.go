//go:build cuda

package cuda_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"loramix/engine/cuda"
)

// BenchmarkGenerate runs the Llama-2-7B NF4 generation benchmark (random
// weights made on the GPU) once: batch 1, 16 and 64, 128 prompt tokens, 128
// new tokens, and a rank-16 adapter at batch 1. LORAMIX_BENCH_OUT names a
// JSON file for the report. `loramix bench generate --device cuda` runs the
// same code.
func BenchmarkGenerate(b *testing.B) {
	g, err := cuda.New(cuda.Options{})
	if err != nil {
		b.Skip("no CUDA device: " + err.Error())
	}
	defer g.Close()
	cfg := cuda.BenchConfig{Shape: cuda.Llama2_7B, Batches: []int{1, 16, 64}, Prompt: 128, New: 128, LoRARank: 16, Seed: 1}
	if l, err := strconv.Atoi(os.Getenv("LORAMIX_BENCH_LAYERS")); err == nil { // a shorter model, for debugging
		cfg.Shape.Layers = l
		cfg.Shape.Name += fmt.Sprintf("-%dlayers", l)
	}
	if v := os.Getenv("LORAMIX_BENCH_BATCHES"); v != "" { // fewer batch sizes, for profiling
		cfg.Batches = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				b.Fatalf("LORAMIX_BENCH_BATCHES: %q is not a batch size", f)
			}
			cfg.Batches = append(cfg.Batches, n)
		}
	}
	cfg.Variants = os.Getenv("LORAMIX_BENCH_VARIANTS") // a regexp: fewer side-by-side variants
	res, err := cuda.Bench(g, cfg, os.Stdout)          // b.Log would truncate the profile
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range res {
		if r.Batch == 1 {
			b.ReportMetric(r.DecodeTokS, "tok/s(b1)")
			b.ReportMetric(r.BandwidthShare*100, "%bw(b1)")
		}
	}
	if path := os.Getenv("LORAMIX_BENCH_OUT"); path != "" {
		rep := cuda.BenchReport{Benchmark: "generate", Device: g.Device(), Date: time.Now().UTC().Format(time.RFC3339), Config: cfg, Results: res}
		if err := cuda.WriteBenchReport(path, rep); err != nil {
			b.Fatal(err)
		}
	}
}
