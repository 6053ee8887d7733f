package dtype_test

import (
	"math"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/dtype"
)

// halfValue is IEEE 754 half precision decoded from its definition.
func halfValue(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, man := int(h>>10)&0x1f, float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * man * math.Ldexp(1, -24)
	case 0x1f:
		if man != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * (1 + man/1024) * math.Ldexp(1, exp-15)
}

var _ = Describe("half precision", func() {
	It("decodes every one of the 65,536 values exactly, subnormals included", func() {
		for h := 0; h < 1<<16; h++ {
			got, want := float64(dtype.F16ToF32(uint16(h))), halfValue(uint16(h))
			if math.IsNaN(want) {
				Expect(math.IsNaN(got)).To(BeTrue(), "0x%04x", h)
				continue
			}
			Expect(got).To(Equal(want), "0x%04x", h)
		}
		Expect(dtype.F16ToF32(0x0200)).To(Equal(float32(math.Ldexp(1, -15))))
	})
	It("round-trips every finite half through float32", func() {
		for h := 0; h < 1<<16; h++ {
			if h&0x7c00 == 0x7c00 {
				continue
			}
			Expect(dtype.F32ToF16(dtype.F16ToF32(uint16(h)))).To(Equal(uint16(h)), "0x%04x", h)
		}
	})
	It("rounds float32 to the nearest half, ties to even", func() {
		Expect(dtype.F32ToF16(1 + 1.0/2048)).To(Equal(uint16(0x3c00)))           // tie, even stays
		Expect(dtype.F32ToF16(1 + 3.0/2048)).To(Equal(uint16(0x3c02)))           // tie, rounds up to even
		Expect(dtype.F32ToF16(70000)).To(Equal(uint16(0x7c00)))                  // overflow to infinity
		Expect(dtype.F32ToF16(float32(math.Ldexp(1, -25)))).To(Equal(uint16(0))) // half the smallest subnormal: tie to even 0
	})
	It("converts bfloat16 by truncating the exponent-aligned bits, with rounding on the way in", func() {
		Expect(dtype.F32ToBF16(1)).To(Equal(uint16(0x3f80)))
		raw := []byte{0x80, 0x3f}
		out := make([]float32, 1)
		Expect(dtype.ToFloat32(out, raw, dtype.BF16)).To(Succeed())
		Expect(out[0]).To(Equal(float32(1)))
		Expect(dtype.ToFloat32(out, []byte{1, 2, 3}, dtype.F16)).To(MatchError(ContainSubstring("3 bytes of F16")))
	})
})
