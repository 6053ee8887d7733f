package merge

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"
)

// Term is one weighted LoRA update Coef * B @ A.
type Term struct {
	Coef float64
	R    int
	B    []float32 // (out, R), row-major
	A    []float32 // (R, in), row-major
}

// Product is a low-rank update kept in factored form, Delta = Bt^T @ A, with
// the R stacked factors stored as long rows:
//
//	Bt (R, out): row j is column j of the stacked, coefficient-scaled B's
//	A  (R, in):  row j is row j of the stacked A's
//
// Delta (out, in) has rank at most R and is never formed, except by Dense.
type Product struct {
	Out, In, R int
	Bt         []float64 // (R, out), row-major
	A          []float64 // (R, in), row-major
}

// NewProduct stacks terms into sum_i Coef_i * B_i @ A_i. Every term must have
// B of length out*R and A of length R*in; a mismatch panics (a programming
// error: adapters are checked when they are loaded).
func NewProduct(out, in int, terms []Term) Product {
	R := 0
	for _, t := range terms {
		if len(t.B) != out*t.R || len(t.A) != t.R*in {
			panic(fmt.Sprintf("merge: term of rank %d does not fit (%d, %d)", t.R, out, in))
		}
		R += t.R
	}
	p := Product{Out: out, In: in, R: R, Bt: make([]float64, R*out), A: make([]float64, R*in)}
	row := 0
	for _, t := range terms {
		// Bt's rows are B's columns: transpose in blocks of rows of B that stay in L1.
		const bs = 64
		for o0 := 0; o0 < out; o0 += bs {
			o1 := min(o0+bs, out)
			for j := 0; j < t.R; j++ {
				dst := p.Bt[(row+j)*out+o0 : (row+j)*out+o1]
				for o := range dst {
					dst[o] = t.Coef * float64(t.B[(o0+o)*t.R+j])
				}
			}
		}
		for j := 0; j < t.R; j++ {
			src := t.A[j*in : (j+1)*in]
			dstA := p.A[(row+j)*in : (row+j+1)*in]
			for i, v := range src {
				dstA[i] = float64(v)
			}
		}
		row += t.R
	}
	return p
}

// Dense forms the full update Bt^T @ A (out, in). It is for checks and for the
// merge rules that need full deltas; the SVD merge never calls it.
func (p Product) Dense() *mat.Dense {
	d := mat.NewDense(p.Out, p.In, nil)
	if p.R == 0 {
		return d
	}
	bt := mat.NewDense(p.R, p.Out, p.Bt)
	a := mat.NewDense(p.R, p.In, p.A)
	d.Mul(bt.T(), a)
	return d
}

// FrobeniusNorm returns ||Bt^T A||_F from the two R x R Gram matrices.
func (p Product) FrobeniusNorm() float64 {
	gb := gram(p.Bt, p.R, p.Out)
	ga := gram(p.A, p.R, p.In)
	return math.Sqrt(math.Max(traceProduct(gb, ga, p.R), 0))
}

// SVD is a truncated singular value decomposition of an (out, in) update:
// Delta ≈ U diag(S[:K]) Vt.
//
// Singular vectors are unique only up to sign (and within repeated singular
// values); loramix fixes the sign so that the largest-magnitude entry of each
// row of Vt is positive, whichever path computed it.
type SVD struct {
	Out, In int
	// S holds every singular value the factorization found, descending: at
	// most min(R, out, in) for the low-rank path, min(out, in) for the full one.
	S  []float64
	K  int        // number of kept components
	U  *mat.Dense // (out, K), orthonormal columns; nil when K == 0
	Vt *mat.Dense // (K, in), orthonormal rows; nil when K == 0
}

// Rank returns the numerical rank: the number of singular values above
// tol * S[0]. A tol <= 0 selects max(out, in) * machine epsilon, as numpy's
// matrix_rank does.
func (s *SVD) Rank(tol float64) int {
	if len(s.S) == 0 || s.S[0] == 0 {
		return 0
	}
	if tol <= 0 {
		tol = float64(max(s.Out, s.In)) * 0x1p-52
	}
	n := 0
	for _, v := range s.S {
		if v > tol*s.S[0] {
			n++
		}
	}
	return n
}

// TruncationError returns ||Delta - U diag(S[:K]) Vt||_F / ||Delta||_F, from
// the singular values that were dropped.
func (s *SVD) TruncationError() float64 {
	var all, tail float64
	for i, v := range s.S {
		all += v * v
		if i >= s.K {
			tail += v * v
		}
	}
	if all == 0 {
		return 0
	}
	return math.Sqrt(tail / all)
}

