//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/backend"
	"loramix/engine/dtype"
	"loramix/engine/nf4"
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

// The batch decode stores its products' operands in half (the products
// round them so anyway): RMSNorm, SiLUMul and attention into F16 tensors
// must store exactly the half of their float32 results, and the products
// of an F16 x must equal those of the float32 x it rounds, bit for bit.
var _ = Describe("fp16 operands of the batch products", Label("gpu"), func() {
	It("are the float32 results rounded to half, and give the same products", func() {
		c, err := New(Options{})
		if err != nil {
			Skip("no CUDA device: " + err.Error())
		}
		defer c.Close()
		const n, in, out, heads, maxLen = 5, 512, 264, 4, 48
		halfOf := func(t *Tensor) []float32 { // t's values rounded to half, read back
			v := make([]float32, t.elems())
			c.Float32(v, t)
			for i := range v {
				v[i] = dtype.F16ToF32(dtype.F32ToF16(v[i]))
			}
			return v
		}
		x, a, b := c.newT(backend.F32, n, in), c.newT(backend.F32, n, in), c.newT(backend.F32, n, in)
		w := c.newT(backend.F32, in)
		y32, y16 := c.newT(backend.F32, n, in), c.newT(backend.F16, n, in)
		q := c.newT(backend.F32, n, in)
		kc, vc := c.newT(backend.F16, n, maxLen, in), c.newT(backend.F16, n, maxLen, in)
		seq, pos := c.newT(backend.I32, n), c.newT(backend.I32, n)
		func() {
			defer c.bind()()
			for i, t := range []*Tensor{x, a, b, w, q, kc, vc} {
				c.fillUniform(t, -2, 2, uint64(40+i))
			}
		}()
		c.SetInt32(seq, []int32{0, 1, 2, 3, 4})
		c.SetInt32(pos, []int32{0, 7, 20, 33, 47})

		c.RMSNorm(y32, x, w, 1e-5)
		c.RMSNorm(y16, x, w, 1e-5)
		Expect(readBack(c, y16)).To(Equal(halfOf(y32)), "RMSNorm")
		c.SiLUMul(y32, a, b)
		c.SiLUMul(y16, a, b)
		Expect(readBack(c, y16)).To(Equal(halfOf(y32)), "SiLUMul")
		func() {
			defer c.bind()()
			c.attend(y32, q, kc, vc, seq, pos, heads, heads)
			c.attend(y16, q, kc, vc, seq, pos, heads, heads)
		}()
		Expect(readBack(c, y16)).To(Equal(halfOf(y32)), "attention")

		// the products: x as float32 and as its half
		var wt *Tensor
		p32, p16 := c.newT(backend.F32, n, out), c.newT(backend.F32, n, out)
		func() {
			defer c.bind()()
			wt, _ = c.randomNF4(out, in, 47)
			c.mmax(p32, y32, wt, n, out, in, c.productMode(false), false)
			c.mmax(p16, y16, wt, n, out, in, c.productMode(false), false)
		}()
		Expect(readBack(c, p16)).To(Equal(readBack(c, p32)), "nf4_mmax_16")
		m := func() *multiGemv {
			defer c.bind()()
			return c.newMultiGemv([]*Tensor{wt}, []*Tensor{p16}, nil)
		}()
		defer func() { defer c.bind()(); m.free() }()
		func() { defer c.bind()(); m.run(c, y16, false, gemvFuse{}) }()
		Expect(readBack(c, p16)).To(Equal(readBack(c, p32)), "nf4_mmaxm_16")
		Expect(c.Sync()).To(Succeed())
	})
})

// nf4_mmax issues one mma a step up to 8 tokens (nf4_mmax_8) and two up to
// 16 (nf4_mmax_16). Tokens 0-7 get the same A fragments either way; _8 sums
// its even and odd steps apart, so the two agree to float32 rounding of the
// sum's order, and each agrees bit for bit with itself from F16 and from
// float32 x and through the multi-weight launch. Over partial 16-row tiles
// (out 200) and one k split (in <= 4096; wider inputs add their k splits
// atomically, in no fixed order).
var _ = DescribeTable("nf4_mmax kernels", Label("gpu"), func(n, in int) {
	c, err := New(Options{})
	if err != nil {
		Skip("no CUDA device: " + err.Error())
	}
	defer c.Close()
	const out = 200
	x32, x16 := c.newT(backend.F32, n, in), c.newT(backend.F16, n, in)
	var w *Tensor
	func() {
		defer c.bind()()
		c.fillUniform(x32, -2, 2, 61)
		w, _ = c.randomNF4(out, in, 62)
	}()
	c.SetFloat32(x16, readBack(c, x32)) // rounded to half as the kernels round x
	y := c.newT(backend.F32, n, out)
	run := func(n16 int, x *Tensor) []float32 { // n16 > n: the 16-token kernel for n tokens
		defer c.bind()()
		x3, xh := outPtrs(x)
		c.launch(mmaxKernel("nf4_mmax", n16), max(1, min((out+15)/16, c.sms)), 1, 1, 512, mmaxSmem(n16),
			y.ptr, x3, xh, w.q.packed, w.q.qabs, w.q.absmax2, c.dmap, w.q.offset, n, out, in, 0, 1)
		return readBack(c, y)
	}
	want := run(16, x32)
	Expect(run(16, x16)).To(Equal(want), "nf4_mmax_16, F16 x")
	if n <= 8 {
		want16 := want
		want = run(n, x32)
		Expect(run(n, x16)).To(Equal(want), "nf4_mmax_8, F16 x")
		for i := range want {
			Expect(want[i]).To(BeNumerically("~", want16[i], 1e-5*(1+math.Abs(float64(want16[i])))), "nf4_mmax_8 against _16, %d", i)
		}
	}
	m := func() *multiGemv {
		defer c.bind()()
		return c.newMultiGemv([]*Tensor{w}, []*Tensor{y}, nil)
	}()
	defer func() { defer c.bind()(); m.free() }()
	c.SetFloat32(y, make([]float32, n*out))
	func() { defer c.bind()(); m.run(c, x16, false, gemvFuse{}) }()
	Expect(readBack(c, y)).To(Equal(want), "multi-weight launch, F16 x")
	Expect(c.Sync()).To(Succeed())
},
	Entry("one token", 1, 4096),
	Entry("5 tokens, 1280 inputs", 5, 1280),
	Entry("8 tokens, 256 inputs", 8, 256),
	Entry("13 tokens", 13, 2048),
)

