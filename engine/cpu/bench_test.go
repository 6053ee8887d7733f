package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"loramix/engine/backend"
	"loramix/engine/cpu"
	"loramix/engine/nf4"
)

// BenchmarkMatMul covers the weight dtypes over Llama-2-7B projection
// shapes, for one token (decode) and a batch of 8; it reports GMAC/s and
// weight GB/s.
func BenchmarkMatMul(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, shape := range [][2]int{{4096, 4096}, {11008, 4096}} {
		out, in := shape[0], shape[1]
		w := randn(r, out*in)
		q := nf4.Quantize(w, out, in)
		for _, dt := range []backend.DType{backend.NF4, backend.F16, backend.F32} {
			for _, n := range []int{1, 8} {
				b.Run(fmt.Sprintf("%v/%dx%d/n=%d", dt, out, in, n), func(b *testing.B) {
					c := cpu.New(cpu.Options{})
					var wt backend.Tensor
					bytes := 4
					switch dt {
					case backend.NF4:
						wt = c.NF4(q)
						bytes = 0
					default:
						wt = c.New(dt, out, in)
						c.SetFloat32(wt, w)
						if dt == backend.F16 {
							bytes = 2
						}
					}
					x := c.New(backend.F32, n, in)
					c.SetFloat32(x, randn(r, n*in))
					y := c.New(backend.F32, n, out)
					wbytes := float64(q.Bytes())
					if bytes > 0 {
						wbytes = float64(out * in * bytes)
					}
					b.ResetTimer()
					for range b.N {
						c.MatMul(y, x, wt)
					}
					s := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(float64(n*out*in)/s/1e9, "GMAC/s")
					b.ReportMetric(wbytes/s/1e9, "wGB/s")
				})
			}
		}
	}
}
