//go:build !amd64

package cpu

// dot returns a · b[:len(a)].
func dot(a, b []float32) float32 { return dotGo(a, b[:len(a)]) }

// dotF16 returns a · b[:len(a)] for half-precision b.
func dotF16(a []float32, b []uint16) float32 { return dotF16Go(a, b[:len(a)]) }

// dot4 sets out[k] = w · x[k*stride : k*stride+len(w)] for k < 4.
func dot4(w, x []float32, stride int, out *[4]float32) { dot4Go(w, x, stride, out) }
