package merge

import (
	"math"
	"math/rand/v2"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"gonum.org/v1/gonum/mat"
)

// randTerms returns random terms of the given ranks for an (out, in) update.
func randTerms(seed uint64, out, in int, coefs []float64, ranks ...int) []Term {
	rng := rand.New(rand.NewPCG(seed, 7))
	ts := make([]Term, len(ranks))
	for i, r := range ranks {
		t := Term{Coef: coefs[i], R: r, B: make([]float32, out*r), A: make([]float32, r*in)}
		for j := range t.B {
			t.B[j] = float32(rng.NormFloat64())
		}
		for j := range t.A {
			t.A[j] = float32(rng.NormFloat64() * 0.1)
		}
		ts[i] = t
	}
	return ts
}

// reconstruct returns U diag(S[:K]) Vt (out, in).
func reconstruct(s *SVD) *mat.Dense {
	d := mat.NewDense(s.Out, s.In, nil)
	if s.K == 0 {
		return d
	}
	B, A := s.Factors(s.K)
	d.Mul(mat.NewDense(s.Out, s.K, B), mat.NewDense(s.K, s.In, A))
	return d
}

func orthonormality(m mat.Matrix, cols bool) float64 {
	var g mat.Dense
	if cols {
		g.Mul(m.T(), m)
	} else {
		g.Mul(m, m.T())
	}
	n, _ := g.Dims()
	worst := 0.0
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			want := 0.0
			if i == j {
				want = 1
			}
			worst = math.Max(worst, math.Abs(g.At(i, j)-want))
		}
	}
	return worst
}

