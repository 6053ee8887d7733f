package llama_test

import (
	"fmt"
	"testing"

	"loramix/engine/cpu"
	"loramix/engine/dtype"
	"loramix/engine/llama"
)

// BenchmarkDecode measures one decode step (one token per sequence, KV
// cache of 64 positions) of the random small model, per quantization and
// batch size; it reports tokens/s and allocations per step.
func BenchmarkDecode(b *testing.B) {
	for _, q := range []llama.Quant{llama.NF4, llama.FP16, llama.FP32} {
		for _, batch := range []int{1, 8} {
			b.Run(fmt.Sprintf("small/%s/batch=%d", q, batch), func(b *testing.B) {
				cfg, err := llama.SmallShape.Config()
				if err != nil {
					b.Fatal(err)
				}
				m, err := llama.Load(cpu.New(cpu.Options{}), cfg, llama.RandomWeights(cfg, 1, 0.02, dtype.F16), llama.Options{Quant: q})
				if err != nil {
					b.Fatal(err)
				}
				m.Reserve(batch, 64+b.N+1)
				V := cfg.VocabSize
				ids, seq, pos, want := make([]int32, batch), make([]int32, batch), make([]int32, batch), make([]int32, batch)
				for i := range seq {
					seq[i], want[i], ids[i] = int32(i), int32(i), int32(3+i)
				}
				logits := make([]float32, batch*V)
				b.ReportAllocs()
				b.ResetTimer()
				for s := 0; s < b.N; s++ {
					for i := range pos {
						pos[i] = int32(s % 64)
					}
					if err := m.Forward(ids, seq, pos, want, logits); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}

// BenchmarkPrefill measures a 64-token prompt of the random small model.
func BenchmarkPrefill(b *testing.B) {
	cfg, err := llama.SmallShape.Config()
	if err != nil {
		b.Fatal(err)
	}
	m, err := llama.Load(cpu.New(cpu.Options{}), cfg, llama.RandomWeights(cfg, 1, 0.02, dtype.F16), llama.Options{Quant: llama.NF4})
	if err != nil {
		b.Fatal(err)
	}
	const n = 64
	m.Reserve(1, n)
	ids, seq, pos := make([]int32, n), make([]int32, n), make([]int32, n)
	for i := range ids {
		ids[i], pos[i] = int32(3+i), int32(i)
	}
	logits := make([]float32, cfg.VocabSize)
	b.ResetTimer()
	for range b.N {
		if err := m.Forward(ids, seq, pos, []int32{n - 1}, logits); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
}