// tcOperands makes the fused products' operands: x (n, in) in [-3, 3], a
// norm weight in [0.5, 1.5], and for each height in outs an NF4 weight, an
// output and a reference output (n, out); random draws from seed on.
func tcOperands(c *CUDA, n, in int, outs []int, seed uint64) (x, normw *Tensor, ws, ys, refs []*Tensor) {
	x, normw = c.newT(backend.F32, n, in), c.newT(backend.F32, in)
	defer c.bind()()
	c.fillUniform(x, -3, 3, seed)
	c.fillUniform(normw, 0.5, 1.5, seed+1)
	for i, o := range outs {
		w, _ := c.randomNF4(o, in, seed+2+uint64(i))
		ws, ys, refs = append(ws, w), append(ys, c.newT(backend.F32, n, o)), append(refs, c.newT(backend.F32, n, o))
	}
	return x, normw, ws, ys, refs
}

// nf4_mmaxf_8 (the one-token step on the tensor cores) applies the RMSNorm
// in its prologue and, for gate and up, stores SwiGLU in its epilogue. Both
// must store exactly what the kernels they replace store: RMSNorm into F16,
// the products of that, and SiLUMul of their outputs into F16. Weights of
// three heights (q, k, v) with partial tiles, gate and up of 200 rows (25
// pairs of 8), a norm weight off 1, both compute modes, 1 and 3 tokens.
// post: nf4_mmaxfp_8 against the post-scaled nf4_mmaxp_8, weight by weight.
var _ = DescribeTable("the tensor-core step's fused products", Label("gpu"), func(n int, compute backend.DType, in int, post bool) {
	c, err := New(Options{Compute: compute})
	if err != nil {
		Skip("no CUDA device: " + err.Error())
	}
	defer c.Close()
	const eps = 1e-5
	xn := c.newT(backend.F16, n, in)
	outs := []int{200, 72, 40}
	x, normw, ws, ys, refs := tcOperands(c, n, in, outs, 71)
	var qkv, qkvRef, gu, guRef *multiGemv
	func() {
		defer c.bind()()
		qkv, qkvRef = c.newMultiGemv(ws, ys, nil), c.newMultiGemv(ws, refs, nil)
		up, _ := c.randomNF4(200, in, 80) // gate is weight 0
		ws, ys, refs = append(ws, up), append(ys, c.newT(backend.F32, n, 200)), append(refs, c.newT(backend.F32, n, 200))
		gu = c.newMultiGemv([]*Tensor{ws[0], ws[3]}, []*Tensor{ys[0], ys[3]}, nil)
		guRef = c.newMultiGemv([]*Tensor{ws[0], ws[3]}, []*Tensor{refs[0], refs[3]}, nil)
	}()
	defer func() {
		defer c.bind()()
		for _, m := range []*multiGemv{qkv, qkvRef, gu, guRef} {
			m.free()
		}
	}()
	nrm := gemvFuse{normw: normw.ptr, eps: eps}
	// the unfused products of xn into refs[i] for weights is
	unfused := func(m *multiGemv, is ...int) {
		defer c.bind()()
		if !post {
			m.run(c, xn, false, gemvFuse{})
			return
		}
		for _, i := range is {
			c.mmax(refs[i], xn, ws[i], n, ws[i].shape[0], in, c.productMode(false), true)
		}
	}

	// q, k, v: the norm in the prologue against RMSNorm then the product
	c.RMSNorm(xn, x, normw, eps)
	unfused(qkvRef, 0, 1, 2)
	func() {
		defer c.bind()()
		qkv.runTC(c, x, tcOpts{norm: nrm, post: post})
	}()
	for i := range outs {
		Expect(readBack(c, ys[i])).To(Equal(readBack(c, refs[i])), "weight %d", i)
	}
	// gate, up paired with SwiGLU against the plain products and SiLUMul
	h, href := c.newT(backend.F16, n, 200), c.newT(backend.F16, n, 200)
	unfused(guRef, 0, 3)
	func() {
		defer c.bind()()
		gu.runTC(c, x, tcOpts{norm: nrm, h: h, post: post})
	}()
	c.SiLUMul(href, refs[0], refs[3])
	Expect(readBack(c, ys[0])).To(Equal(readBack(c, refs[0])), "gate")
	Expect(readBack(c, ys[3])).To(Equal(readBack(c, refs[3])), "up")
	Expect(readBack(c, h)).To(Equal(readBack(c, href)), "SwiGLU")
	Expect(c.Sync()).To(Succeed())
},
	Entry("one token, 4096 inputs", 1, backend.F32, 4096, false),
	Entry("one token, fp16 compute", 1, backend.F16, 1024, false),
	Entry("3 tokens", 3, backend.F32, 1024, false),
	Entry("post-scaled, one token, 4096 inputs", 1, backend.F32, 4096, true),
	Entry("post-scaled, one token, fp16 compute", 1, backend.F16, 1024, true),
	Entry("post-scaled, 3 tokens", 3, backend.F32, 1024, true),
)

