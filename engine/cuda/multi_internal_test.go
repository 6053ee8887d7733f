//go:build cuda

package cuda

import (
	"math"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/backend"
)

// A multi-weight launch (several weights of one x: q,k,v or gate,up) must
// compute exactly what one launch per weight computes: the same kernel body
// walks the weights' row blocks or tiles in turn. The 4-row gemvx variant
// is held to the default 8-row one within float32 summation order.
var _ = Describe("multi-weight products", Label("gpu"), func() {
	DescribeTable("match the single-weight products", func(n, in int, half, gx4 bool) {
		c, err := New(Options{})
		if err != nil {
			Skip("no CUDA device: " + err.Error())
		}
		defer c.Close()
		c.half = half
		outs := []int{40, 264, 24} // row counts that end mid-block and mid-tile
		ws, multiY, singleY := make([]*Tensor, 3), make([]*Tensor, 3), make([]*Tensor, 3)
		x := c.newT(backend.F32, n, in)
		func() {
			defer c.bind()()
			for i, out := range outs {
				ws[i], _ = c.randomNF4(out, in, uint64(11+i))
				multiY[i], singleY[i] = c.newT(backend.F32, n, out), c.newT(backend.F32, n, out)
			}
			c.fillUniform(x, -1, 1, 5)
		}()
		m := func() *multiGemv { defer c.bind()(); return c.newMultiGemv(ws, multiY, nil) }()
		defer func() { defer c.bind()(); m.free() }()
		for _, accumulate := range []bool{false, true} {
			for i := range ws {
				fill := func(t *Tensor) { defer c.bind()(); c.fillUniform(t, -2, 2, uint64(100+i)) }
				fill(multiY[i]) // the same residual in both, for accumulate
				fill(singleY[i])
			}
			// the multi-weight launch, with the variant under test
			c.gx4 = gx4
			func() { defer c.bind()(); m.run(c, x, accumulate, gemvFuse{}) }()
			c.gx4 = false
			for i, w := range ws {
				if accumulate {
					c.MatMulAdd(singleY[i], x, w)
				} else {
					c.MatMul(singleY[i], x, w)
				}
				got, want := make([]float32, n*outs[i]), make([]float32, n*outs[i])
				c.Float32(got, multiY[i])
				c.Float32(want, singleY[i])
				if !gx4 {
					Expect(got).To(Equal(want), "weight %d, accumulate %v", i, accumulate) // the same kernel body
					continue
				}
				// 4-row blocks against 8: the warp's butterfly sums in another order
				for j := range want {
					Expect(got[j]).To(BeNumerically("~", want[j], 1e-5*(1+math.Abs(float64(want[j])))),
						"weight %d, accumulate %v, output %d", i, accumulate, j)
				}
			}
		}
		Expect(c.Sync()).To(Succeed())
	},
		Entry("one token (nf4_gemvxm_1)", 1, 4096, false, false),
		Entry("one token, fp16 compute (nf4_gemvxm_1r)", 1, 1056, true, false),
		Entry("one token, 4-row blocks (nf4_gemvxm4_1)", 1, 4096, false, true),
		Entry("one token, 4-row blocks, fp16 compute (nf4_gemvxm4_1r)", 1, 2048, true, true),
		Entry("one token, 4-row variant over 8192 inputs: 8-row blocks", 1, 8224, false, true),
		Entry("3 tokens (nf4_mmaxm_16)", 3, 512, false, false),
		Entry("16 tokens (nf4_mmaxm_16)", 16, 4096, false, false),
		Entry("7 tokens, fp16 compute (nf4_mmaxm_16)", 7, 256, true, false),
	)
})

// nf4_mmax_16 with x2 multiplies by silu(x) * x2 (the down projection of a
// batch decode): it must equal SiLUMul, then the plain product. With one k
// split the sums run in the same order (bit for bit); with several the
// splits add atomically, in any order.
var _ = Describe("the SwiGLU-fused batch product", Label("gpu"), func() {
	DescribeTable("equals SiLUMul then the product", func(n, in int, half bool) {
		c, err := New(Options{})
		if err != nil {
			Skip("no CUDA device: " + err.Error())
		}
		defer c.Close()
		c.half = half
		const out = 72
		g, u, h := c.newT(backend.F32, n, in), c.newT(backend.F32, n, in), c.newT(backend.F32, n, in)
		fused, plain := c.newT(backend.F32, n, out), c.newT(backend.F32, n, out)
		var w *Tensor
		func() {
			defer c.bind()()
			w, _ = c.randomNF4(out, in, 21)
			c.fillUniform(g, -4, 4, 22)
			c.fillUniform(u, -1, 1, 23)
			c.fillUniform(fused, -2, 2, 24) // the residual both add to
			c.fillUniform(plain, -2, 2, 24)
		}()
		func() {
			defer c.bind()()
			c.mmax(fused, g, w, n, out, in, c.productMode(true), u.ptr)
		}()
		c.SiLUMul(h, g, u)
		c.MatMulAdd(plain, h, w)
		got, want := make([]float32, n*out), make([]float32, n*out)
		c.Float32(got, fused)
		c.Float32(want, plain)
		if in <= 4096 {
			Expect(got).To(Equal(want))
		} else {
			for j := range want {
				Expect(got[j]).To(BeNumerically("~", want[j], 1e-5*(1+math.Abs(float64(want[j])))), "output %d", j)
			}
		}
		Expect(c.Sync()).To(Succeed())
	},
		Entry("5 tokens, one k split", 5, 1024, false),
		Entry("16 tokens, fp16 compute, one k split", 16, 4096, true),
		Entry("9 tokens over 3 k splits (a 7B down projection's width)", 9, 11008, false),
		Entry("12 tokens, fp16 compute, 3 k splits", 12, 11008, true),
	)
})
