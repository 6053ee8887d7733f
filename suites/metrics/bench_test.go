package metrics_test

import (
	"encoding/json"
	"os"
	"testing"

	"loramix/suites/metrics"
)

func benchCorpus(b *testing.B) (hyps, refs []string) {
	data, err := os.ReadFile("testdata/sacrebleu_golden.json")
	if err != nil {
		b.Fatal(err)
	}
	var g struct{ Pairs []struct{ Hyp, Ref string } }
	if err := json.Unmarshal(data, &g); err != nil {
		b.Fatal(err)
	}
	for _, p := range g.Pairs {
		hyps, refs = append(hyps, p.Hyp), append(refs, p.Ref)
	}
	return hyps, refs
}

// BenchmarkCorpusBLEU scores the 414 golden pairs.
func BenchmarkCorpusBLEU(b *testing.B) {
	hyps, refs := benchCorpus(b)
	for b.Loop() {
		if _, err := metrics.CorpusBLEU(hyps, refs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCorpusCHRF scores the 414 golden pairs with chrF2.
func BenchmarkCorpusCHRF(b *testing.B) {
	hyps, refs := benchCorpus(b)
	for b.Loop() {
		if _, err := metrics.CorpusCHRF(hyps, refs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPairedBootstrap runs 1000 paired BLEU resamples over 414 segments.
func BenchmarkPairedBootstrap(b *testing.B) {
	hyps, refs := benchCorpus(b)
	st, _ := metrics.CorpusStats(metrics.BLEU{}, hyps, [][]string{refs})
	for b.Loop() {
		if _, err := metrics.PairedBootstrap(metrics.BLEU{}, st, st, 1000, 1); err != nil {
			b.Fatal(err)
		}
	}
}
