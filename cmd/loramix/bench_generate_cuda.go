//go:build cuda

package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"loramix/engine/cuda"
)

func init() { benchGenerateCUDA = runBenchGenerateCUDA }

func runBenchGenerateCUDA(a cudaBenchArgs) error {
	if a.Quant != "" && a.Quant != "nf4" {
		return fmt.Errorf("--device cuda: --quant %q: only nf4 is implemented on the GPU", a.Quant)
	}
	var shape cuda.BenchShape
	switch a.Shape {
	case "", "llama-2-7b":
		shape = cuda.Llama2_7B
	default:
		return fmt.Errorf("--device cuda: --shape %q: want llama-2-7b", a.Shape)
	}
	for _, b := range a.Batches {
		if b <= 0 {
			return fmt.Errorf("--batch %d: must be positive", b)
		}
	}
	if a.Prompt <= 0 || a.New <= 0 {
		return fmt.Errorf("--prompt %d --new %d: both must be positive", a.Prompt, a.New)
	}
	g, err := cuda.New(cuda.Options{})
	if err != nil {
		return err
	}
	defer g.Close()
	cfg := cuda.BenchConfig{Shape: shape, Batches: a.Batches, Prompt: a.Prompt, New: a.New, LoRARank: a.LoRARank, Seed: 1}
	res, err := cuda.Bench(g, cfg, a.Log)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	out := a.Out
	if out == "" {
		card := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(g.Device()), "-"), "-")
		out = filepath.Join("bench", "results", fmt.Sprintf("generate-cuda-%s-%s.json", card, now.Format("20060102-150405")))
	}
	rep := cuda.BenchReport{Benchmark: "generate", Device: g.Device(), Date: now.Format(time.RFC3339), Config: cfg, Results: res}
	if err := cuda.WriteBenchReport(out, rep); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	fmt.Fprintf(a.Log, "wrote %s\n", out)
	return nil
}
