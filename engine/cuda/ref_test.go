package cuda_test

import (
	"math"
	"math/rand/v2"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/cuda"
	"loramix/engine/dtype"
	"loramix/engine/nf4"
)

// The kernels' layouts, checked on the CPU through their mirrors (ref.go)
// against a plain dequantize-then-multiply in float64.

func randn(r *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * std)
	}
	return v
}

// naive returns x (n, in) @ wᵀ, w (out, in), in float64.
func naive(x, w []float32, n, in, out int) []float64 {
	y := make([]float64, n*out)
	for t := 0; t < n; t++ {
		for o := 0; o < out; o++ {
			var s float64
			for k := 0; k < in; k++ {
				s += float64(x[t*in+k]) * float64(w[o*in+k])
			}
			y[t*out+o] = s
		}
	}
	return y
}

func relErr(got []float32, want []float64) float64 {
	Expect(got).To(HaveLen(len(want)))
	var num, den float64
	for i := range want {
		d := float64(got[i]) - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	return math.Sqrt(num / den)
}

var _ = Describe("kernel index math (CPU mirrors)", func() {
	It("swizzles x into distinct slots, lane-major", func() {
		for _, in := range []int{32, 96, 4096, 11008} {
			seen := map[int]bool{}
			for q := 0; q < in/4; q++ {
				s := cuda.XsSlot(q)
				Expect(seen[s]).To(BeFalse())
				Expect(s).To(BeNumerically("<", (in+1023)/1024*256))
				seen[s] = true
			}
		}
		// lane l's i-th float4 of round it: elements it*1024 + l*32 + 4i
		Expect(cuda.XsSlot(5*8 + 3)).To(Equal(3*32 + 5))
		Expect(cuda.XsSlot(256 + 31*8 + 7)).To(Equal(256 + 7*32 + 31))
	})

	DescribeTable("nf4_gemv walks the codes in order",
		func(out, in, n int) {
			r := rand.New(rand.NewPCG(uint64(out), uint64(in*n)))
			w := randn(r, out*in, 0.05)
			q := nf4.Quantize(w, out, in)
			deq := make([]float32, out*in)
			q.Dequantize(deq)
			x := randn(r, n*in, 1)
			Expect(relErr(cuda.GemvNF4Mirror(x, q, n), naive(x, deq, n, in, out))).To(BeNumerically("<", 1e-5))
		},
		Entry("one token, one chunk round", 5, 64, 1),
		Entry("odd rows, partial round", 7, 1056, 2),
		Entry("4 tokens, two rounds", 3, 2048, 4),
	)

	DescribeTable("nf4_mma / f16_mma fragments permute k consistently",
		func(out, in, n, N int) {
			r := rand.New(rand.NewPCG(uint64(out+N), uint64(in*n)))
			w := randn(r, out*in, 0.05)
			q := nf4.Quantize(w, out, in)
			deq := make([]float32, out*in)
			q.Dequantize(deq)
			x := randn(r, n*in, 1)
			Expect(relErr(cuda.MmaMirror(x, q, nil, out, in, n, N), naive(x, deq, n, in, out))).To(BeNumerically("<", 1e-5))
			h := make([]float32, out*in)
			for i, v := range w {
				h[i] = dtype.F16ToF32(dtype.F32ToF16(v))
			}
			Expect(relErr(cuda.MmaMirror(x, nil, h, out, in, n, N), naive(x, h, n, in, out))).To(BeNumerically("<", 1e-5))
		},
		Entry("16-token tile, ragged rows and tokens", 70, 256, 5, 16),
		Entry("64-token tile, two token tiles", 20, 128, 67, 64),
	)

	It("embeds every kernel source and keys the cache by architecture", func() {
		Expect(cuda.Source()).To(ContainSubstring("nf4_gemv"))
		Expect(cuda.Source()).To(ContainSubstring("attention_f16"))
		Expect(cuda.CacheKey("90", "13.0")).NotTo(Equal(cuda.CacheKey("80", "13.0")))
		Expect(cuda.CacheKey("90", "13.0")).NotTo(Equal(cuda.CacheKey("90", "12.8")))
	})
})