// Factors returns LoRA factors of the truncated update, padded with zeros to
// rank r >= K: B = U diag(S) (out, r) and A = Vt (r, in), as PEFT writes them.
func (s *SVD) Factors(r int) (B, A []float64) {
	if r < s.K {
		panic(fmt.Sprintf("merge: Factors(%d) below the %d kept components", r, s.K))
	}
	B = make([]float64, s.Out*r)
	A = make([]float64, r*s.In)
	if s.K == 0 {
		return B, A
	}
	u := s.U.RawMatrix()
	for o := 0; o < s.Out; o++ {
		row := u.Data[o*u.Stride : o*u.Stride+s.K]
		for j, v := range row {
			B[o*r+j] = v * s.S[j]
		}
	}
	for j := 0; j < s.K; j++ {
		copy(A[j*s.In:(j+1)*s.In], s.Vt.RawRowView(j))
	}
	return B, A
}

// LowRankSVD returns the rank-k truncated SVD of p without forming the
// (out, in) matrix. With thin QR factorizations Bt^T = Qb Rb and A^T = Qa Ra,
// Delta = Qb (Rb Ra^T) Qa^T, so an SVD of the small core Rb Ra^T = Uc S Vc^T
// gives U = Qb Uc and V = Qa Vc. k <= 0 keeps every component.
//
// The QR factors come from Cholesky factors of the R x R Gram matrices
// (CholeskyQR, which needs only dot products of the long rows) when both are
// well conditioned, and from Householder LQ factorizations of Bt and A
// otherwise (rank-deficient stacks, such as an adapter with B = 0 or the same
// adapter twice). The cost is O((out + in) R^2), against O(out in min(out, in))
// for the full matrix.
func LowRankSVD(p Product, k int) *SVD {
	if p.R == 0 {
		return &SVD{Out: p.Out, In: p.In}
	}
	if s, ok := choleskySVD(p, k); ok {
		return s
	}
	return householderSVD(p, k)
}

// condLimit bounds the estimated condition number of the stacked factors on
// the CholeskyQR path; past it the Householder path is used. CholeskyQR loses
// accuracy as cond^2 * eps; 1e4 keeps that near 1e-8.
const condLimit = 1e4

func choleskySVD(p Product, k int) (*SVD, bool) {
	R := p.R
	rb, ok := cholUpper(gram(p.Bt, R, p.Out), R) // Bt^T = Qb rb
	if !ok {
		return nil, false
	}
	ra, ok := cholUpper(gram(p.A, R, p.In), R) // A^T = Qa ra
	if !ok {
		return nil, false
	}
	// core = rb ra^T (R, R)
	core := mat.NewDense(R, R, nil)
	core.Mul(mat.NewDense(R, R, rb), mat.NewDense(R, R, ra).T())
	var svd mat.SVD
	if !svd.Factorize(core, mat.SVDFull) {
		return nil, false
	}
	S := svd.Values(nil)
	var uc, vc mat.Dense
	svd.UTo(&uc)
	svd.VTo(&vc)
	K := keep(k, len(S))
	// tu = rb^-1 Uc[:, :K] and tv = ra^-1 Vc[:, :K], both (R, K), so that
	// U = Bt^T tu and V = A^T tv.
	tu := solveUpper(rb, R, firstCols(&uc, K))
	tv := solveUpper(ra, R, firstCols(&vc, K))
	ut := combineRows(tu, R, K, p.Bt, p.Out) // U^T (K, out)
	vt := combineRows(tv, R, K, p.A, p.In)   // Vt (K, in)
	s := &SVD{Out: p.Out, In: p.In, S: S, K: K,
		U: denseOrEmpty(p.Out, K, transpose(ut, K, p.Out)), Vt: denseOrEmpty(K, p.In, vt)}
	fixSigns(s)
	return s, true
}

func householderSVD(p Product, k int) *SVD {
	R := p.R
	lb, qb := lq(p.Bt, R, p.Out) // Bt = lb Qb: lb (R, pb), Qb rows orthonormal
	la, qa := lq(p.A, R, p.In)
	pb, pa := min(R, p.Out), min(R, p.In)
	// Delta = Qb^T lb^T la Qa; core = lb^T la (pb, pa)
	core := mat.NewDense(pb, pa, nil)
	core.Mul(mat.NewDense(R, pb, lb).T(), mat.NewDense(R, pa, la))
	var svd mat.SVD
	if !svd.Factorize(core, mat.SVDFull) {
		panic("merge: SVD of the core did not converge")
	}
	S := svd.Values(nil)
	var uc, vc mat.Dense
	svd.UTo(&uc)
	svd.VTo(&vc)
	K := keep(k, len(S))
	ut := qb.applyRight(firstCols(&uc, K), K) // U^T = Uc^T Qb (K, out)
	vt := qa.applyRight(firstCols(&vc, K), K) // Vt = Vc^T Qa (K, in)
	s := &SVD{Out: p.Out, In: p.In, S: S, K: K,
		U: denseOrEmpty(p.Out, K, transpose(ut, K, p.Out)), Vt: denseOrEmpty(K, p.In, vt)}
	fixSigns(s)
	return s
}

