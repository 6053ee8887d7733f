//go:build !amd64

package cpu

// dot returns a · b[:len(a)].
func dot(a, b []float32) float32 { return dotGo(a, b[:len(a)]) }

// dotF16 returns a · b[:len(a)] for half-precision b.
func dotF16(a []float32, b []uint16) float32 { return dotF16Go(a, b[:len(a)]) }

// dot4 sets out[k] = w · x[k*stride : k*stride+len(w)] for k < 4.
func dot4(w, x []float32, stride int, out *[4]float32) { dot4Go(w, x, stride, out) }

// haveNF4Kernels reports whether nf4Dot and nf4Decode run in assembly.
const haveNF4Kernels = false

func nf4Dot(packed []byte, xd, absmax []float32) float32 { panic("cpu: no NF4 kernel") }

func nf4Decode(packed []byte, absmax, dst []float32) { panic("cpu: no NF4 kernel") }

// dot4F16 sets out[k] = half(w) · x[k*stride : k*stride+len(w)] for k < 4.
func dot4F16(w []uint16, x []float32, stride int, out *[4]float32) { dot4F16Go(w, x, stride, out) }