// The post-scaled kernels (nf4_mmaxp_8, the tensor-core step's products)
// compute what mmaxPostMirror computes: half codes times half x, each
// 64-input block's sum times its absmax. Only the order of the sums may
// differ, so 1e-5 of the terms' magnitudes bounds the error (one code read
// from the wrong place moves a sum of 4096 terms by about 2e-4 of it).
// F16 x gives what F32 x gives, bit for bit; inputs past 4096 take k
// splits (atomic adds into the zeroed output); rows end mid-tile.
var _ = DescribeTable("the post-scaled tensor-core products", Label("gpu"), func(n, out, in int) {
	c, err := New(Options{})
	if err != nil {
		Skip("no CUDA device: " + err.Error())
	}
	defer c.Close()
	rg := rand.New(rand.NewPCG(5, uint64(n*out+in)))
	xs, wv := normals(rg, n*in, 1), normals(rg, out*in, 0.05)
	q := nf4.Quantize(wv, out, in)
	w := c.NF4(q).(*Tensor)
	x32, x16 := c.newT(backend.F32, n, in), c.newT(backend.F16, n, in)
	c.SetFloat32(x32, xs)
	c.SetFloat32(x16, xs)
	y32, y16 := c.newT(backend.F32, n, out), c.newT(backend.F32, n, out)
	func() {
		defer c.bind()()
		c.mmax(y32, x32, w, n, out, in, c.productMode(false), true)
		c.mmax(y16, x16, w, n, out, in, c.productMode(false), true)
	}()
	got := readBack(c, y32)
	if in <= 8192 { // up to two k splits, whose atomic adds commute
		Expect(readBack(c, y16)).To(Equal(got), "F16 x against F32 x")
	} else {
		got = append(got, readBack(c, y16)...)
	}
	want, bound := mmaxPostMirror(xs, q, n)
	want, bound = append(want, want...), append(bound, bound...)
	want, bound = want[:len(got)], bound[:len(got)]
	worst := 0.0
	for i := range want {
		e := math.Abs(float64(got[i])-want[i]) / bound[i]
		worst = max(worst, e)
		Expect(e).To(BeNumerically("<", 1e-5), "output %d (of F32 x, then F16 x): %v against %v", i, got[i], want[i])
	}
	AddReportEntry(fmt.Sprintf("post-scaled n=%d %dx%d worst error / magnitude", n, out, in), worst)
	Expect(c.Sync()).To(Succeed())
},
	Entry("one token, 4096 inputs", 1, 200, 4096),
	Entry("one token, 2 k splits", 1, 72, 4352),
	Entry("8 tokens, 256 inputs", 8, 40, 256),
	Entry("3 tokens, 11008 inputs", 3, 24, 11008),
)

