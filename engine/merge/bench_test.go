package merge

import (
	"fmt"
	"testing"

	"loramix/engine/adapter"
)

// BenchmarkLowRankSVD times one module's low-rank SVD merge of two rank-r
// adapters over sizes up to Llama-2-7B's MLP (11008 x 4096).
func BenchmarkLowRankSVD(b *testing.B) {
	for _, s := range []struct{ out, in, r int }{
		{256, 256, 8}, {1024, 1024, 16}, {4096, 4096, 16}, {11008, 4096, 16}, {4096, 11008, 16}, {11008, 4096, 64},
	} {
		b.Run(fmt.Sprintf("%dx%d_r%d", s.out, s.in, s.r), func(b *testing.B) {
			ts := randTerms(1, s.out, s.in, []float64{1, 0.5}, s.r, s.r)
			for b.Loop() {
				LowRankSVD(NewProduct(s.out, s.in, ts), s.r)
			}
		})
	}
}

// BenchmarkFullSVD times the full-matrix path (form the delta, gonum SVD) on
// sizes where it finishes; compare with BenchmarkLowRankSVD.
func BenchmarkFullSVD(b *testing.B) {
	for _, s := range []struct{ out, in, r int }{{256, 256, 8}, {1024, 1024, 16}} {
		b.Run(fmt.Sprintf("%dx%d_r%d", s.out, s.in, s.r), func(b *testing.B) {
			ts := randTerms(1, s.out, s.in, []float64{1, 0.5}, s.r, s.r)
			for b.Loop() {
				FullSVD(NewProduct(s.out, s.in, ts).Dense(), s.r)
			}
		})
	}
}

// BenchmarkMergeModel times whole-model merges of two rank-16 adapters on
// the MLP modules of Llama-2-7B-shaped models with 1, 8 and 32 layers.
func BenchmarkMergeModel(b *testing.B) {
	for _, layers := range []int{1, 8, 32} {
		shapes := MLPShapes(layers, 4096, 11008)
		ads := []*adapter.Adapter{RandomAdapter("x", shapes, 16, 32, 1), RandomAdapter("y", shapes, 16, 32, 2)}
		for _, m := range []Method{SVDMethod, Cat, Linear} {
			b.Run(fmt.Sprintf("%s/%dmodules", m, len(shapes)), func(b *testing.B) {
				for b.Loop() {
					if _, err := Merge(ads, Options{Method: m, Weights: []float64{1, 1}}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