// FullSVD returns the rank-k truncated SVD of a dense (out, in) update
// computed by gonum's full thin SVD. k <= 0 keeps every component.
func FullSVD(delta *mat.Dense, k int) *SVD {
	out, in := delta.Dims()
	var svd mat.SVD
	if !svd.Factorize(delta, mat.SVDThin) {
		panic("merge: full SVD did not converge")
	}
	S := svd.Values(nil)
	K := keep(k, len(S))
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	s := &SVD{Out: out, In: in, S: S, K: K}
	if K > 0 {
		s.U = mat.DenseCopyOf(u.Slice(0, out, 0, K))
		s.Vt = mat.DenseCopyOf(v.Slice(0, in, 0, K).T())
	}
	fixSigns(s)
	return s
}

func keep(k, n int) int {
	if k <= 0 || k > n {
		return n
	}
	return k
}

// denseOrEmpty wraps data as an (r, c) Dense, or returns nil when a dimension
// is zero (gonum's Dense cannot hold an empty matrix).
func denseOrEmpty(r, c int, data []float64) *mat.Dense {
	if r == 0 || c == 0 {
		return nil
	}
	return mat.NewDense(r, c, data)
}

// fixSigns makes the largest-magnitude entry of each row of Vt positive.
func fixSigns(s *SVD) {
	for j := 0; j < s.K; j++ {
		row := s.Vt.RawRowView(j)
		big := 0
		for i, v := range row {
			if math.Abs(v) > math.Abs(row[big]) {
				big = i
			}
		}
		if row[big] < 0 {
			floats.Scale(-1, row)
			u := s.U.RawMatrix()
			for o := 0; o < s.Out; o++ {
				u.Data[o*u.Stride+j] = -u.Data[o*u.Stride+j]
			}
		}
	}
}

// chunk is the column block of the long-row kernels: n rows of chunk
// float64s stay in L2 while every pair of rows is combined over them.
const chunk = 512

// gram returns X X^T (n, n) for X (n, m) row-major, by dot products of rows
// accumulated over column blocks.
func gram(x []float64, n, m int) []float64 {
	g := make([]float64, n*n)
	for c0 := 0; c0 < m; c0 += chunk {
		c1 := min(c0+chunk, m)
		for i := 0; i < n; i++ {
			ri := x[i*m+c0 : i*m+c1]
			for j := i; j < n; j++ {
				g[i*n+j] += floats.Dot(ri, x[j*m+c0:j*m+c1])
			}
		}
	}
	for i := 0; i < n; i++ {
		for j := 0; j < i; j++ {
			g[i*n+j] = g[j*n+i]
		}
	}
	return g
}

// traceProduct returns trace(X Y) for symmetric X and Y (n, n).
func traceProduct(x, y []float64, n int) float64 {
	return floats.Dot(x[:n*n], y[:n*n])
}

// cholUpper factors a symmetric positive definite G (n, n) = U^T U and returns
// U (n, n) row-major, or false when G is not positive definite or U's
// diagonal spans more than condLimit (the factor is then too inaccurate).
func cholUpper(g []float64, n int) ([]float64, bool) {
	var ch mat.Cholesky
	if !ch.Factorize(mat.NewSymDense(n, g)) {
		return nil, false
	}
	var u mat.TriDense
	ch.UTo(&u)
	out := make([]float64, n*n)
	lo, hi := math.Inf(1), 0.0
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			out[i*n+j] = u.At(i, j)
		}
		d := math.Abs(out[i*n+i])
		lo, hi = math.Min(lo, d), math.Max(hi, d)
	}
	if !(lo > 0) || hi/lo > condLimit {
		return nil, false
	}
	return out, true
}

// firstCols copies the first k columns of m into a row-major (rows, k) slice.
func firstCols(m *mat.Dense, k int) []float64 {
	r, _ := m.Dims()
	out := make([]float64, r*k)
	for i := 0; i < r; i++ {
		for j := 0; j < k; j++ {
			out[i*k+j] = m.At(i, j)
		}
	}
	return out
}

// solveUpper returns X (n, k) with U X = B for U (n, n) upper triangular.
func solveUpper(u []float64, n int, b []float64) []float64 {
	k := len(b) / n
	x := append([]float64(nil), b...)
	if k == 0 {
		return x
	}
	blas64.Trsm(blas.Left, blas.NoTrans, 1,
		blas64.Triangular{Uplo: blas.Upper, Diag: blas.NonUnit, N: n, Stride: n, Data: u},
		blas64.General{Rows: n, Cols: k, Stride: k, Data: x})
	return x
}