// The tensor-core step's adapter: nf4_mmaxf(p)_8 computes each expand's
// shrink in its prologue (over k splits past 4096 inputs) and adds
// lscale * b . shrink in its epilogue. Against the same launch without the
// adapter, the outputs move by the expand that a float64 reference computes
// from the operand in half (1e-4 of the expand's magnitude, plus float32
// rounding of the output); SwiGLU is silu_mul of the adapted gate and up,
// bit for bit; a second launch (counters reset by the first) stores the
// same. Gate and up paired with the norm, and down (8448 inputs: three k
// splits) adding into a residual.
var _ = DescribeTable("the tensor-core step's adapter", Label("gpu"), func(post bool, rank int) {
	c, err := New(Options{})
	if err != nil {
		Skip("no CUDA device: " + err.Error())
	}
	defer c.Close()
	// (a block a shrink row: gate and up need 2 rank tiles of 8 rows, down
	// rank tiles of 16 a k split; both end mid-tile, and their blocks walk
	// one to three tiles)
	const in, out, inD, outD, eps, scale = 1024, 2196, 8448, 1000, 1e-5, 2
	rg := rand.New(rand.NewPCG(uint64(rank), 9))
	upload := func(rows, cols int, std float64) (*Tensor, []float32) { return uploadNormals(c, rg, rows, cols, std) }
	expandOf := func(a, b, xh []float32, n int) (e, mag []float64) { return expandRef(a, b, xh, n, rank, scale) }
	near := nearExpand

	// gate and up, paired, with the norm
	x, normw, ws, ys, _ := tcOperands(c, 1, in, []int{out, out}, 41)
	ag, ag32 := upload(rank, in, 0.05)
	bg, bg32 := upload(out, rank, 0.05)
	au, au32 := upload(rank, in, 0.05)
	bu, bu32 := upload(out, rank, 0.05)
	t := c.newT(backend.F32, 64+3*32) // gate's shrink, up's, down's three k splits
	var plain, lora, down, downLoRA *multiGemv
	wd, _ := func() (*Tensor, int64) { defer c.bind()(); return c.randomNF4(outD, inD, 43) }()
	ad, ad32 := upload(rank, inD, 0.05)
	bd, bd32 := upload(outD, rank, 0.05)
	yd := c.newT(backend.F32, 1, outD)
	func() {
		defer c.bind()()
		plain = c.newMultiGemv(ws, ys, nil)
		lora = c.newMultiGemv(ws, ys, []*loraEp{
			{b: bg.ptr, t: t.ptr, a: ag.ptr, r: rank, stride: 32, scale: scale},
			{b: bu.ptr, t: t.ptr + 4*32, a: au.ptr, r: rank, stride: 32, scale: scale}})
		down = c.newMultiGemv([]*Tensor{wd}, []*Tensor{yd}, nil)
		downLoRA = c.newMultiGemv([]*Tensor{wd}, []*Tensor{yd}, []*loraEp{
			{b: bd.ptr, t: t.ptr + 4*64, a: ad.ptr, r: rank, stride: 32, scale: scale}})
	}()
	defer func() {
		defer c.bind()()
		for _, m := range []*multiGemv{plain, lora, down, downLoRA} {
			m.free()
		}
	}()
	nrm := gemvFuse{normw: normw.ptr, eps: eps}
	h, hl, href := c.newT(backend.F16, 1, out), c.newT(backend.F16, 1, out), c.newT(backend.F16, 1, out)
	run := func(m *multiGemv, h *Tensor) (g, u []float32) {
		func() { defer c.bind()(); m.runTC(c, x, tcOpts{norm: nrm, h: h, post: post}) }()
		return readBack(c, ys[0]), readBack(c, ys[1])
	}
	g0, u0 := run(plain, h)
	g1, u1 := run(lora, hl)
	g2, u2 := run(lora, hl)
	Expect(g2).To(Equal(g1), "a second launch")
	Expect(u2).To(Equal(u1), "a second launch")
	xn := c.newT(backend.F16, 1, in)
	c.RMSNorm(xn, x, normw, eps)
	xh := readBack(c, xn)
	e, mag := expandOf(ag32, bg32, xh, in)
	near(g1, g0, e, mag, "gate")
	e, mag = expandOf(au32, bu32, xh, in)
	near(u1, u0, e, mag, "up")
	gl, ul := c.newT(backend.F32, 1, out), c.newT(backend.F32, 1, out)
	c.SetFloat32(gl, g1)
	c.SetFloat32(ul, u1)
	c.SiLUMul(href, gl, ul)
	Expect(readBack(c, hl)).To(Equal(readBack(c, href)), "SwiGLU of the adapted gate and up")

	// down: k splits, adding into a residual
	_, hd32 := upload(1, inD, 1)
	h16 := c.newT(backend.F16, 1, inD)
	c.SetFloat32(h16, hd32)
	hh := readBack(c, h16)
	runD := runDownTC(c, yd, h16, post)
	d0 := runD(down)
	d1 := runD(downLoRA)
	e, mag = expandOf(ad32, bd32, hh, inD)
	kSplitSlack(mag, d0)
	near(d1, d0, e, mag, "down")
	for i, v := range runD(downLoRA) {
		Expect(v).To(BeNumerically("~", d1[i], 1e-5*(1+math.Abs(float64(d1[i])))), "down, a second launch, row %d", i)
	}
	Expect(c.Sync()).To(Succeed())
},
	Entry("post-scaled, rank 16", true, 16),
	Entry("post-scaled, rank 8", true, 8),
	Entry("each weight rounded, rank 16", false, 16),
)

