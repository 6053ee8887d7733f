package cpu

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly kernels (AVX2 and FMA, F16C for halves).
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func dotF16AVX2(a *float32, b *uint16, n int) float32

//go:noescape
func dot4AVX2(w, x *float32, stride, n int, out *[4]float32)

// dot returns a · b[:len(a)].
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	n8 := len(a) &^ 7
	if !useAVX2 || n8 == 0 {
		return dotGo(a, b)
	}
	s := dotAVX2(&a[0], &b[0], n8)
	for i := n8; i < len(a); i++ {
		s += a[i] * b[i]
	}
	return s
}

// dotF16 returns a · b[:len(a)] for half-precision b.
func dotF16(a []float32, b []uint16) float32 {
	b = b[:len(a)]
	n8 := len(a) &^ 7
	if !useAVX2 || !cpu.X86.HasAVX || n8 == 0 {
		return dotF16Go(a, b)
	}
	s := dotF16AVX2(&a[0], &b[0], n8)
	for i := n8; i < len(a); i++ {
		s += a[i] * f16[b[i]]
	}
	return s
}

// dot4 sets out[k] = w · x[k*stride : k*stride+len(w)] for k < 4.
func dot4(w, x []float32, stride int, out *[4]float32) {
	n := len(w)
	_ = x[3*stride+n-1]
	n8 := n &^ 7
	if !useAVX2 || n8 == 0 {
		dot4Go(w, x, stride, out)
		return
	}
	dot4AVX2(&w[0], &x[0], stride, n8, out)
	for i := n8; i < n; i++ {
		for k := 0; k < 4; k++ {
			out[k] += w[i] * x[k*stride+i]
		}
	}
}

//go:noescape
func nf4DotAVX2(packed *byte, xd *float32, absmax *float32, code *float32, ng int) float32

//go:noescape
func nf4DecodeAVX2(packed *byte, absmax *float32, code *float32, ng int, dst *float32)

// haveNF4Kernels reports whether nf4Dot and nf4Decode run in assembly.
const haveNF4Kernels = true

// nf4Dot returns Σ_g (codes of group g · absmax[g]) · xd group g over the
// len(absmax) groups of 16 weights of packed; xd is deinterleaved
// (deinterleave16).
func nf4Dot(packed []byte, xd, absmax []float32) float32 {
	ng := len(absmax)
	_, _ = packed[ng*8-1], xd[ng*16-1]
	return nf4DotAVX2(&packed[0], &xd[0], &absmax[0], &nf4Code[0], ng)
}

// nf4Decode writes the dequantized groups of packed into dst, deinterleaved.
func nf4Decode(packed []byte, absmax, dst []float32) {
	ng := len(absmax)
	_, _ = packed[ng*8-1], dst[ng*16-1]
	nf4DecodeAVX2(&packed[0], &absmax[0], &nf4Code[0], ng, &dst[0])
}

//go:noescape
func dot4F16AVX2(w *uint16, x *float32, stride, n int, out *[4]float32)

// dot4F16 sets out[k] = half(w) · x[k*stride : k*stride+len(w)] for k < 4.
func dot4F16(w []uint16, x []float32, stride int, out *[4]float32) {
	n := len(w)
	_ = x[3*stride+n-1]
	n8 := n &^ 7
	if !useAVX2 || n8 == 0 {
		dot4F16Go(w, x, stride, out)
		return
	}
	dot4F16AVX2(&w[0], &x[0], stride, n8, out)
	for i := n8; i < n; i++ {
		for k := 0; k < 4; k++ {
			out[k] += f16[w[i]] * x[k*stride+i]
		}
	}
}
