//go:build cuda

package cuda_test

import (
	"fmt"
	"math"
	"math/rand/v2"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/backend"
	"loramix/engine/cpu"
	"loramix/engine/cuda"
	"loramix/engine/dtype"
	"loramix/engine/llama"
	"loramix/engine/llama/paritytest"
	"loramix/engine/nf4"
)

// Each op of the CUDA backend against the CPU backend (the reference) on
// fresh random inputs of awkward sizes; then whole models against the
// transformers goldens. Outputs are poisoned with NaN before each GPU op so
// that an unwritten element fails.

var gpu *cuda.CUDA

func openGPU() *cuda.CUDA {
	if gpu == nil {
		b, err := cuda.New(cuda.Options{})
		if err != nil {
			Skip("no CUDA device: " + err.Error())
		}
		gpu = b
		AddReportEntry("device", b.Device())
	}
	return gpu
}

// pair uploads the same host values to both backends.
type pair struct {
	c  *cpu.CPU
	g  *cuda.CUDA
	rg *rand.Rand
}

func (p *pair) f32(v []float32, shape ...int) (backend.Tensor, backend.Tensor) {
	a, b := p.c.New(backend.F32, shape...), p.g.New(backend.F32, shape...)
	p.c.SetFloat32(a, v)
	p.g.SetFloat32(b, v)
	return a, b
}

// typed uploads v as dt. F16 values are kept out of the half subnormal
// range: engine/dtype.F16ToF32 (which the CPU backend uses) decodes some
// subnormals wrongly, the GPU's cvt.f32.f16 exactly.
func (p *pair) typed(dt backend.DType, v []float32, shape ...int) (backend.Tensor, backend.Tensor) {
	if dt == backend.F16 {
		for i, x := range v {
			if math.Abs(float64(x)) < 1e-4 {
				v[i] = float32(math.Copysign(1e-4, float64(x)))
			}
		}
	}
	a, b := p.c.New(dt, shape...), p.g.New(dt, shape...)
	p.c.SetFloat32(a, v)
	p.g.SetFloat32(b, v)
	return a, b
}

func (p *pair) i32(v []int32) (backend.Tensor, backend.Tensor) {
	a, b := p.c.New(backend.I32, len(v)), p.g.New(backend.I32, len(v))
	p.c.SetInt32(a, v)
	p.g.SetInt32(b, v)
	return a, b
}

// poisoned returns a GPU F32 tensor filled with NaN.
func (p *pair) poisoned(shape ...int) backend.Tensor {
	t := p.g.New(backend.F32, shape...)
	v := make([]float32, backend.Elements(shape))
	for i := range v {
		v[i] = float32(math.NaN())
	}
	p.g.SetFloat32(t, v)
	return t
}

func readBoth(p *pair, a, b backend.Tensor) ([]float32, []float32) {
	n := backend.Elements(a.Shape())
	x, y := make([]float32, n), make([]float32, n)
	p.c.Float32(x, a)
	p.g.Float32(y, b)
	return x, y
}