// The chained shrink: the paired gate/up launch with next = down computes
// down's shrink of its h, a partial per block (nf4_mmaxf(p)lc_8), and down
// sums those partials instead of computing its shrink. Gate, up and h must
// be what the launch without next stores, bit for bit; down must move by
// the expand that a float64 reference computes from that h (as the
// adapter's spec allows, plus its k splits' float32 roundings), and match
// down with its own in-kernel shrink. Gate/up of 4352 rows (544 tiles of 8:
// blocks walk four or five), with and without an adapter of their own;
// down of 4352 inputs (two k splits) adding into a residual.
var _ = DescribeTable("the tensor-core step's chained down shrink", Label("gpu"), func(post, guAdapter bool, rank int) {
	c, err := New(Options{})
	if err != nil {
		Skip("no CUDA device: " + err.Error())
	}
	defer c.Close()
	const in, mid, outD, eps, scale = 1024, 4352, 1000, 1e-5, 2
	rg := rand.New(rand.NewPCG(uint64(rank), 17))
	x, normw, ws, ys, _ := tcOperands(c, 1, in, []int{mid, mid}, 61)
	ag, _ := uploadNormals(c, rg, rank, in, 0.05)
	bg, _ := uploadNormals(c, rg, mid, rank, 0.05)
	au, _ := uploadNormals(c, rg, rank, in, 0.05)
	bu, _ := uploadNormals(c, rg, mid, rank, 0.05)
	ad, ad32 := uploadNormals(c, rg, rank, mid, 0.05)
	bd, bd32 := uploadNormals(c, rg, outD, rank, 0.05)
	adT := c.transposedF32(ad)
	t := c.newT(backend.F32, 64+2*32+chainParts*rank) // gate's and up's shrinks, down's two k splits, the chain's partials
	parts := t.ptr + 4*128
	yd := c.newT(backend.F32, 1, outD)
	var gu, down, downJobs, downChain *multiGemv
	wd, _ := func() (*Tensor, int64) { defer c.bind()(); return c.randomNF4(outD, mid, 63) }()
	func() {
		defer c.bind()()
		var eps []*loraEp
		if guAdapter {
			eps = []*loraEp{{b: bg.ptr, t: t.ptr, a: ag.ptr, r: rank, stride: 32, scale: scale},
				{b: bu.ptr, t: t.ptr + 4*32, a: au.ptr, r: rank, stride: 32, scale: scale}}
		}
		gu = c.newMultiGemv(ws, ys, eps)
		down = c.newMultiGemv([]*Tensor{wd}, []*Tensor{yd}, nil)
		downJobs = c.newMultiGemv([]*Tensor{wd}, []*Tensor{yd}, []*loraEp{
			{b: bd.ptr, t: t.ptr + 4*64, a: ad.ptr, r: rank, stride: 32, scale: scale}})
		downChain = c.newMultiGemv([]*Tensor{wd}, []*Tensor{yd}, []*loraEp{
			{b: bd.ptr, t: parts, at: adT.ptr, r: rank, stride: rank, scale: scale}})
	}()
	defer func() {
		defer c.bind()()
		for _, m := range []*multiGemv{gu, down, downJobs, downChain} {
			m.free()
		}
	}()
	nrm := gemvFuse{normw: normw.ptr, eps: eps}
	h0, h := c.newT(backend.F16, 1, mid), c.newT(backend.F16, 1, mid)
	runGU := func(h *Tensor, next *multiGemv) (g, u []float32) {
		func() { defer c.bind()(); gu.runTC(c, x, tcOpts{norm: nrm, h: h, post: post, next: next}) }()
		return readBack(c, ys[0]), readBack(c, ys[1])
	}
	g0, u0 := runGU(h0, nil)
	g1, u1 := runGU(h, downChain)
	Expect(g1).To(Equal(g0), "gate with the chained shrink")
	Expect(u1).To(Equal(u0), "up with the chained shrink")
	hh := readBack(c, h)
	Expect(hh).To(Equal(readBack(c, h0)), "h with the chained shrink")
	runD := runDownTC(c, yd, h, post)
	d0, dc, dj := runD(down), runD(downChain), runD(downJobs)
	e, mag := expandRef(ad32, bd32, hh, mid, rank, scale)
	kSplitSlack(mag, d0)
	nearExpand(dc, d0, e, mag, "down, chained")
	for i := range dc {
		Expect(dc[i]).To(BeNumerically("~", dj[i], 1e-4*mag[i]), "down chained against its own shrink, row %d", i)
	}
	// the partials are read, not consumed: down again takes the same shrink
	for i, v := range runD(downChain) {
		Expect(v).To(BeNumerically("~", dc[i], 1e-5*(1+math.Abs(float64(dc[i])))), "down chained, a second launch, row %d", i)
	}
	Expect(c.Sync()).To(Succeed())
},
	Entry("post-scaled, rank 16, gate/up with their adapter", true, true, 16),
	Entry("post-scaled, rank 32, gate/up without one", true, false, 32),
	Entry("each weight rounded, rank 8, gate/up with their adapter", false, true, 8),
)

