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
