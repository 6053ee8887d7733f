package cpu

// Portable kernels; dot_amd64.go uses AVX2 assembly where the CPU has it.

// dotGo returns a · b with four partial sums; len(b) >= len(a).
func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		s0 += a[i]*b[i] + a[i+4]*b[i+4]
		s1 += a[i+1]*b[i+1] + a[i+5]*b[i+5]
		s2 += a[i+2]*b[i+2] + a[i+6]*b[i+6]
		s3 += a[i+3]*b[i+3] + a[i+7]*b[i+7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// dotF16Go returns a · b for half-precision b.
func dotF16Go(a []float32, b []uint16) float32 {
	b = b[:len(a)]
	var s0, s1 float32
	i := 0
	for ; i+2 <= len(a); i += 2 {
		s0 += a[i] * f16[b[i]]
		s1 += a[i+1] * f16[b[i+1]]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * f16[b[i]]
	}
	return s0 + s1
}

// dot4Go sets out[k] = w · x[k*stride : k*stride+len(w)] for k < 4.
func dot4Go(w, x []float32, stride int, out *[4]float32) {
	n := len(w)
	x0, x1, x2, x3 := x[:n], x[stride:stride+n], x[2*stride:2*stride+n], x[3*stride:3*stride+n]
	var s0, s1, s2, s3 float32
	for i, v := range w {
		s0 += v * x0[i]
		s1 += v * x1[i]
		s2 += v * x2[i]
		s3 += v * x3[i]
	}
	*out = [4]float32{s0, s1, s2, s3}
}

// dot4F16Go sets out[k] = half(w) · x[k*stride : k*stride+len(w)] for k < 4.
func dot4F16Go(w []uint16, x []float32, stride int, out *[4]float32) {
	n := len(w)
	x0, x1, x2, x3 := x[:n], x[stride:stride+n], x[2*stride:2*stride+n], x[3*stride:3*stride+n]
	var s0, s1, s2, s3 float32
	for i, h := range w {
		v := f16[h]
		s0 += v * x0[i]
		s1 += v * x1[i]
		s2 += v * x2[i]
		s3 += v * x3[i]
	}
	*out = [4]float32{s0, s1, s2, s3}
}