// nf4_mmaxf_8 with RoPE and the KV-cache store in the q, k, v product's
// epilogue must store what the product followed by ropeKV stores: q
// rotated, k and v as they were, and the rotated k and v in the caches, bit
// for bit. Grouped-query heads (4 query heads, 2 of k and v, head dim 32),
// and a position past the cache (nothing stored there).
var _ = DescribeTable("the tensor-core q, k, v product with RoPE", Label("gpu"), func(p int32, post bool) {
	c, err := New(Options{})
	if err != nil {
		Skip("no CUDA device: " + err.Error())
	}
	defer c.Close()
	const in, heads, kvHeads, hd, slots, maxLen, eps = 1024, 4, 2, 32, 2, 16, 1e-5
	xn := c.newT(backend.F16, 1, in)
	seq, pos := c.newT(backend.I32, 1), c.newT(backend.I32, 1)
	c.SetInt32(seq, []int32{1})
	c.SetInt32(pos, []int32{p})
	outs := []int{heads * hd, kvHeads * hd, kvHeads * hd}
	x, normw, ws, ys, refs := tcOperands(c, 1, in, outs, 91)
	var caches []*Tensor
	func() {
		defer c.bind()()
		for i := 0; i < 4; i++ { // kc, vc, then the reference's
			caches = append(caches, c.newT(backend.F16, slots, maxLen, kvHeads*hd))
			c.fillUniform(caches[i], -1, 1, 97)
		}
	}()
	var qkv, ref *multiGemv
	func() {
		defer c.bind()()
		qkv, ref = c.newMultiGemv(ws, ys, nil), c.newMultiGemv(ws, refs, nil)
	}()
	defer func() { defer c.bind()(); qkv.free(); ref.free() }()
	c.RMSNorm(xn, x, normw, eps)
	func() {
		defer c.bind()()
		if post {
			for i := range ws {
				c.mmax(refs[i], xn, ws[i], 1, outs[i], in, c.productMode(false), true)
			}
		} else {
			ref.run(c, xn, false, gemvFuse{})
		}
		c.ropeKV(refs[0], refs[1], refs[2], caches[2], caches[3], seq, pos, heads, kvHeads, 10000, 1)
		qkv.runTC(c, x, tcOpts{norm: gemvFuse{normw: normw.ptr, eps: eps}, post: post,
			rope: &tcRope{kc: caches[0], vc: caches[1], seq: seq, pos: pos, heads: heads, kvHeads: kvHeads, theta: 10000, posScale: 1}})
	}()
	for i := range outs {
		Expect(readBack(c, ys[i])).To(Equal(readBack(c, refs[i])), "output %d", i)
	}
	Expect(readBack(c, caches[0])).To(Equal(readBack(c, caches[2])), "k cache")
	Expect(readBack(c, caches[1])).To(Equal(readBack(c, caches[3])), "v cache")
	Expect(c.Sync()).To(Succeed())
},
	Entry("position 5", int32(5), false),
	Entry("a position past the cache", int32(16), false),
	Entry("post-scaled, position 5", int32(5), true),
)

// nf4_gemvxt stages each row group's codes, absmax codes and scales in
// shared memory by bulk copies; it multiplies them exactly as nf4_gemvx,
// which holds the next row block in registers, so both must agree bit for
// bit, as must nf4_gemvx with its byte table copied in (gxCopyTab): over row
// counts that end mid-block, inputs whose 64-element absmax blocks straddle
// rows (1056), the widest input (12288, one row group and 48 KB stages), and
// both compute modes.
var _ = Describe("staged one-token products", Label("gpu"), func() {
	DescribeTable("equal the register-prefetch kernel", func(in int, outs []int, half, lora bool) {
		c, err := New(Options{})
		if err != nil {
			Skip("no CUDA device: " + err.Error())
		}
		defer c.Close()
		c.half = half
		ws, ys := make([]*Tensor, len(outs)), make([]*Tensor, len(outs))
		x := c.newT(backend.F32, 1, in)
		func() {
			defer c.bind()()
			for i, out := range outs {
				ws[i], _ = c.randomNF4(out, in, uint64(21+i))
				ys[i] = c.newT(backend.F32, 1, out)
			}
			c.fillUniform(x, -1, 1, 6)
		}()
		// with lora, each weight has a rank-16 expand of a given shrink (the
		// staged kernel combines those row blocks after its last round)
		var eps []*loraEp
		if lora {
			for i, out := range outs {
				b, t := c.newT(backend.F32, out, 16), c.newT(backend.F32, 16)
				func() {
					defer c.bind()()
					c.fillUniform(b, -0.5, 0.5, uint64(300+i))
					c.fillUniform(t, -1, 1, uint64(400+i))
				}()
				eps = append(eps, &loraEp{b: b.ptr, t: t.ptr, r: 16, stride: 16, scale: 0.5})
			}
		}
		m := func() *multiGemv { defer c.bind()(); return c.newMultiGemv(ws, ys, eps) }()
		defer func() { defer c.bind()(); m.free() }()
		// each weight alone (accumulating into a residual) and all in one launch
		run := func(variant *bool) [][]float32 {
			if variant != nil {
				*variant = true
				defer func() { *variant = false }()
			}
			var out [][]float32
			for i, w := range ws {
				if lora { // the multi-weight launch below has the expands
					break
				}
				func() { defer c.bind()(); c.fillUniform(ys[i], -2, 2, uint64(200+i)) }()
				c.MatMulAdd(ys[i], x, w)
				v := make([]float32, outs[i])
				c.Float32(v, ys[i])
				out = append(out, v)
			}
			func() { defer c.bind()(); m.run(c, x, false, gemvFuse{}) }()
			for i := range ws {
				v := make([]float32, outs[i])
				c.Float32(v, ys[i])
				out = append(out, v)
			}
			return out
		}
		staged, copied, regs := run(&c.gxStaged), run(&c.gxCopyTab), run(nil)
		c.gxStaged = true
		Expect(c.gemvxPlan(in, outs, 0).staged).To(BeTrue())
		c.gxStaged = false
		for i := range staged {
			Expect(staged[i]).To(Equal(regs[i]), "staged, output %d", i)
			Expect(copied[i]).To(Equal(regs[i]), "byte table copied in, output %d", i)
			Expect(staged[i]).NotTo(ContainElement(float32(0)))
		}
		Expect(c.Sync()).To(Succeed())
	},
		Entry("q,k,v-like, 4096 inputs", 4096, []int{40, 264, 37}, false, false),
		Entry("fp16 compute, absmax blocks across rows", 1056, []int{37, 300}, true, false),
		Entry("down-like, 11008 inputs", 11008, []int{4096}, false, false),
		Entry("12288 inputs, one 48 KB stage a row block", 12288, []int{33}, false, false),
		Entry("gate,up-like with LoRA expands, rows combined after the last round", 4096, []int{11008, 11008}, false, true),
		Entry("down-like with a LoRA expand", 11008, []int{4096}, false, true),
	)
})