// rel is ||got-want|| / ||want||, NaN in got counting as infinitely wrong.
func rel(got, want []float32) float64 {
	Expect(got).To(HaveLen(len(want)))
	var num, den float64
	for i := range want {
		if math.IsNaN(float64(got[i])) {
			return math.Inf(1)
		}
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

var _ = Describe("CUDA backend", Label("gpu"), Ordered, func() {
	var p *pair
	BeforeAll(func() {
		g := openGPU()
		p = &pair{c: cpu.New(cpu.Options{Threads: 4}), g: g}
	})
	BeforeEach(func() { p.rg = rand.New(rand.NewPCG(rand.Uint64(), 7)) })

	DescribeTable("MatMul against the CPU backend",
		func(wt backend.DType, n, out, in int, tol float64) {
			x := randn(p.rg, n*in, 1)
			w := randn(p.rg, out*in, 0.05)
			xc, xg := p.f32(x, n, in)
			var wc, wg backend.Tensor
			if wt == backend.NF4 {
				q := nf4.Quantize(w, out, in)
				wc, wg = p.c.NF4(q), p.g.NF4(q)
			} else {
				wc, wg = p.typed(wt, w, out, in)
			}
			yc, yg := p.c.New(backend.F32, n, out), p.poisoned(n, out)
			p.c.MatMul(yc, xc, wc)
			p.g.MatMul(yg, xg, wg)
			want, got := readBoth(p, yc, yg)
			e := rel(got, want)
			AddReportEntry(fmt.Sprintf("%v n=%d %dx%d rel err", wt, n, out, in), e)
			Expect(e).To(BeNumerically("<", tol))
			// MatMulAdd adds onto what dst holds
			p.g.MatMulAdd(yg, xg, wg)
			_, got2 := readBoth(p, yc, yg)
			for i := range want {
				want[i] *= 2
			}
			Expect(rel(got2, want)).To(BeNumerically("<", tol))
		},
		// one token: nf4_gemvx (x in registers); 2-4 tokens: nf4_gemv; fp32 throughout
		Entry("NF4 gemvx, 1 token", backend.NF4, 1, 77, 1056, 1e-5),
		Entry("NF4 gemvx, 1 token, 11008 in (11 warps a row group)", backend.NF4, 1, 45, 11008, 1e-5),
		Entry("NF4 gemvx, 1 token, in 160, 13 rows (8 row groups, one ragged block)", backend.NF4, 1, 13, 160, 1e-5),
		Entry("NF4 gemvx, 1 token, several row blocks per block", backend.NF4, 1, 5003, 4096, 1e-5),
		Entry("NF4 gemv, 3 tokens, in not a multiple of 128", backend.NF4, 3, 130, 96, 1e-5),
		Entry("NF4 gemv, 2 tokens, in 1056", backend.NF4, 2, 33, 1056, 1e-5),
		Entry("NF4 gemv, 4 tokens, in 160", backend.NF4, 4, 70, 160, 1e-5),
		// 2-16 tokens, in % 256 == 0: nf4_mmax_16 (fp16 operands, x fragments in registers)
		Entry("NF4 mmax, 5 tokens", backend.NF4, 5, 200, 256, 2e-3),
		Entry("NF4 mmax, 8 tokens, accumulate", backend.NF4, 8, 300, 4096, 2e-3),
		Entry("NF4 mmax, 13 tokens, 11008 in (3 k splits)", backend.NF4, 13, 130, 11008, 2e-3),
		Entry("NF4 mmax, 2 tokens, 11008 in", backend.NF4, 2, 33, 11008, 2e-3),
		Entry("NF4 mmax, 9 tokens, 8448 in (last k split one warp wide)", backend.NF4, 9, 77, 8448, 2e-3),
		Entry("NF4 mmax, 16 tokens, several tiles per block", backend.NF4, 16, 3001, 4096, 2e-3),
		// other tensor-core shapes (in % 128 == 0)
		Entry("NF4 mma16, 7 tokens, in 384", backend.NF4, 7, 96, 384, 2e-3),
		Entry("NF4 mma, 17 tokens", backend.NF4, 17, 96, 4096, 2e-3),
		Entry("NF4 mma, 70 tokens", backend.NF4, 70, 130, 384, 2e-3),
		Entry("NF4 mma, 127 tokens", backend.NF4, 127, 200, 256, 2e-3),
		// from 128 tokens: dequantize to fp16, cuBLAS
		Entry("NF4 cuBLAS, 300 tokens", backend.NF4, 300, 1000, 512, 2e-3),
		Entry("NF4 cuBLAS, 128 tokens, 11008 in", backend.NF4, 128, 257, 11008, 2e-3),
		// anything else: the generic kernels
		Entry("NF4 generic, in 172", backend.NF4, 9, 64, 172, 1e-5),
		Entry("NF4 generic, odd in", backend.NF4, 2, 5, 63, 1e-5),
		Entry("F16 gemv", backend.F16, 2, 301, 4096, 1e-5),
		Entry("F16 mma", backend.F16, 37, 384, 256, 2e-3),
		Entry("F16 generic", backend.F16, 6, 50, 100, 1e-5),
		Entry("F32 generic", backend.F32, 7, 45, 172, 1e-5),
	)

	// fp16 compute: weights dequantized to half, outputs rounded. The two
	// backends round the same values, so an output may differ only where a
	// float32 summation-order difference crosses a rounding boundary: by one
	// half ulp, and rarely. Float32 weights instead would move ~20-40% of the
	// outputs.
	DescribeTable("MatMul under fp16 compute against the CPU backend",
		func(n, out, in int) {
			c16 := cpu.New(cpu.Options{Threads: 4, Compute: backend.F16})
			g16, err := cuda.New(cuda.Options{Compute: backend.F16})
			Expect(err).NotTo(HaveOccurred())
			defer g16.Close()
			x := randn(p.rg, n*in, 1)
			for i, v := range x { // an op's output: already half
				x[i] = dtype.F16ToF32(dtype.F32ToF16(v))
			}
			q := nf4.Quantize(randn(p.rg, out*in, 0.05), out, in)
			xc, xg := c16.New(backend.F32, n, in), g16.New(backend.F32, n, in)
			c16.SetFloat32(xc, x)
			g16.SetFloat32(xg, x)
			yc, yg := c16.New(backend.F32, n, out), g16.New(backend.F32, n, out)
			c16.MatMul(yc, xc, c16.NF4(q))
			g16.MatMul(yg, xg, g16.NF4(q))
			want, got := make([]float32, n*out), make([]float32, n*out)
			c16.Float32(want, yc)
			g16.Float32(got, yg)
			// the float32 sums themselves may differ by accumulation order
			// (the tensor cores' most, over 11008 inputs a few 1e-5 of the
			// outputs' scale where an output cancels): an absolute allowance
			// of 1e-4 of the scale, beside one half ulp
			var scale float64
			for _, v := range want {
				scale = max(scale, math.Abs(float64(v)))
			}
			differ := 0
			for i := range want {
				if got[i] == want[i] {
					continue
				}
				differ++
				ulp := math.Abs(float64(want[i])) * math.Pow(2, -10)
				Expect(math.Abs(float64(got[i]-want[i]))).To(BeNumerically("<=", max(ulp*1.01, 1e-4*scale)), "output %d: %v vs %v", i, got[i], want[i])
			}
			AddReportEntry(fmt.Sprintf("fp16 compute n=%d %dx%d outputs differing", n, out, in), differ)
			// how many differ depends on the random inputs (the suite's
			// order, and so its draws, change from run to run): over 11008
			// inputs one run in a few flips 2 of 64 one-token outputs, and
			// one run of the 40-token tensor-core product flipped 63 of
			// 5200 (1.2%)
			Expect(differ).To(BeNumerically("<=", n*out/50+1+in/4096))
		},
		Entry("gemvx, 1 token", 1, 300, 4096),
		Entry("gemvx, 1 token, 11008 in", 1, 64, 11008),
		Entry("gemvx, 1 token, in 160 (the world)", 1, 45, 160),
		Entry("3 tokens, in 160 (generic)", 3, 45, 160),
		Entry("3 tokens, in 512 (nf4_mmax)", 3, 100, 512),
		Entry("16 tokens, 11008 in (nf4_mmax, k splits)", 16, 40, 11008),
		Entry("40 tokens (tensor cores)", 40, 130, 512),
		Entry("200 tokens (cuBLAS)", 200, 96, 1024),
	)

	It("adds LoRA updates to the listed rows only (MatMulLoRA, two adapters)", func() {
		n, in, out, r := 7, 96, 50, 5
		x := randn(p.rg, n*in, 1)
		w := randn(p.rg, out*in, 0.05)
		xc, xg := p.f32(x, n, in)
		q := nf4.Quantize(w, out, in)
		wc, wg := p.c.NF4(q), p.g.NF4(q)
		a1c, a1g := p.f32(randn(p.rg, r*in, 0.1), r, in)
		b1c, b1g := p.f32(randn(p.rg, out*r, 0.1), out, r)
		a2c, a2g := p.f32(randn(p.rg, 3*in, 0.1), 3, in)
		b2c, b2g := p.f32(randn(p.rg, out*3, 0.1), out, 3)
		r1c, r1g := p.i32([]int32{0, 2, 6})
		r2c, r2g := p.i32([]int32{1, 5})
		yc, yg := p.c.New(backend.F32, n, out), p.poisoned(n, out)
		p.c.MatMul(yc, xc, wc)
		p.c.AddLoRA(yc, xc, a1c, b1c, 2, r1c)
		p.c.AddLoRA(yc, xc, a2c, b2c, 0.5, r2c)
		p.g.MatMulLoRA(yg, xg, wg, []backend.LoRA{{A: a1g, B: b1g, Scale: 2, Rows: r1g}, {A: a2g, B: b2g, Scale: 0.5, Rows: r2g}})
		want, got := readBoth(p, yc, yg)
		Expect(rel(got, want)).To(BeNumerically("<", 1e-5))
		// and AddLoRA with rows == nil covers every row
		p.c.AddLoRA(yc, xc, a1c, b1c, 1, nil)
		p.g.AddLoRA(yg, xg, a1g, b1g, 1, nil)
		want, got = readBoth(p, yc, yg)
		Expect(rel(got, want)).To(BeNumerically("<", 1e-5))
	})

	DescribeTable("MatMulLoRA with one adapter on every row (shrink, then the expand fused into the product)",
		func(n, out, in, r int) {
			x := randn(p.rg, n*in, 1)
			xc, xg := p.f32(x, n, in)
			q := nf4.Quantize(randn(p.rg, out*in, 0.05), out, in)
			wc, wg := p.c.NF4(q), p.g.NF4(q)
			ac, ag := p.f32(randn(p.rg, r*in, 0.1), r, in)
			bc, bg := p.f32(randn(p.rg, out*r, 0.1), out, r)
			yc, yg := p.c.New(backend.F32, n, out), p.poisoned(n, out)
			p.c.MatMul(yc, xc, wc)
			p.c.AddLoRA(yc, xc, ac, bc, 1.5, nil)
			p.g.MatMulLoRA(yg, xg, wg, []backend.LoRA{{A: ag, B: bg, Scale: 1.5}})
			want, got := readBoth(p, yc, yg)
			Expect(rel(got, want)).To(BeNumerically("<", 2e-3))
		},
		Entry("gemv, 1 token, rank 16", 1, 300, 4096, 16),
		Entry("gemv, 3 tokens, rank 5", 3, 77, 1056, 5),
		Entry("mma, 20 tokens (expand after the product)", 20, 130, 256, 8),
	)

	DescribeTable("RMSNorm",
		func(wt backend.DType, n, d int) {
			xc, xg := p.f32(randn(p.rg, n*d, 2), n, d)
			wc, wg := p.typed(wt, randn(p.rg, d, 1), d)
			yc, yg := p.c.New(backend.F32, n, d), p.poisoned(n, d)
			p.c.RMSNorm(yc, xc, wc, 1e-5)
			p.g.RMSNorm(yg, xg, wg, 1e-5)
			want, got := readBoth(p, yc, yg)
			Expect(rel(got, want)).To(BeNumerically("<", 1e-6))
		},
		Entry("F32 weight", backend.F32, 3, 4096),
		Entry("F16 weight, odd width", backend.F16, 5, 173),
	)

	It("RoPE with linear scaling at scattered positions", func() {
		n, heads, hd := 6, 3, 18
		xc, xg := p.f32(randn(p.rg, n*heads*hd, 1), n, heads*hd)
		pc, pg := p.i32([]int32{0, 1, 7, 100, 1023, 3})
		p.c.RoPE(xc, pc, heads, 10000, 0.5)
		p.g.RoPE(xg, pg, heads, 10000, 0.5)
		want, got := readBoth(p, xc, xg)
		Expect(rel(got, want)).To(BeNumerically("<", 1e-5))
	})

	DescribeTable("Attention over the KV cache (prefill, then decode; GQA)",
		func(cache backend.DType, heads, kvHeads, hd int, tol float64) {
			slots, maxLen := 3, 40
			kvd := kvHeads * hd
			kcC, kcG := p.c.New(cache, slots, maxLen, kvd), p.g.New(cache, slots, maxLen, kvd)
			vcC, vcG := p.c.New(cache, slots, maxLen, kvd), p.g.New(cache, slots, maxLen, kvd)
			// prefill: slot 2 gets 9 tokens, slot 0 gets 4, interleaved in one step
			var seq, pos []int32
			for i := 0; i < 9; i++ {
				seq, pos = append(seq, 2), append(pos, int32(i))
				if i < 4 {
					seq, pos = append(seq, 0), append(pos, int32(i))
				}
			}
			run := func(seq, pos []int32) {
				n := len(seq)
				qc, qg := p.f32(randn(p.rg, n*heads*hd, 1), n, heads*hd)
				kc, kg := p.f32(randn(p.rg, n*kvd, 1), n, kvd)
				vc, vg := p.f32(randn(p.rg, n*kvd, 1), n, kvd)
				sc, sg := p.i32(seq)
				pc, pg := p.i32(pos)
				oc, og := p.c.New(backend.F32, n, heads*hd), p.poisoned(n, heads*hd)
				p.c.Attention(oc, qc, kc, vc, kcC, vcC, sc, pc, heads, kvHeads)
				p.g.Attention(og, qg, kg, vg, kcG, vcG, sg, pg, heads, kvHeads)
				want, got := readBoth(p, oc, og)
				Expect(rel(got, want)).To(BeNumerically("<", tol))
			}
			run(seq, pos)
			run([]int32{0, 2}, []int32{4, 9}) // decode one token each
		},
		Entry("F32 cache, 4 heads over 2 KV heads", backend.F32, 4, 2, 16, 1e-5),
		Entry("F16 cache, 6 heads over 3 KV heads, head dim 128", backend.F16, 6, 3, 128, 1e-5),
	)

	// The split attention (attention_split_*, few (token, head) pairs: here at
	// most 24, under 2 an SM) against the CPU backend: random caches, then 1
	// or 3 tokens over 1, 37, 300 and 1000 positions (one split, empty
	// splits, a short last split, several passes a block), two tokens of one
	// slot in a step; and one prefill-sized step (2400 pairs: attention_f32/f16).
	Context("split attention", func() {
		var p16 *pair // fp16 compute on both sides: outputs rounded to half
		BeforeAll(func() {
			g16, err := cuda.New(cuda.Options{Compute: backend.F16})
			Expect(err).NotTo(HaveOccurred())
			p16 = &pair{c: cpu.New(cpu.Options{Threads: 4, Compute: backend.F16}), g: g16}
		})
		AfterAll(func() {
			if p16 != nil {
				p16.g.Close()
			}
		})
		var entries []TableEntry
		for _, cache := range []backend.DType{backend.F16, backend.F32} {
			for _, hd := range []int{64, 96, 128} {
				for _, n := range []int{1, 3} {
					for _, round := range []bool{false, true} {
						entries = append(entries, Entry(fmt.Sprintf("%v cache, head dim %d, %d tokens, round %v", cache, hd, n, round),
							cache, hd, n, round))
					}
				}
			}
		}
		entries = append(entries,
			Entry("prefill-sized: F16 cache, head dim 128, 300 tokens", backend.F16, 128, 300, false),
			Entry("prefill-sized: F16 cache, head dim 128, 300 tokens, round", backend.F16, 128, 300, true),
			Entry("prefill-sized: F32 cache, head dim 96, 300 tokens", backend.F32, 96, 300, false))
		DescribeTable("Attention of few tokens over long caches (GQA 8/2)",
			func(cache backend.DType, hd, n int, round bool) {
				pp, tol := p, 1e-5
				if round {
					pp, tol = p16, 2e-4 // a few outputs may round the other way
					pp.rg = p.rg
				}
				heads, kvHeads, slots, maxLen := 8, 2, 3, 1000
				kvd := kvHeads * hd
				kcC, kcG := pp.typed(cache, randn(pp.rg, slots*maxLen*kvd, 1), slots, maxLen, kvd)
				vcC, vcG := pp.typed(cache, randn(pp.rg, slots*maxLen*kvd, 1), slots, maxLen, kvd)
				// steps of (slot, position) per token
				var steps [][][2]int32
				switch n {
				case 1:
					steps = [][][2]int32{{{0, 0}}, {{1, 36}}, {{2, 299}}, {{0, 999}}}
				case 3:
					steps = [][][2]int32{{{0, 999}, {2, 36}, {1, 0}}, {{1, 299}, {2, 999}, {2, 300}}}
				default: // slot 0 at 0..n/2-1, slot 2 at 500.., interleaved
					var st [][2]int32
					for i := 0; i < n; i++ {
						st = append(st, [2]int32{int32(2 * (i % 2)), int32(i/2 + 500*(i%2))})
					}
					steps = [][][2]int32{st}
				}
				for _, st := range steps {
					seq, pos := make([]int32, n), make([]int32, n)
					for i, sp := range st {
						seq[i], pos[i] = sp[0], sp[1]
					}
					qc, qg := pp.f32(randn(pp.rg, n*heads*hd, 2), n, heads*hd) // scores of sd 2: peaked softmax
					kc, kg := pp.f32(randn(pp.rg, n*kvd, 1), n, kvd)
					vc, vg := pp.f32(randn(pp.rg, n*kvd, 1), n, kvd)
					sc, sg := pp.i32(seq)
					pc, pg := pp.i32(pos)
					oc, og := pp.c.New(backend.F32, n, heads*hd), pp.poisoned(n, heads*hd)
					pp.c.Attention(oc, qc, kc, vc, kcC, vcC, sc, pc, heads, kvHeads)
					pp.g.Attention(og, qg, kg, vg, kcG, vcG, sg, pg, heads, kvHeads)
					want, got := readBoth(pp, oc, og)
					e := rel(got, want)
					at := fmt.Sprint(pos)
					if n > 3 {
						at = fmt.Sprintf("%d positions", n)
					}
					AddReportEntry(fmt.Sprintf("attention %v hd %d round %v at %s: rel err", cache, hd, round, at), e)
					Expect(e).To(BeNumerically("<", tol), "positions %v", pos)
					if round { // every output a half: its float32 mantissa ends in 13 zero bits
						for k, v := range got {
							if math.Float32bits(v)&0x1fff != 0 {
								Fail(fmt.Sprintf("output %d = %g is not rounded to half (positions %v)", k, v, pos))
							}
						}
					}
				}
			},
			entries,
		)
	})

	It("SiLUMul, Add and Rows", func() {
		n, d := 9, 1001
		gc, gg := p.f32(randn(p.rg, n*d, 3), n, d)
		uc, ug := p.f32(randn(p.rg, n*d, 1), n, d)
		yc, yg := p.c.New(backend.F32, n, d), p.poisoned(n, d)
		p.c.SiLUMul(yc, gc, uc)
		p.g.SiLUMul(yg, gg, ug)
		want, got := readBoth(p, yc, yg)
		Expect(rel(got, want)).To(BeNumerically("<", 1e-6))
		p.c.Add(yc, yc, gc)
		p.g.Add(yg, yg, gg)
		want, got = readBoth(p, yc, yg)
		Expect(rel(got, want)).To(BeNumerically("<", 1e-6))
		for _, dt := range []backend.DType{backend.F32, backend.F16} {
			sc, sg := p.typed(dt, randn(p.rg, 50*d, 1), 50, d)
			ic, ig := p.i32([]int32{49, 0, 7, 7})
			rc, rg := p.c.New(backend.F32, 4, d), p.poisoned(4, d)
			p.c.Rows(rc, sc, ic)
			p.g.Rows(rg, sg, ig)
			want, got = readBoth(p, rc, rg)
			Expect(rel(got, want)).To(BeNumerically("<", 1e-6), "%v", dt)
		}
	})

	It("picks the greedy token (lowest index on ties) and samples by the cumulative rule", func() {
		n, vocab := 5, 32000
		l := randn(p.rg, n*vocab, 2)
		l[1*vocab+7], l[1*vocab+9000] = 50, 50 // a tie
		lg := p.g.New(backend.F32, n, vocab)
		p.g.SetFloat32(lg, l)
		dst := p.g.New(backend.I32, n)
		p.g.Argmax(dst, lg)
		got := make([]int32, n)
		p.g.Int32(got, dst)
		for i := 0; i < n; i++ {
			best := 0
			for c := range vocab {
				if l[i*vocab+c] > l[i*vocab+best] {
					best = c
				}
			}
			Expect(got[i]).To(Equal(int32(best)), "row %d", i)
		}
		u := []float32{0, 0.25, 0.5, 0.75, 0.999}
		ug := p.g.New(backend.F32, n)
		p.g.SetFloat32(ug, u)
		p.g.Sample(dst, lg, ug, 0.7)
		p.g.Int32(got, dst)
		for i := 0; i < n; i++ {
			row := l[i*vocab : (i+1)*vocab]
			m := float64(row[0])
			for _, v := range row {
				m = math.Max(m, float64(v))
			}
			var total float64
			for _, v := range row {
				total += math.Exp((float64(v) - m) / 0.7)
			}
			var lo float64
			for c := 0; c < int(got[i]); c++ {
				lo += math.Exp((float64(row[c])-m)/0.7) / total
			}
			hi := lo + math.Exp((float64(row[got[i]])-m)/0.7)/total
			Expect(float64(u[i])).To(BeNumerically(">=", lo-1e-4), "row %d", i)
			Expect(float64(u[i])).To(BeNumerically("<", hi+1e-4), "row %d", i)
		}
	})

	It("replays a captured graph with new inputs", func() {
		n, out, in := 1, 300, 4096
		w := randn(p.rg, out*in, 0.05)
		q := nf4.Quantize(w, out, in)
		wc, wg := p.c.NF4(q), p.g.NF4(q)
		xg := p.g.New(backend.F32, n, in)
		yg := p.g.New(backend.F32, n, out)
		graph, err := p.g.Capture(func() { p.g.MatMul(yg, xg, wg) })
		Expect(err).NotTo(HaveOccurred())
		defer graph.Destroy()
		for k := 0; k < 2; k++ {
			x := randn(p.rg, n*in, 1)
			xc, _ := p.f32(x, n, in)
			p.g.SetFloat32(xg, x)
			graph.Replay()
			yc := p.c.New(backend.F32, n, out)
			p.c.MatMul(yc, xc, wc)
			want, got := readBoth(p, yc, yg)
			Expect(rel(got, want)).To(BeNumerically("<", 1e-5))
		}
	})
})

// ---- whole models -------------------------------------------------------------

func loadModel(b backend.Backend, name string, q llama.Quant) *llama.Model {
	m, err := paritytest.LoadTiny(b, name, llama.Options{Quant: q})
	Expect(err).NotTo(HaveOccurred())
	return m
}

var _ = Describe("CUDA backend on the parity goldens", Label("gpu"), func() {
	for _, name := range []string{"llama-mha", "llama-gqa", "llama-tied"} {
		It("matches transformers and the CPU backend on "+name, func() {
			g := openGPU()
			gold, err := paritytest.ReadGolden(name)
			Expect(err).NotTo(HaveOccurred())
			logits := gold.Logits
			defer logits.Close()
			opts := llama.GenOptions{MaxNewTokens: gold.NewTokens, EOS: []int32{gold.EOS}}
			for _, q := range []llama.Quant{llama.FP32, llama.NF4} {
				m := loadModel(g, name, q)
				got, err := m.Logits(gold.Seqs)
				Expect(err).NotTo(HaveOccurred())
				for i := range gold.Seqs {
					key := fmt.Sprintf("batch.s%d", i)
					if q == llama.NF4 {
						key = fmt.Sprintf("nf4.s%d", i)
					}
					want, _, err := logits.Float32(key)
					Expect(err).NotTo(HaveOccurred())
					e := rel(got[i], want)
					AddReportEntry(fmt.Sprintf("%s %s rel err", name, key), e)
					Expect(e).To(BeNumerically("<", 1e-3), key)
				}
				res, err := m.Generate(gold.Seqs, opts)
				Expect(err).NotTo(HaveOccurred())
				want := gold.GreedyBatch
				if q == llama.NF4 {
					want = gold.NF4Greedy
				}
				for i := range res {
					Expect(res[i].IDs).To(Equal(want[i]), "%s %s sequence %d", name, q, i)
				}
			}
			// fp16 compute: the GPU against the CPU backend, both rounding
			// every op output to half
			g16, err := cuda.New(cuda.Options{Compute: backend.F16})
			Expect(err).NotTo(HaveOccurred())
			defer g16.Close()
			mg := loadModel(g16, name, llama.NF4)
			mc := loadModel(cpu.New(cpu.Options{Threads: 4, Compute: backend.F16}), name, llama.NF4)
			lg, err := mg.Logits(gold.Seqs)
			Expect(err).NotTo(HaveOccurred())
			lc, err := mc.Logits(gold.Seqs)
			Expect(err).NotTo(HaveOccurred())
			for i := range gold.Seqs {
				e := rel(lg[i], lc[i])
				AddReportEntry(fmt.Sprintf("%s nf4 fp16-compute s%d GPU vs CPU rel err", name, i), e)
				Expect(e).To(BeNumerically("<", 1e-3))
			}
			rg, err := mg.Generate(gold.Seqs, opts)
			Expect(err).NotTo(HaveOccurred())
			rc, err := mc.Generate(gold.Seqs, opts)
			Expect(err).NotTo(HaveOccurred())
			for i := range rg {
				Expect(rg[i].IDs).To(Equal(rc[i].IDs), "%s fp16 greedy sequence %d", name, i)
			}
		})
	}
})
