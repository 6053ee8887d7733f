package nf4_test

import (
	"fmt"
	"math"
	"math/rand/v2"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/nf4"
	"loramix/engine/safetensors"
)

const golden = "../../testdata/parity/nf4.safetensors"

// bitsEqual reports the first index where a and b differ bitwise, or -1.
func bitsEqual(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

var _ = Describe("NF4 against the bitsandbytes reference path (golden from reference/parity.py)", Ordered, func() {
	var f *safetensors.File
	BeforeAll(func() {
		var err error
		f, err = safetensors.Open(golden)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(f.Close)
	})
	get := func(name string) []float32 {
		v, _, err := f.Float32(name)
		Expect(err).NotTo(HaveOccurred())
		return v
	}
	raw := func(name string) []byte {
		b, _, err := f.Bytes(name)
		Expect(err).NotTo(HaveOccurred())
		return b
	}

	It("builds the signed 8-bit dynamic map bit for bit", func() {
		m := nf4.DynamicMap()
		Expect(bitsEqual(m[:], get("dynamic_map"))).To(Equal(-1))
		Expect(m[0]).To(BeNumerically("<", -0.99))
		Expect(m[255]).To(Equal(float32(1)))
		c := nf4.CreateDynamicMap()
		for i := range m {
			Expect(c[i]).To(BeNumerically("~", m[i], 4e-7*max(1e-3, math.Abs(float64(m[i])))), fmt.Sprint(i))
		}
	})

	DescribeTable("quantizes and dequantizes exactly",
		func(name string) {
			in, info, err := f.Float32(name + ".input")
			Expect(err).NotTo(HaveOccurred())
			rows, cols := info.Shape[0], info.Shape[1]
			q := nf4.Quantize(in, rows, cols)
			Expect(q.Packed).To(Equal(raw(name + ".packed")))
			Expect(q.QAbsmax).To(Equal(raw(name + ".qabsmax")))
			Expect(bitsEqual(q.Absmax2, get(name+".absmax2"))).To(Equal(-1), "absmax2")
			Expect(math.Float32bits(q.Offset)).To(Equal(math.Float32bits(get(name + ".offset")[0])), "offset")
			out := make([]float32, rows*cols)
			q.Dequantize(out)
			Expect(bitsEqual(out, get(name+".dequant"))).To(Equal(-1), "dequantized")
		},
		Entry("96x200: 300 blocks straddling rows, a zero block, values on midpoints, group remainder", "a"),
		Entry("37x45 from float16: a short last block and an odd count", "b"),
		Entry("64x128 from bfloat16", "c"),
		Entry("3x20: shorter than one block", "d"),
	)

	It("rounds a value on a midpoint to the lower code", func() {
		mid := (nf4.Code[9] + nf4.Code[10]) / 2
		w := make([]float32, 64)
		w[0], w[1] = 1, mid
		q := nf4.Quantize(w, 1, 64)
		Expect(q.Index(1)).To(Equal(uint8(9)))
		w[1] = math.Nextafter32(mid, 1)
		Expect(nf4.Quantize(w, 1, 64).Index(1)).To(Equal(uint8(10)))
	})

	It("keeps the round-trip error of Gaussian weights near NF4's", func() {
		r := rand.New(rand.NewPCG(1, 2))
		w := make([]float32, 256*64)
		for i := range w {
			w[i] = float32(r.NormFloat64())
		}
		q := nf4.Quantize(w, 256, 64)
		out := make([]float32, len(w))
		q.Dequantize(out)
		var num, den float64
		for i := range w {
			num += float64((out[i] - w[i]) * (out[i] - w[i]))
			den += float64(w[i] * w[i])
		}
		rel := math.Sqrt(num / den)
		Expect(rel).To(BeNumerically("~", 0.095, 0.01), fmt.Sprint(rel))
		Expect(q.Bytes()).To(Equal(len(w)/2 + len(w)/64 + 4 + 4))
	})
})
