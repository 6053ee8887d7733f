package cuda_test

import (
	"math"
	"math/rand/v2"
	"regexp"
	"strings"

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

	// The post-scaled kernels' semantics: half codes times half x, each
	// 64-input block's sum times its absmax. Against the plain product of
	// the dequantized weights it may differ by the half roundings only.
	It("post-scaled products are the NF4 product within half rounding", func() {
		const out, in, n = 9, 320, 2
		r := rand.New(rand.NewPCG(3, 4))
		w, x := randn(r, out*in, 0.05), randn(r, n*in, 1)
		q := nf4.Quantize(w, out, in)
		y, bound := cuda.MmaxPostMirror(x, q, n)
		deq := make([]float32, out*in)
		q.Dequantize(deq)
		plain := naive(x, deq, n, in, out)
		got := make([]float32, len(y))
		for i, v := range y {
			got[i] = float32(v)
			Expect(bound[i]).To(BeNumerically(">=", math.Abs(v)))
		}
		e := relErr(got, plain)
		Expect(e).To(BeNumerically("<", 2e-3))
		Expect(e).To(BeNumerically(">", 0), "the half roundings change something")
	})

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

	// nf4_mmax_8's byte table has entry b at byte 256 b and lane l's replica
	// at 8 (l % 16) in it, so one byte permute of the code word makes the
	// whole offset of code byte k.
	It("finds a code byte's table entry with one byte permute", func() {
		// prmt as PTX defines it: a's bytes 0-3, b's 4-7; bit 3 replicates a sign
		Expect(cuda.PrmtMirror(0x33221100, 0x77665544, 0x7531)).To(Equal(uint32(0x77553311)))
		Expect(cuda.PrmtMirror(0x00008000, 0, 0x0009)).To(Equal(uint32(0x000000ff)))
		r := rand.New(rand.NewPCG(7, 8))
		for i := 0; i < 1000; i++ {
			v, k, lane := r.Uint32(), r.IntN(4), r.IntN(32)
			b := v >> (8 * k) & 0xff
			Expect(cuda.MmaxLookupOffset(v, k, lane)).To(Equal(256*b+uint32(8*(lane%16))), "v %#x, byte %d, lane %d", v, k, lane)
		}
	})

	// The post-scaled kernels multiply each mma step's sum by one absmax a
	// row, so the step's 16 k (four lanes t) must lie in one 64-input block,
	// the one whose absmax the step takes (s / 4); the codes and both forms
	// of x must meet at the same inputs, and a lane's quad must cover the
	// warp's 256 inputs once.
	It("keeps each post-scaled mma step in one absmax block, codes and x aligned", func() {
		seen := map[int]bool{}
		for s := 0; s < 16; s++ {
			for t := 0; t < 4; t++ {
				lo, hi := cuda.MmaxPostCodeInputs(t, s)
				hlo, hhi := cuda.MmaxPostHalfInputs(t, s)
				flo, fhi := cuda.MmaxPostFloatInputs(t, s)
				Expect([][2]int{hlo, hhi}).To(Equal([][2]int{lo, hi}), "half x, lane %d, step %d", t, s)
				Expect([][2]int{flo, fhi}).To(Equal([][2]int{lo, hi}), "float32 x, lane %d, step %d", t, s)
				for _, in := range []int{lo[0], lo[1], hi[0], hi[1]} {
					Expect(in/64).To(Equal(s/4), "lane %d, step %d, input %d", t, s, in)
					Expect(seen[in]).To(BeFalse(), "input %d twice", in)
					seen[in] = true
				}
			}
		}
		Expect(seen).To(HaveLen(256))
	})

	// The adapter's b rows: the prologue's copies must fill every rank of
	// every local row of every tile once, where the expanding warp reads
	// them, rows apart; the expanding warp's lanes cover each row's ranks
	// once and hand rows g and g + 8 to the lanes holding them.
	DescribeTable("stages the adapter's b rows where the expands read them",
		func(lr, iters int) {
			cpr := lr / 4
			seen := map[int]bool{}
			for c := 0; c < iters*16*cpr; c++ {
				i, r, ch, off := cuda.MmaxLBStageSlot(c, cpr)
				Expect(i).To(BeNumerically("<", iters))
				Expect(off).To(Equal(cuda.MmaxLBReadOffset(i, r, lr)+4*ch), "chunk %d", c)
				for k := 0; k < 4; k++ {
					Expect(seen[off+k]).To(BeFalse(), "float %d twice", off+k)
					seen[off+k] = true
				}
			}
			Expect(seen).To(HaveLen(iters * 16 * lr))
			ranks := map[[2]int]int{}
			for l := 0; l < 32; l++ {
				row, q0 := cuda.MmaxExpandLane(l)
				for q := q0; q < 8; q += 2 {
					if 4*q < lr {
						for k := 0; k < 4; k++ {
							ranks[[2]int{row, 4*q + k}]++
						}
					}
				}
			}
			Expect(ranks).To(HaveLen(16 * lr))
			for key, n := range ranks {
				Expect(n).To(Equal(1), "row %d rank %d", key[0], key[1])
			}
			for g := 0; g < 8; g++ {
				lo, hi := cuda.MmaxExpandSources(g)
				rlo, _ := cuda.MmaxExpandLane(lo)
				rhi, _ := cuda.MmaxExpandLane(hi)
				Expect([]int{rlo, rhi}).To(Equal([]int{g, g + 8}))
			}
		},
		Entry("rank 16, one tile", 16, 1),
		Entry("rank 8, three tiles", 8, 3),
		Entry("rank 32, eleven tiles (gate/up of a 7B layer)", 32, 11),
	)

	// Under RoPE the q and k tiles of nf4_mmaxf_8 hold rows j and j + hd/2 of
	// one head as local rows r and r + 8, so the store that rotates them has
	// both; the tiles must still cover every row once.
	DescribeTable("pairs RoPE's rows in the q and k tiles and covers each row once",
		func(heads, hd int) {
			out := heads * hd
			for d := 0; d < 3; d++ {
				seen := map[int]bool{}
				for lt := 0; lt < out/16; lt++ {
					for rl := 0; rl < 16; rl++ {
						row := cuda.MmaxRowMirror(lt, rl, d, hd)
						Expect(row).To(And(BeNumerically(">=", 0), BeNumerically("<", out)))
						Expect(seen[row]).To(BeFalse(), "weight %d, tile %d, row %d", d, lt, rl)
						seen[row] = true
						if d < 2 && rl < 8 {
							partner := cuda.MmaxRowMirror(lt, rl+8, d, hd)
							Expect(partner).To(Equal(row+hd/2), "weight %d, tile %d, row %d", d, lt, rl)
							Expect(row % hd).To(BeNumerically("<", hd/2))
						}
					}
				}
				Expect(seen).To(HaveLen(out))
			}
		},
		Entry("Llama-2-7B: 32 heads of 128", 32, 128),
		Entry("the smallest head, 16", 3, 16),
		Entry("the largest, 256", 2, 256),
	)

	// Kernels are launched with programmatic dependent launch: one that
	// touched an earlier kernel's memory before pdl_wait would race with it.
	It("has every kernel wait for the kernels before it (pdl_wait)", func() {
		bodies, globals := kernelFunctions(cuda.Source())
		Expect(globals).To(HaveLen(strings.Count(cuda.Source(), "__global__")), "every kernel parsed")
		waits := map[string]bool{}
		for changed := true; changed; { // a function waits if it, or a function it calls, does
			changed = false
			for name, body := range bodies {
				if waits[name] {
					continue
				}
				w := strings.Contains(body, "pdl_wait()") || strings.Contains(body, "pdl_start()")
				for callee := range waits {
					w = w || regexp.MustCompile(`\b`+callee+`\s*[(<]`).MatchString(body)
				}
				if w {
					waits[name], changed = true, true
				}
			}
		}
		var missing []string
		for _, g := range globals {
			if !waits[g] {
				missing = append(missing, g)
			}
		}
		Expect(missing).To(BeEmpty())
	})

	It("embeds every kernel source and keys the cache by architecture", func() {
		Expect(cuda.Source()).To(ContainSubstring("nf4_gemv"))
		Expect(cuda.Source()).To(ContainSubstring("attention_f16"))
		Expect(cuda.CacheKey("90", "13.0")).NotTo(Equal(cuda.CacheKey("80", "13.0")))
		Expect(cuda.CacheKey("90", "13.0")).NotTo(Equal(cuda.CacheKey("90", "12.8")))
	})
})