// combineRows returns T^T X (k, m) for T (n, k) and X (n, m), both row-major:
// row j of the result is sum_i T[i, j] * X[i, :], a sequence of axpys over
// the long rows.
func combineRows(t []float64, n, k int, x []float64, m int) []float64 {
	out := make([]float64, k*m)
	for c0 := 0; c0 < m; c0 += chunk {
		c1 := min(c0+chunk, m)
		for j := 0; j < k; j++ {
			dst := out[j*m+c0 : j*m+c1]
			for i := 0; i < n; i++ {
				if c := t[i*k+j]; c != 0 {
					floats.AddScaled(dst, c, x[i*m+c0:i*m+c1])
				}
			}
		}
	}
	return out
}

// transpose returns the (m, n) transpose of x (n, m), in cache-sized blocks.
func transpose(x []float64, n, m int) []float64 {
	out := make([]float64, n*m)
	const bs = 32
	for i0 := 0; i0 < n; i0 += bs {
		for j0 := 0; j0 < m; j0 += bs {
			for i := i0; i < min(i0+bs, n); i++ {
				row := x[i*m : (i+1)*m]
				for j := j0; j < min(j0+bs, m); j++ {
					out[j*n+i] = row[j]
				}
			}
		}
	}
	return out
}

// lqFactor is a Householder LQ factorization X = L Q of X (n, m): L (n, p)
// lower trapezoidal, Q's first p = min(n, m) rows orthonormal.
type lqFactor struct {
	n, m, p int
	a       []float64 // the reflectors, as Dgelqf leaves them (n, m)
	tau     []float64
}

// lq factors x (n, m) and returns L (n, p) row-major and the factor for Q.
func lq(x []float64, n, m int) ([]float64, lqFactor) {
	p := min(n, m)
	a := append([]float64(nil), x...)
	g := blas64.General{Rows: n, Cols: m, Stride: m, Data: a}
	tau := make([]float64, p)
	work := []float64{0}
	lapack64.Gelqf(g, tau, work, -1)
	work = make([]float64, int(work[0]))
	lapack64.Gelqf(g, tau, work, len(work))
	l := make([]float64, n*p)
	for i := 0; i < n; i++ {
		for j := 0; j <= min(i, p-1); j++ {
			l[i*p+j] = a[i*m+j]
		}
	}
	return l, lqFactor{n: n, m: m, p: p, a: a, tau: tau}
}

// applyRight returns C Q[:p, :] (k, m) for C given as its transpose ct (p, k),
// row-major: the rows of the result are combinations of Q's first p rows.
func (f lqFactor) applyRight(ct []float64, k int) []float64 {
	if k == 0 {
		return nil
	}
	c := make([]float64, k*f.m) // [C 0] (k, m)
	for j := 0; j < k; j++ {
		for i := 0; i < f.p; i++ {
			c[j*f.m+i] = ct[i*k+j]
		}
	}
	cg := blas64.General{Rows: k, Cols: f.m, Stride: f.m, Data: c}
	ag := blas64.General{Rows: f.p, Cols: f.m, Stride: f.m, Data: f.a[:f.p*f.m]}
	work := []float64{0}
	lapack64.Ormlq(blas.Right, blas.NoTrans, ag, f.tau, cg, work, -1)
	work = make([]float64, int(work[0]))
	lapack64.Ormlq(blas.Right, blas.NoTrans, ag, f.tau, cg, work, len(work))
	return c
}

// quantile returns the q-quantile of x with linear interpolation between
// order statistics, as torch.quantile's default does.
func quantile(x []float64, q float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(pos)
	hi := int(math.Ceil(pos))
	w := pos - float64(lo)
	a, b := s[lo], s[hi]
	if w < 0.5 { // torch.lerp's two-sided form
		return a + w*(b-a)
	}
	return b - (b-a)*(1-w)
}

// clampFactors applies PEFT's svd_clamp to the factors B = U diag(S) (out, r)
// and A = Vt (r, in): hi is the q-quantile of all their entries together, and
// every entry is clamped into [-hi, hi] (torch.clamp: when -hi > hi, every
// entry becomes hi).
func clampFactors(B, A []float64, q float64) {
	dist := make([]float64, 0, len(B)+len(A))
	dist = append(append(dist, B...), A...)
	hi := quantile(dist, q)
	lo := -hi
	for _, x := range [][]float64{B, A} {
		for i, v := range x {
			x[i] = math.Min(math.Max(v, lo), hi)
		}
	}
}