var _ = Describe("LowRankSVD", func() {
	DescribeTable("agrees with gonum's full-matrix SVD",
		func(out, in int, k int, coefs []float64, ranks ...int) {
			p := NewProduct(out, in, randTerms(uint64(out*in+k), out, in, coefs, ranks...))
			low := LowRankSVD(p, k)
			if k == 0 { // every component: at most R of them, and the exact update
				Expect(low.K).To(Equal(min(p.R, out, in)))
				Expect(relErr(reconstruct(low), p.Dense())).To(BeNumerically("<", 1e-10))
				k = low.K
			}
			full := FullSVD(p.Dense(), k)
			Expect(low.K).To(Equal(full.K))
			// the reconstructed truncated update, within 1e-5 relative (the target)
			Expect(relErr(reconstruct(low), reconstruct(full))).To(BeNumerically("<", 1e-5))
			// singular values
			for i := 0; i < low.K; i++ {
				Expect(low.S[i]).To(BeNumerically("~", full.S[i], 1e-9*full.S[0]))
			}
			Expect(orthonormality(low.U, true)).To(BeNumerically("<", 1e-9))
			Expect(orthonormality(low.Vt, false)).To(BeNumerically("<", 1e-9))
			// the same sign convention on both paths (distinct singular values)
			var d mat.Dense
			d.Sub(low.Vt, full.Vt)
			Expect(mat.Norm(&d, math.Inf(1))).To(BeNumerically("<", 1e-6))
		},
		Entry("tall, two adapters, truncated", 300, 120, 8, []float64{1, 0.5}, 8, 8),
		Entry("wide, three adapters, truncated", 90, 400, 6, []float64{1, -1, 0.3}, 8, 4, 8),
		Entry("all components", 200, 150, 0, []float64{2, 0.2}, 16, 16),
		Entry("stack wider than out (R > out)", 20, 200, 0, []float64{1, 1, 1}, 8, 8, 8),
		Entry("stack wider than in (R > in)", 200, 12, 5, []float64{1, 0.5}, 8, 8),
		Entry("one adapter", 64, 96, 4, []float64{0.7}, 8),
	)

	It("handles rank-deficient stacks (the same adapter twice, a zero B) on the Householder path", func() {
		ts := randTerms(3, 120, 80, []float64{1, 1}, 8, 4)
		twice := append(ts, Term{Coef: -0.5, R: 8, B: ts[0].B, A: ts[0].A})
		zero := Term{Coef: 1, R: 4, B: make([]float32, 120*4), A: ts[1].A}
		for _, terms := range [][]Term{twice, append(ts, zero)} {
			p := NewProduct(120, 80, terms)
			_, ok := choleskySVD(p, 0)
			Expect(ok).To(BeFalse(), "CholeskyQR must refuse a singular Gram matrix")
			low := LowRankSVD(p, 0)
			full := FullSVD(p.Dense(), 0)
			Expect(low.Rank(0)).To(Equal(12))
			Expect(full.Rank(0)).To(Equal(12))
			Expect(relErr(reconstruct(low), p.Dense())).To(BeNumerically("<", 1e-10))
		}
	})

	It("takes the CholeskyQR and the Householder paths to the same answer", func() {
		p := NewProduct(500, 300, randTerms(5, 500, 300, []float64{1, 0.25}, 16, 16))
		chol, ok := choleskySVD(p, 10)
		Expect(ok).To(BeTrue())
		house := householderSVD(p, 10)
		Expect(relErr(reconstruct(chol), reconstruct(house))).To(BeNumerically("<", 1e-10))
		Expect(chol.S).To(HaveLen(32))
		for i := range chol.S {
			Expect(chol.S[i]).To(BeNumerically("~", house.S[i], 1e-10*house.S[0]))
		}
	})

	It("falls back when the stacked factors are ill conditioned", func() {
		ts := randTerms(9, 200, 100, []float64{1, 1e-6}, 4, 4)
		copy(ts[1].B, ts[0].B) // nearly parallel columns: cond(Bt) ~ 1e6
		for i := range ts[1].B {
			ts[1].B[i] += float32(1e-7 * float64(i%7))
		}
		p := NewProduct(200, 100, ts)
		low := LowRankSVD(p, 0)
		Expect(relErr(reconstruct(low), p.Dense())).To(BeNumerically("<", 1e-8))
	})

	It("reports the numerical rank and the truncation error", func() {
		// rank 5 from a stack of R = 12
		ts := randTerms(11, 100, 70, []float64{1}, 5)
		ts = append(ts, Term{Coef: 2, R: 5, B: ts[0].B, A: ts[0].A})
		ts = append(ts, randTerms(12, 100, 70, []float64{0}, 2)...) // weight 0
		p := NewProduct(100, 70, ts)
		s := LowRankSVD(p, 3)
		Expect(s.Rank(0)).To(Equal(5))
		Expect(s.Rank(1e-3)).To(Equal(5))
		Expect(s.Rank(2)).To(Equal(0))
		full := FullSVD(p.Dense(), 3)
		Expect(s.TruncationError()).To(BeNumerically("~", relErr(reconstruct(full), p.Dense()), 1e-9))
		Expect(FullSVD(mat.NewDense(4, 3, nil), 0).Rank(0)).To(Equal(0))
	})

	It("computes ||Delta||_F from the Gram matrices", func() {
		p := NewProduct(60, 50, randTerms(2, 60, 50, []float64{1, -2}, 3, 5))
		Expect(p.FrobeniusNorm()).To(BeNumerically("~", mat.Norm(p.Dense(), 2), 1e-10*mat.Norm(p.Dense(), 2)))
	})
})

var _ = Describe("svd_clamp's quantile", func() {
	It("interpolates linearly between order statistics, as torch.quantile does", func() {
		x := []float64{4, 1, 3, 2}
		Expect(quantile(x, 0)).To(Equal(1.0))
		Expect(quantile(x, 1)).To(Equal(4.0))
		Expect(quantile(x, 0.5)).To(Equal(2.5))
		Expect(quantile(x, 0.9)).To(BeNumerically("~", 3.7, 1e-15))
		Expect(x).To(Equal([]float64{4, 1, 3, 2}), "quantile must not reorder its input")
	})
	It("clamps B and A into [-hi, hi]", func() {
		B := []float64{-5, 0.5, 2}
		A := []float64{1, -1, 0.1, 3}
		clampFactors(B, A, 0.75) // sorted: -5 -1 .1 .5 1 2 3 → pos 4.5 → 1.5
		Expect(B).To(Equal([]float64{-1.5, 0.5, 1.5}))
		Expect(A).To(Equal([]float64{1, -1, 0.1, 1.5}))
	})
})