// kernelFunctions returns the body of every function defined in the kernel
// source src (comments removed), by name, and the names of the __global__
// ones (macro-made names keep their ## pieces).
func kernelFunctions(src string) (bodies map[string]string, globals []string) {
	src = regexp.MustCompile(`//[^\n]*`).ReplaceAllString(src, "")
	src = strings.ReplaceAll(src, "\\\n", "\n") // macro line continuations
	head := regexp.MustCompile(`(__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s*)?|__device__\s+(?:__forceinline__\s+)?[\w\s*&:<>,]*?)\b([A-Za-z_][\w#]*)\s*\(`)
	bodies = map[string]string{}
	for _, m := range head.FindAllStringSubmatchIndex(src, -1) {
		name := src[m[4]:m[5]]
		// the parameter list, then the body's braces (a declaration has none)
		i, depth := m[1], 1
		for ; i < len(src) && depth > 0; i++ {
			switch src[i] {
			case '(':
				depth++
			case ')':
				depth--
			}
		}
		j := i + strings.IndexAny(src[i:], "{;")
		if j < i || src[j] == ';' {
			continue
		}
		k := j + 1
		for depth = 1; k < len(src) && depth > 0; k++ {
			switch src[k] {
			case '{':
				depth++
			case '}':
				depth--
			}
		}
		bodies[name] = src[j:k]
		if strings.HasPrefix(src[m[0]:m[1]], "__global__") {
			globals = append(globals, name)
		}
	}
	return bodies, globals
}