// The one-token step pairs gate's and up's rows in each row block
// (nf4_gemvxmp_1) and stores SwiGLU beside them: both outputs must equal
// the unpaired launch's, and the SwiGLU that of SiLUMul on them, bit for bit
// (the same sums, the same arithmetic), with and without LoRA expands whose
// shrinks the kernel computes itself.
var _ = Describe("paired gate/up products", Label("gpu"), func() {
	DescribeTable("equal the unpaired products and SiLUMul", func(in, out int, lora bool) {
		c, err := New(Options{})
		if err != nil {
			Skip("no CUDA device: " + err.Error())
		}
		defer c.Close()
		x, h, want := c.newT(backend.F32, 1, in), c.newT(backend.F32, 1, out), c.newT(backend.F32, 1, out)
		ws, ys := make([]*Tensor, 2), make([]*Tensor, 2)
		var eps []*loraEp
		func() {
			defer c.bind()()
			for i := range ws {
				ws[i], _ = c.randomNF4(out, in, uint64(31+i))
				ys[i] = c.newT(backend.F32, 1, out)
				if lora { // rank 16 for gate, 8 for up: the halves' b rows differ in length
					r := 16 - 8*i
					a, b, t := c.newT(backend.F32, r, in), c.newT(backend.F32, out, r), c.newT(backend.F32, r)
					c.fillUniform(a, -0.05, 0.05, uint64(500+i))
					c.fillUniform(b, -0.5, 0.5, uint64(600+i))
					eps = append(eps, &loraEp{a: a.ptr, b: b.ptr, t: t.ptr, r: r, stride: r, scale: 0.5})
				}
			}
			c.fillUniform(x, -1, 1, 8)
		}()
		m := func() *multiGemv { defer c.bind()(); return c.newMultiGemv(ws, ys, eps) }()
		defer func() { defer c.bind()(); m.free() }()
		Expect(m.pairable(c)).To(BeTrue())
		func() { defer c.bind()(); m.run(c, x, false, gemvFuse{}) }()
		g, u := readBack(c, ys[0]), readBack(c, ys[1])
		c.SiLUMul(want, ys[0], ys[1])
		for _, copied := range []bool{false, true} { // the byte table built, and copied in
			c.gxCopyTab = copied
			func() { defer c.bind()(); m.runPaired(c, x, h, gemvFuse{}) }()
			Expect(readBack(c, ys[0])).To(Equal(g), "gate, table copied %v", copied)
			Expect(readBack(c, ys[1])).To(Equal(u), "up, table copied %v", copied)
			Expect(readBack(c, h)).To(Equal(readBack(c, want)), "SwiGLU, table copied %v", copied)
		}
		c.gxCopyTab = false
		Expect(readBack(c, h)).NotTo(ContainElement(float32(0)))
		if lora { // the expands changed the outputs
			func() {
				defer c.bind()()
				m2 := c.newMultiGemv(ws, ys, nil)
				m2.run(c, x, false, gemvFuse{})
				m2.free()
			}()
			Expect(readBack(c, ys[0])).NotTo(Equal(g))
		}
		Expect(c.Sync()).To(Succeed())
	},
		Entry("a 7B layer's gate and up", 4096, 11008, false),
		Entry("a row count that ends mid-block, absmax blocks across rows", 1056, 37, false),
		Entry("a 7B layer's gate and up with LoRA, shrinks in the kernel", 4096, 11008, true),
		Entry("mid-block rows with LoRA", 1056, 37, true),
	)
})

