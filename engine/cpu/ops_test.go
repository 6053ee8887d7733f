package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/backend"
	"loramix/engine/cpu"
	"loramix/engine/dtype"
	"loramix/engine/nf4"
)

// Every op is compared with a plain float64 loop over the same inputs.

func randn(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func closeTo(got []float32, want []float64, tol float64) {
	Expect(got).To(HaveLen(len(want)))
	var num, den float64
	for i := range want {
		d := float64(got[i]) - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	Expect(math.Sqrt(num / den)).To(BeNumerically("<", tol))
}

func upload(b *cpu.CPU, v []float32, shape ...int) backend.Tensor {
	t := b.New(backend.F32, shape...)
	b.SetFloat32(t, v)
	return t
}

func read(b *cpu.CPU, t backend.Tensor) []float32 {
	out := make([]float32, backend.Elements(t.Shape()))
	b.Float32(out, t)
	return out
}

// naiveMatMul returns x (n, in) @ wᵀ with w (out, in).
func naiveMatMul(x, w []float32, n, in, out int) []float64 {
	y := make([]float64, n*out)
	for r := 0; r < n; r++ {
		for o := 0; o < out; o++ {
			var s float64
			for k := 0; k < in; k++ {
				s += float64(x[r*in+k]) * float64(w[o*in+k])
			}
			y[r*out+o] = s
		}
	}
	return y
}

// matMulCase checks MatMul with a weight of dtype wt against naiveMatMul.
func matMulCase(r *rand.Rand, wt backend.DType, n, in, out, threads int) {
	b := cpu.New(cpu.Options{Threads: threads})
	x, w := randn(r, n*in), randn(r, out*in)
	var wT backend.Tensor
	ref := w
	switch wt {
	case backend.F32:
		wT = upload(b, w, out, in)
	case backend.F16:
		wT = b.New(backend.F16, out, in)
		b.SetFloat32(wT, w)
		ref = make([]float32, len(w))
		for i, v := range w {
			ref[i] = dtype.F16ToF32(dtype.F32ToF16(v))
		}
	case backend.NF4:
		q := nf4.Quantize(w, out, in)
		wT = b.NF4(q)
		ref = make([]float32, len(w))
		q.Dequantize(ref)
	}
	y := b.New(backend.F32, n, out)
	b.MatMul(y, upload(b, x, n, in), wT)
	closeTo(read(b, y), naiveMatMul(x, ref, n, in, out), 1e-6)
}

var _ = Describe("CPU ops against float64 loops", func() {
	var r *rand.Rand
	BeforeEach(func() { r = rand.New(rand.NewPCG(3, 4)) })

	DescribeTable("MatMul, with and without the assembly kernels",
		func(wt backend.DType, n, in, out, threads int) {
			for _, asm := range []bool{true, false} {
				restore := cpu.SetAssembly(asm)
				matMulCase(r, wt, n, in, out, threads)
				restore()
			}
		},
		Entry("F32 one token", backend.F32, 1, 64, 48, 4),
		Entry("F32 batch", backend.F32, 5, 100, 37, 3),
		Entry("F16 batch", backend.F16, 3, 64, 40, 2),
		Entry("NF4 one token (blocks within rows)", backend.NF4, 1, 256, 300, 4),
		Entry("NF4 batch", backend.NF4, 7, 128, 50, 4),
		Entry("NF4 one token, blocks straddling rows", backend.NF4, 1, 172, 64, 2),
		Entry("NF4 batch, blocks straddling rows", backend.NF4, 4, 172, 64, 1),
		Entry("NF4 batch of 5 (four-token kernel plus one)", backend.NF4, 5, 192, 33, 2),
		Entry("NF4 one token, rows of 160 starting mid-block", backend.NF4, 1, 160, 70, 3),
		Entry("NF4 batch, rows of 160 starting mid-block", backend.NF4, 6, 160, 45, 2),
		Entry("F16 one token, odd width", backend.F16, 1, 77, 20, 2),
	)

	It("AddLoRA adds scale·B(Ax) to the listed rows only", func() {
		b := cpu.New(cpu.Options{Threads: 3})
		n, in, out, rk := 5, 40, 30, 4
		x, A, B, base := randn(r, n*in), randn(r, rk*in), randn(r, out*rk), randn(r, n*out)
		dst := upload(b, base, n, out)
		rows := b.New(backend.I32, 2)
		b.SetInt32(rows, []int32{1, 3})
		b.AddLoRA(dst, upload(b, x, n, in), upload(b, A, rk, in), upload(b, B, out, rk), 0.5, rows)
		ax := naiveMatMul(x, A, n, in, rk)
		want := make([]float64, n*out)
		for i := 0; i < n; i++ {
			for o := 0; o < out; o++ {
				want[i*out+o] = float64(base[i*out+o])
				if i == 1 || i == 3 {
					var s float64
					for k := 0; k < rk; k++ {
						s += ax[i*rk+k] * float64(B[o*rk+k])
					}
					want[i*out+o] += 0.5 * s
				}
			}
		}
		closeTo(read(b, dst), want, 1e-6)
	})

	It("RMSNorm, SiLUMul, Add and Rows", func() {
		b := cpu.New(cpu.Options{})
		n, d := 3, 20
		x, w, y := randn(r, n*d), randn(r, d), randn(r, n*d)
		X, W, Y := upload(b, x, n, d), upload(b, w, d), upload(b, y, n, d)
		dst := b.New(backend.F32, n, d)
		b.RMSNorm(dst, X, W, 1e-5)
		want := make([]float64, n*d)
		for i := 0; i < n; i++ {
			var ss float64
			for j := 0; j < d; j++ {
				ss += float64(x[i*d+j]) * float64(x[i*d+j])
			}
			inv := 1 / math.Sqrt(ss/float64(d)+1e-5)
			for j := 0; j < d; j++ {
				want[i*d+j] = float64(x[i*d+j]) * inv * float64(w[j])
			}
		}
		closeTo(read(b, dst), want, 1e-6)

		b.SiLUMul(dst, X, Y)
		for i := range want {
			g := float64(x[i])
			want[i] = g / (1 + math.Exp(-g)) * float64(y[i])
		}
		closeTo(read(b, dst), want, 1e-6)

		b.Add(dst, X, Y)
		for i := range want {
			want[i] = float64(x[i]) + float64(y[i])
		}
		closeTo(read(b, dst), want, 1e-7)

		idx := b.New(backend.I32, 2)
		b.SetInt32(idx, []int32{2, 0})
		g := b.New(backend.F32, 2, d)
		b.Rows(g, X, idx)
		Expect(read(b, g)).To(Equal(append(append([]float32{}, x[2*d:3*d]...), x[:d]...)))
	})

	It("RoPE rotates pairs (j, j+d/2) by position·theta^(-2j/d)·scale", func() {
		b := cpu.New(cpu.Options{})
		n, heads, hd := 3, 2, 8
		x := randn(r, n*heads*hd)
		X := upload(b, x, n, heads*hd)
		pos := b.New(backend.I32, n)
		b.SetInt32(pos, []int32{0, 5, 17})
		b.RoPE(X, pos, heads, 10000, 0.5)
		want := make([]float64, len(x))
		for i, p := range []float64{0, 5, 17} {
			for h := 0; h < heads; h++ {
				for j := 0; j < hd/2; j++ {
					a := p * 0.5 * math.Pow(10000, -float64(2*j)/float64(hd))
					u, v := float64(x[i*heads*hd+h*hd+j]), float64(x[i*heads*hd+h*hd+j+hd/2])
					want[i*heads*hd+h*hd+j] = u*math.Cos(a) - v*math.Sin(a)
					want[i*heads*hd+h*hd+j+hd/2] = v*math.Cos(a) + u*math.Sin(a)
				}
			}
		}
		closeTo(read(b, X), want, 1e-6)
	})

	DescribeTable("Attention with a KV cache and grouped KV heads",
		func(heads, kvHeads int, cache backend.DType, tol float64) {
			b := cpu.New(cpu.Options{Threads: 4})
			hd, slots, span := 8, 2, 10
			kc, vc := b.New(cache, slots, span, kvHeads*hd), b.New(cache, slots, span, kvHeads*hd)
			// Reference cache contents, filled in two steps.
			K := make([][][]float32, slots) // [slot][pos] (kvHeads*hd)
			V := make([][][]float32, slots)
			run := func(seq, pos []int32) {
				n := len(seq)
				q, k, v := randn(r, n*heads*hd), randn(r, n*kvHeads*hd), randn(r, n*kvHeads*hd)
				S, P := b.New(backend.I32, n), b.New(backend.I32, n)
				b.SetInt32(S, seq)
				b.SetInt32(P, pos)
				dst := b.New(backend.F32, n, heads*hd)
				b.Attention(dst, upload(b, q, n, heads*hd), upload(b, k, n, kvHeads*hd), upload(b, v, n, kvHeads*hd), kc, vc, S, P, heads, kvHeads)
				for i := range seq {
					s, p := seq[i], int(pos[i])
					for len(K[s]) <= p {
						K[s], V[s] = append(K[s], nil), append(V[s], nil)
					}
					K[s][p], V[s][p] = k[i*kvHeads*hd:(i+1)*kvHeads*hd], v[i*kvHeads*hd:(i+1)*kvHeads*hd]
				}
				want := make([]float64, n*heads*hd)
				for i := range seq {
					s, p := seq[i], int(pos[i])
					for h := 0; h < heads; h++ {
						g := h / (heads / kvHeads)
						sc := make([]float64, p+1)
						mx := math.Inf(-1)
						for t := 0; t <= p; t++ {
							for j := 0; j < hd; j++ {
								sc[t] += float64(q[i*heads*hd+h*hd+j]) * float64(K[s][t][g*hd+j])
							}
							sc[t] /= math.Sqrt(float64(hd))
							mx = math.Max(mx, sc[t])
						}
						var sum float64
						for t := range sc {
							sc[t] = math.Exp(sc[t] - mx)
							sum += sc[t]
						}
						for t := range sc {
							for j := 0; j < hd; j++ {
								want[i*heads*hd+h*hd+j] += sc[t] / sum * float64(V[s][t][g*hd+j])
							}
						}
					}
				}
				closeTo(read(b, dst), want, tol)
			}
			run([]int32{0, 0, 0, 1, 1}, []int32{0, 1, 2, 0, 1}) // prefill of two prompts
			run([]int32{0, 1}, []int32{3, 2})                   // one decode step each
		},
		Entry("MHA, F32 cache", 4, 4, backend.F32, 1e-6),
		Entry("GQA 4/2, F32 cache", 4, 2, backend.F32, 1e-6),
		Entry("GQA 6/1 (MQA), F32 cache", 6, 1, backend.F32, 1e-6),
		Entry("GQA 4/2, F16 cache", 4, 2, backend.F16, 2e-3),
	)

	It("rounds every output to half precision under Compute F16", func() {
		b := cpu.New(cpu.Options{Compute: backend.F16})
		x := randn(r, 64)
		X := upload(b, x, 1, 64)
		w := upload(b, randn(r, 64*8), 8, 64)
		y := b.New(backend.F32, 1, 8)
		b.MatMul(y, X, w)
		for _, v := range read(b, y) {
			Expect(dtype.F16ToF32(dtype.F32ToF16(v))).To(Equal(v), fmt.Sprint(v))
		}
	})

	It("multiplies with NF4 weights dequantized to half precision under Compute F16", func() {
		b := cpu.New(cpu.Options{Compute: backend.F16})
		const n, in, out = 3, 192, 40
		x := randn(r, n*in)
		for i, v := range x { // fp16 compute feeds half-precision activations
			x[i] = dtype.F16ToF32(dtype.F32ToF16(v))
		}
		w := randn(r, out*in)
		for i := range w {
			w[i] *= 0.05
		}
		q := nf4.Quantize(w, out, in)
		deq := make([]float32, out*in)
		q.Dequantize(deq)
		exactW := append([]float32(nil), deq...)
		for i, v := range deq {
			deq[i] = dtype.F16ToF32(dtype.F32ToF16(v))
		}
		y := b.New(backend.F32, n, out)
		b.MatMul(y, upload(b, x, n, in), b.NF4(q))
		got := read(b, y)
		want := naiveMatMul(x, deq, n, in, out)
		worst, flips := 0.0, 0
		for i := range want {
			h := dtype.F16ToF32(dtype.F32ToF16(float32(want[i])))
			if got[i] != h {
				flips++ // a float32 summation-order difference crossing a rounding boundary
			}
			worst = max(worst, math.Abs(float64(got[i])-want[i])/(math.Abs(want[i])+1e-3))
		}
		Expect(worst).To(BeNumerically("<", 1e-3))
		Expect(flips).To(BeNumerically("<=", 2))
		// and it differs from the float32-weight product: the rounding is real
		exact := naiveMatMul(x, exactW, n, in, out)
		diff := 0
		for i := range exact {
			if dtype.F16ToF32(dtype.F32ToF16(float32(exact[i]))) != got[i] {
				diff++
			}
		}
		Expect(diff).To(BeNumerically(">", n*out/10))
	})

	It("panics on mismatched shapes with a cpu: prefix", func() {
		b := cpu.New(cpu.Options{})
		Expect(func() { b.MatMul(b.New(backend.F32, 1, 3), b.New(backend.F32, 1, 4), b.New(backend.F32, 3, 5)) }).
			To(PanicWith(ContainSubstring("cpu: MatMul")))
	})
})
