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