// The one-token step's q, k, v product can do ropeKV's work in its epilogue
// (nf4_gemvxmq_1): q rotated in place and k (rotated) and v stored into the
// fp16 caches must equal the plain product followed by ropeKV, bit for bit,
// with grouped-query heads too, and a position outside the cache stores
// nothing.
var _ = Describe("q, k, v products with RoPE and the KV store", Label("gpu"), func() {
	DescribeTable("equal the product followed by ropeKV", func(in, heads, kvHeads, hd int, pos int32) {
		c, err := New(Options{})
		if err != nil {
			Skip("no CUDA device: " + err.Error())
		}
		defer c.Close()
		c.gxRope = true
		const slots, maxLen = 3, 8
		outs := []int{heads * hd, kvHeads * hd, kvHeads * hd}
		x := c.newT(backend.F32, 1, in)
		seq, ps := c.newT(backend.I32, 1), c.newT(backend.I32, 1)
		c.SetInt32(seq, []int32{1})
		c.SetInt32(ps, []int32{pos})
		ws, ys := make([]*Tensor, 3), make([]*Tensor, 3)
		caches := make([]*Tensor, 4) // kc, vc of the plain path, then of the fused one
		func() {
			defer c.bind()()
			for i, out := range outs {
				ws[i], _ = c.randomNF4(out, in, uint64(41+i))
				ys[i] = c.newT(backend.F32, 1, out)
			}
			for i := range caches {
				caches[i] = c.newT(backend.F16, slots, maxLen, kvHeads*hd)
				c.fillUniform(caches[i], 0, 0, 1)
			}
			c.fillUniform(x, -1, 1, 9)
		}()
		m := func() *multiGemv { defer c.bind()(); return c.newMultiGemv(ws, ys, nil) }()
		defer func() { defer c.bind()(); m.free() }()
		Expect(m.ropeable(c, heads, kvHeads)).To(BeTrue())
		func() {
			defer c.bind()()
			m.run(c, x, false, gemvFuse{})
			c.ropeKV(ys[0], ys[1], ys[2], caches[0], caches[1], seq, ps, heads, kvHeads, 10000, 1)
		}()
		q, kc, vc := readBack(c, ys[0]), readBack(c, caches[0]), readBack(c, caches[1])
		func() {
			defer c.bind()()
			c.fillUniform(ys[0], -3, 3, 5) // the fused product must overwrite all of q
			m.runRope(c, x, gemvFuse{}, caches[2], caches[3], seq, ps, heads, kvHeads, 10000, 1)
		}()
		Expect(readBack(c, ys[0])).To(Equal(q), "q")
		Expect(readBack(c, caches[2])).To(Equal(kc), "k cache")
		Expect(readBack(c, caches[3])).To(Equal(vc), "v cache")
		stored := 0
		for _, v := range kc {
			if v != 0 {
				stored++
			}
		}
		if pos >= 0 && pos < maxLen {
			Expect(stored).To(BeNumerically(">", kvHeads*hd/2), "the k rows were stored")
		} else {
			Expect(stored).To(BeZero(), "nothing stored outside the cache")
		}
		Expect(c.Sync()).To(Succeed())
	},
		Entry("a 7B layer's heads", 4096, 32, 32, 128, int32(5)),
		Entry("grouped-query heads of 64, absmax blocks across rows", 1056, 8, 2, 64, int32(7)),
		Entry("a position past the cache", 256, 4, 4, 32, int32(8)),
	)
})

// readBack is t's values, read back from the card as float32.
// uploadNormals is a (rows, cols) F32 tensor of normals (normals' draws)
// and its values.
func uploadNormals(c *CUDA, rg *rand.Rand, rows, cols int, std float64) (*Tensor, []float32) {
	v := normals(rg, rows*cols, std)
	t := c.newT(backend.F32, rows, cols)
	c.SetFloat32(t, v)
	return t, v
}

// expandRef is a LoRA expand in float64, scale * b . (a . xh), for each of
// b's rows (a (rank, n), b (rows, rank), xh the operand as the kernel
// holds it), and its magnitude (the terms' absolute sums) for tolerances.
func expandRef(a, b, xh []float32, n, rank int, scale float64) (e, mag []float64) {
	t, tm := make([]float64, rank), make([]float64, rank)
	for j := range t {
		for k := 0; k < n; k++ {
			p := float64(a[j*n+k]) * float64(xh[k])
			t[j], tm[j] = t[j]+p, tm[j]+math.Abs(p)
		}
	}
	e, mag = make([]float64, len(b)/rank), make([]float64, len(b)/rank)
	for r := range e {
		for j := 0; j < rank; j++ {
			e[r] += scale * float64(b[r*rank+j]) * t[j]
			mag[r] += scale * math.Abs(float64(b[r*rank+j])) * (math.Abs(t[j]) + tm[j])
		}
	}
	return e, mag
}

// nearExpand expects lora - plain to be the expand e, within 1e-4 of its
// magnitude plus float32 rounding of the output.
func nearExpand(lora, plain []float32, e, mag []float64, what string) {
	for i := range e {
		d := float64(lora[i]) - float64(plain[i])
		Expect(d).To(BeNumerically("~", e[i], 1e-4*mag[i]+1e-6*math.Abs(float64(plain[i]))), "%s row %d", what, i)
	}
}

// runDownTC returns a run of a one-weight tensor-core product m of h (1,
// in) F16 adding into yd (1, out), which it first sets to a fixed residual;
// it returns yd read back.
func runDownTC(c *CUDA, yd, h *Tensor, post bool) func(m *multiGemv) []float32 {
	res := make([]float32, yd.elems())
	for i := range res {
		res[i] = float32(i%7) - 3
	}
	return func(m *multiGemv) []float32 {
		c.SetFloat32(yd, res)
		func() { defer c.bind()(); m.runTC(c, h, tcOpts{post: post, add: true}) }()
		return readBack(c, yd)
	}
}

// kSplitSlack widens the expand magnitudes mag of outputs that k splits
// add atomically, in any order, by a few float32 roundings of the output d0.
func kSplitSlack(mag []float64, d0 []float32) {
	for i := range mag {
		mag[i] += 0.1 * (1 + math.Abs(float64(d0[i])))
	}
}

func readBack(c *CUDA, t *Tensor) []float32 {
	v := make([]float32, t.elems())
	c.Float32(v, t)
	return v
}

// normals draws n values of a normal distribution of deviation std.
func normals(rg *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rg.NormFloat64() * std)
	}
	return v
}
