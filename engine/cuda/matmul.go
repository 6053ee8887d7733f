//go:build cuda

package cuda

// The matrix products: kernel choice by weight dtype and step size, the
// fused gemv paths of the decode step, split-k, the dequantize+cuBLAS path,
// and LoRA.

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"

	"loramix/engine/backend"
)

// MatMul computes dst = x @ wᵀ.
func (c *CUDA) MatMul(dst, x, w backend.Tensor) {
	defer c.bind()()
	c.matmul(ct(dst), ct(x), ct(w), false)
}

// MatMulAdd computes dst += x @ wᵀ (the residual add fused into the product).
func (c *CUDA) MatMulAdd(dst, x, w backend.Tensor) {
	defer c.bind()()
	c.matmul(ct(dst), ct(x), ct(w), true)
}

// Kernel choice, by weight dtype and shape (in = w.shape[1], n tokens).
const gemvMaxTokens = 4

// loraEp is a LoRA expand fused into a product's epilogue: dst[t, o] +=
// scale * sum_j b[o, j] * t[t*stride + j], j < r, with t the shrink that a
// previous kernel left in device memory. With a (r, in) and sync set, the
// one-token kernel (nf4_gemvx) computes the shrink t itself, in its
// prologue; sync is two zeroed uint32 counters of that launch site, which
// the kernel leaves zeroed (see newLoRASync). The other kernels ignore a.
//
// With at (the shrink matrix transposed, (in, r)) instead, the shrink is
// chained: the paired gate/up launch before this product (runTC's next)
// computes it from its h, a partial per block of its into t (shrink j's at
// t + 4 (j chainParts + block): chainParts r floats); only the one-token
// tensor-core step (runTC) takes it.
type loraEp struct {
	b, t, a, at, sync cu.DevicePtr
	r, stride         int
	scale             float32
}

// chainParts is the kernels' MX_MAXPARTS: the most blocks of a chained
// shrink's producer, and the stride of its partials.
const chainParts = 256

// mmaxMaxIters is the kernels' MX_MAXITERS: the most tiles a block of the
// chain's producer or consumer walks (their tables in static shared memory).
const mmaxMaxIters = 64

// newLoRASync allocates the zeroed counters of an in-kernel shrink. One
// launch site, one pair: two launches in flight must not share them.
func (c *CUDA) newLoRASync() cu.DevicePtr {
	p := c.alloc(8)
	must("cuMemsetD32", cu.MemsetD32(p, 0, 2))
	return p
}

func (c *CUDA) matmul(d, x, w *Tensor, accumulate bool) { c.matmulEp(d, x, w, accumulate, nil) }

// gemvFuse are the prologue fusions of nf4_gemv (see gemv_stage_fused).
type gemvFuse struct {
	x2, normw cu.DevicePtr
	eps       float32
}

// gemvOK reports whether x (n, in) @ wᵀ runs as nf4_gemvx (one token) or
// nf4_gemv (2 to 4), the kernels with the fused prologue and LoRA epilogue.
// Under fp16 compute only the one-token kernel rounds the weights to half.
func (c *CUDA) gemvOK(n, in int, w *Tensor) bool {
	if n == 1 && gemvxOK(in, w) {
		return true
	}
	xsz := (in + 1023) / 1024 * 1024
	return w.dt == backend.NF4 && in%32 == 0 && n >= 1 && n <= gemvMaxTokens && !c.half &&
		(16640+n*xsz)*4 <= c.maxSmem
}

// gemvxOK reports whether nf4_gemvx takes an input of in features: whole
// 32-element chunks, at most 12 warps of 1024 features (GX_MAXTHREADS), and
// fewer than 2^31 weights (its offsets are 32-bit).
func gemvxOK(in int, w *Tensor) bool {
	return w.dt == backend.NF4 && in%32 == 0 && in <= 12*1024 && int64(w.shape[0])*int64(w.shape[1]) < 1<<31
}

// gxPlan is a launch of nf4_gemvx: blocks of kwn warps (one per 1024
// inputs) times rgn row groups (rgn filling 12 warps with 8-row blocks, 8
// with 4-row ones), each row group walking row blocks of `rows` rows, total
// of them over all the weights.
type gxPlan struct {
	rows, grid, threads, smem, rgn, total int
	ok                                    bool // the grid stays resident (see gemvxPlan)
	staged                                bool // nf4_gemvxt: codes staged by bulk copies (8-row blocks)
	paired                                bool // nf4_gemvxmp: gate's and up's rows paired (runPaired)
	rope                                  bool // nf4_gemvxmq: RoPE and the KV-cache store in the epilogue (runRope)
}

// gemvxPlan plans nf4_gemvx over weights of in inputs and outs rows with
// jobs in-kernel shrink rows: 8-row blocks, one block of up to 12 warps a
// SM (168 registers; 12 warps rather than v7's 8 made batch-1 decode 1.02x
// faster on an H100; fewer where that takes fewer rounds of row blocks);
// with c.gx4, up to 8192 inputs, 4-row blocks and two a
// SM (128 registers, with spills; as fast as 8-row blocks since dot32x has
// four FMA chains). As many blocks as stay resident, and at least one row
// group per shrink row; ok is false when the
// shrink rows need more blocks than stay resident (the kernel's wait for
// them needs every block resident).
func (c *CUDA) gemvxPlan(in int, outs []int, jobs int) gxPlan {
	p := gxPlan{rows: 8}
	regs := 168
	if c.gx4 && in <= 8192 {
		p.rows, regs = 4, 128
	}
	for _, o := range outs {
		p.total += (o + p.rows - 1) / p.rows
	}
	kwn := (in + 1023) / 1024
	p.rgn = max(1, 12/kwn) // 8-row blocks: 168 registers x 384 threads fit the SM
	if p.rows == 4 || c.gx8 {
		p.rgn = max(1, 8/kwn)
	} else if !c.gxNoFit {
		// fewer row groups where that takes fewer row-group rounds (o of a
		// 7B layer: 512 row blocks are 2 rounds of 3 row groups, 2 of 2)
		rounds := func(r int) int { return (p.total + c.sms*r - 1) / (c.sms * r) * r }
		for r := p.rgn - 1; r >= 1; r-- {
			if rounds(r) < rounds(p.rgn) {
				p.rgn = r
			}
		}
	}
	p.threads = 32 * kwn * p.rgn
	// see nf4_gemvx: the byte table (64 KB), then dmap, the partial sums and
	// the LoRA b rows
	const table = 256 * 32 * 8
	rest := (256 + 2*p.rgn*kwn*p.rows + 2*p.rgn*p.rows*32) * 4
	switch {
	case p.rows == 4:
		p.smem = table + rest
	case c.gxV9Smem: // v9's request: 7 KB past 128 KB, so a 164 KB carveout and a 92 KB L1
		p.smem = 65536 + table + rest
	default:
		// the table from the first 64 KB boundary of the block's window
		// to 128 KB, the rest in the gap before it: 128 KB with the static
		// part, so that the L1 keeps 124 KB (NOTES.md, v10). gxWindow is
		// the least static part of these kernels: one with more gets the
		// difference (512 bytes) past 128 KB, inside the same carveout.
		p.smem = 65536 + table - c.gxWindow
	}
	// staged (c.gxStaged): the stages take what the table leaves (the
	// kernel counts them). Not with in-kernel LoRA shrinks: every block's
	// expands wait for shrinks that other blocks' prologues publish, and a
	// staged block that starts late publishes late (+11.6% for a rank-16
	// adapter at batch 1). See NOTES.md (v9) for why it is not the default.
	if p.rows == 8 && c.gxStaged && jobs == 0 {
		p.staged, p.smem = true, c.maxSmem
	}
	resident := c.sms * max(1, 65536/(p.threads*regs))
	p.grid = max(1, min((p.total+p.rgn-1)/p.rgn, resident), (jobs+p.rgn-1)/p.rgn)
	p.ok = p.grid <= resident && p.smem <= c.maxSmem
	return p
}

// shrinkInKernel reports whether nf4_gemvx can compute the shrink of e
// itself for a product of in inputs and out rows.
func (c *CUDA) shrinkInKernel(e *loraEp, in, out int) bool {
	if e == nil || e.a == 0 || e.sync == 0 || e.r > 32 {
		return false
	}
	return c.gemvxPlan(in, []int{out}, e.r).ok
}

// gemvx1 launches nf4_gemvxm_1 (or a variant, gemvxName) for d (1, out)
// (+)= x (1, in) @ wᵀ with the expand e (e.b zero: none) and the prologue
// fusions f. With e.a and e.sync set the kernel computes the shrink e.t
// itself (shrinkInKernel must hold).
func (c *CUDA) gemvx1(d, x, w *Tensor, mode int, e loraEp, f gemvFuse) {
	out, in, q := w.shape[0], w.shape[1], w.q
	jobs := 0
	if e.a != 0 {
		jobs = e.r
	}
	p := c.gemvxPlan(in, []int{out}, jobs)
	if !p.ok {
		panic("cuda: gemvx: too many in-kernel shrink rows for the resident blocks")
	}
	ds := descsByValue([]gemvDesc{{packed: uint64(q.packed), qabs: uint64(q.qabs), absmax2: uint64(q.absmax2),
		y: uint64(d.ptr), lb: uint64(e.b), lt: uint64(e.t), la: uint64(e.a), offset: q.offset, out: int32(out),
		lr: int32(e.r), lstride: int32(e.stride), lscale: e.scale}})
	c.launchGemvx(p, ds, 1, x, in, mode, f, e.sync, 0, noRope)
}

// launchGemvx launches plan p's one-token kernel (gemvxName) over the n
// weights of the by-value descriptors ds with x (1, in): the LoRA shrink
// counters sync, SwiGLU's output hout (PAIR) and the RoPE operands ra
// (ROPE; noRope otherwise).
func (c *CUDA) launchGemvx(p gxPlan, ds byValue, n int, x *Tensor, in, mode int, f gemvFuse, sync, hout cu.DevicePtr,
	ra byValue) {
	c.launch(c.gemvxName(p), p.grid, 1, 1, p.threads, p.smem,
		ds, n, p.total, x.ptr, c.dmap, in, mode, f.x2, f.normw, f.eps, p.rgn, sync, c.gtab, hout, ra)
}

// gemvxName is the one-token kernel of plan p: its row blocks (4), staged
// codes (t), paired rows (p) and the compute mode (r: weights rounded to
// half).
func (c *CUDA) gemvxName(p gxPlan) string {
	name := "nf4_gemvxm"
	if p.rows == 4 {
		name += "4"
	}
	if p.staged {
		name += "t"
	}
	if p.paired {
		name += "p"
	}
	if p.rope {
		name += "q"
	}
	name += "_1"
	if c.half {
		name += "r"
	}
	return name
}

// gemvGrid is the grid of an nf4 gemv over blocks row blocks: each block
// of the grid stages x once and walks row blocks, two blocks a SM (the
// byte table and x take about 80-110 KB of shared memory).
func (c *CUDA) gemvGrid(blocks int) int { return max(1, min(blocks, 2*c.sms)) }

// gemvDesc is the Go image of the kernels' GemvDesc: one weight (and its
// output and LoRA expand) of a multi-weight gemv.
type gemvDesc struct {
	packed, qabs, absmax2, y, lb, lt, la uint64
	offset                               float32
	out, lr, lstride                     int32
	lscale                               float32
	blocks                               int32
}

// multiGemv is an uploaded list of weights whose products of one x run in
// one launch (nf4_gemvm_T).
type multiGemv struct {
	descs  cu.DevicePtr
	byVal  byValue      // the descriptors as nf4_gemvxm's by-value GemvDescs
	lora   bool         // some weight has a LoRA expand
	sync   cu.DevicePtr // the in-kernel shrinks' counters (0: none)
	jobs   int          // in-kernel shrink rows
	ranks  []int        // each weight's expand rank (0: none)
	given  bool         // some expand's shrink is computed before the launch (no shrink matrix)
	chain  cu.DevicePtr // the chained shrink's matrix, transposed (loraEp.at; 0: not chained)
	chainT cu.DevicePtr // its partials (loraEp.t)
	parts  int          // chained: the partial shrinks that the last producer launch stored (its blocks)
	ys     []*Tensor    // the outputs
	n      int          // weights
	blocks int          // 16-row blocks (nf4_gemv)
	outs   []int        // the weights' rows
	in     int
}

// newMultiGemv uploads the descriptors of ws, whose products go to ys (each
// (tokens, out) F32), with optional LoRA expands (eps[i] nil: none). An
// expand with a shrink matrix a gets its shrink computed by the one-token
// kernel (the launch's counters are allocated here); launches of more
// tokens need it computed before (lora_shrink_f).
func (c *CUDA) newMultiGemv(ws, ys []*Tensor, eps []*loraEp) *multiGemv {
	if len(ws) > gxMaxDesc {
		panic("cuda: a multi-weight gemv takes at most 4 weights (GX_MAXDESC)")
	}
	ds := make([]gemvDesc, len(ws))
	m := &multiGemv{n: len(ws), in: ws[0].shape[1], ys: ys}
	for i, w := range ws {
		if !gemvxOK(m.in, w) || w.shape[1] != m.in {
			panic("cuda: multi-weight gemv needs NF4 weights of one input size that nf4_gemvx takes")
		}
		q := w.q
		d := gemvDesc{packed: uint64(q.packed), qabs: uint64(q.qabs), absmax2: uint64(q.absmax2), y: uint64(ys[i].ptr),
			offset: q.offset, out: int32(w.shape[0]), blocks: int32((w.shape[0] + 15) / 16)}
		if eps != nil && eps[i] != nil {
			e := eps[i]
			if e.r > 32 {
				panic("cuda: multi-weight gemv: a LoRA expand of rank over 32")
			}
			d.lb, d.lt, d.lr, d.lstride, d.lscale = uint64(e.b), uint64(e.t), int32(e.r), int32(e.stride), e.scale
			switch {
			case e.at != 0:
				if len(ws) != 1 || e.a != 0 {
					panic("cuda: multi-weight gemv: a chained shrink takes one weight and no shrink matrix")
				}
				m.chain, m.chainT = e.at, e.t
			case e.a != 0:
				d.la = uint64(e.a)
				m.jobs += e.r
			default:
				m.given = true
			}
		}
		ds[i] = d
		m.lora = m.lora || d.lb != 0
		m.ranks = append(m.ranks, int(d.lr))
		m.blocks += int(d.blocks)
		m.outs = append(m.outs, w.shape[0])
	}
	if m.jobs > 0 {
		if !c.gemvxPlan(m.in, m.outs, m.jobs).ok {
			panic("cuda: multi-weight gemv: too many in-kernel shrink rows for the resident blocks")
		}
		m.sync = c.newLoRASync()
	}
	bytes := int64(len(ds)) * int64(unsafe.Sizeof(gemvDesc{}))
	m.descs = c.alloc(bytes)
	must("cuMemcpyHtoD", cu.MemcpyHtoD(m.descs, unsafe.Pointer(&ds[0]), bytes))
	m.byVal = descsByValue(ds)
	return m
}

// descsByValue is the kernels' GemvDescs of ds (at most gxMaxDesc), as a
// by-value kernel argument.
func descsByValue(ds []gemvDesc) byValue {
	var all [gxMaxDesc]gemvDesc
	copy(all[:], ds)
	return asByValue(&all)
}

// asByValue copies the struct *v (a multiple of 8 bytes, laid out as the
// kernel's struct) into a by-value kernel argument.
func asByValue[T any](v *T) byValue {
	w := make(byValue, unsafe.Sizeof(*v)/8)
	copy(w, unsafe.Slice((*uint64)(unsafe.Pointer(v)), len(w)))
	return w
}

// gxMaxDesc is the kernels' GX_MAXDESC: the descriptors of a by-value
// GemvDescs.
const gxMaxDesc = 4

// pairable reports whether runPaired takes m under c's settings: two
// weights of one height (gate, up), one-token products of the 8-row
// register kernel (c.gxNoPair off: the benchmark's variant without).
func (m *multiGemv) pairable(c *CUDA) bool {
	return !c.gxNoPair && m != nil && m.n == 2 && m.outs[0] == m.outs[1] && !c.gxStaged && !c.gx4 && !c.gemvOld
}

// runPaired is run for one token of x with the rows of the two weights
// paired in each row block (nf4_gemvxmp_1): row j of the first weight and
// row j of the second are combined by one warp, which besides both outputs
// stores h (1, out) = silu(y0) * y1, SwiGLU, so that the product after it
// stages h alone and computes no SiLU. LoRA expands (and in-kernel shrinks)
// work as in run. pairable must hold.
func (m *multiGemv) runPaired(c *CUDA, x, h *Tensor, f gemvFuse) {
	if x.shape[0] != 1 || !m.pairable(c) || h.elems() != m.outs[0] {
		panic("cuda: paired product of a multi-weight gemv that runPaired does not take")
	}
	p := c.gemvxPlan(m.in, m.outs, m.jobs) // 8-row blocks: as many as of the two weights apart
	p.total, p.paired = (m.outs[0]+3)/4, true
	c.launchGemvx(p, m.byVal, m.n, x, m.in, c.productMode(false), f, m.sync, h.ptr, noRope)
}

// ropeArgs is the Go image of the kernels' RopeArgs: the KV-cache store of
// nf4_gemvxmq_1's epilogue.
type ropeArgs struct {
	kc, vc, seq, pos, invFreq uint64
	hd, maxLen, kvd           int32
	_                         int32
}

// noRope is the RopeArgs of the launches that do no RoPE.
var noRope = asByValue(&ropeArgs{})

// ropeable reports whether runRope takes m (q, k, v of heads and kvHeads
// heads of hd) under c's settings: no adapter on them, float32 compute, the
// 8-row register kernel, hd a power of two from 8 to 256, c.gxRope on (the
// benchmark's variant: 1.002-1.005x in the step, NOTES.md v10).
func (m *multiGemv) ropeable(c *CUDA, heads, kvHeads int) bool {
	if !c.gxRope || m == nil || m.lora || c.half || c.gxStaged || c.gx4 || c.gemvOld {
		return false
	}
	return ropeHeadDim(m.outs, heads, kvHeads, 8) > 0
}

// ropeHeadDim is the head dimension hd when outs are the heights of q, k
// and v of heads and kvHeads whole heads, hd a power of two from lo to
// 256; else 0.
func ropeHeadDim(outs []int, heads, kvHeads, lo int) int {
	if len(outs) != 3 || heads <= 0 || kvHeads <= 0 {
		return 0
	}
	hd := outs[0] / heads
	if hd < lo || hd > 256 || hd&(hd-1) != 0 || outs[0] != heads*hd || outs[1] != kvHeads*hd || outs[2] != kvHeads*hd {
		return 0
	}
	return hd
}

// ropeArgsFor is the RopeArgs of q, k, v products of head dimension hd and
// kvd-wide k and v: ropeKV's caches, slot, position and angle table.
func (c *CUDA) ropeArgsFor(kc, vc, seq, pos *Tensor, hd, kvd int, theta, posScale float32) ropeArgs {
	return ropeArgs{kc: uint64(kc.ptr), vc: uint64(vc.ptr), seq: uint64(seq.ptr), pos: uint64(pos.ptr),
		invFreq: uint64(c.ropeTable(hd/2, theta, posScale)), hd: int32(hd), maxLen: int32(kc.shape[1]), kvd: int32(kvd)}
}

// runRope is run for one token of x (the products of q, k and v) with
// ropeKV's work in the epilogue (nf4_gemvxmq_1): q rotated in place (in its
// output), k rotated and v stored into the fp16 caches kc, vc (slots,
// maxLen, kvHeads*hd) at (seq[0], pos[0]) by the angle pos * inv_freq (the
// table of theta, posScale). k's and v's own outputs are not written.
// ropeable must hold.
func (m *multiGemv) runRope(c *CUDA, x *Tensor, f gemvFuse, kc, vc, seq, pos *Tensor, heads, kvHeads int,
	theta, posScale float32) {
	if x.shape[0] != 1 || !m.ropeable(c, heads, kvHeads) || kc.dt != backend.F16 || vc.dt != backend.F16 {
		panic("cuda: RoPE product of a multi-weight gemv that runRope does not take")
	}
	hd := m.outs[0] / heads
	ra := c.ropeArgsFor(kc, vc, seq, pos, hd, kvHeads*hd, theta, posScale)
	p := c.gemvxPlan(m.in, m.outs, 0)
	p.rope = true
	c.launchGemvx(p, m.byVal, m.n, x, m.in, c.productMode(false), f, m.sync, 0, asByValue(&ra))
}

// free releases the descriptors and counters (nil: nothing); the caller
// holds the context.
func (m *multiGemv) free() {
	if m == nil {
		return
	}
	cu.MemFree(m.descs)
	if m.sync != 0 {
		cu.MemFree(m.sync)
	}
}

// run launches the products of x (n <= gemvMaxTokens float32 rows with
// the prologue fusions f, or up to 16 rows without them, F16 ones on the
// tensor cores); each output is overwritten (or added to).
func (m *multiGemv) run(c *CUDA, x *Tensor, accumulate bool, f gemvFuse) {
	n := x.shape[0]
	xsz := (m.in + 1023) / 1024 * 1024
	mode := c.productMode(accumulate)
	if n == 1 && !c.gemvOld && x.dt == backend.F32 {
		p := c.gemvxPlan(m.in, m.outs, m.jobs)
		c.launchGemvx(p, m.byVal, m.n, x, m.in, mode, f, m.sync, 0, noRope)
		return
	}
	tc := n <= 16 && m.in%256 == 0 && m.in <= 4096 && f == (gemvFuse{}) && !c.gemvOld
	if x.dt != backend.F32 && !tc {
		panic(fmt.Sprintf("cuda: multi-weight product of a %v x %v: only the tensor-core kernel (16 tokens at most) takes fp16", x.dt, x.shape))
	}
	if tc {
		// the tensor-core kernel of nf4_mmax, over every weight's tiles
		x32, x16 := outPtrs(x)
		c.launch(mmaxKernel("nf4_mmaxm", n), min(m.blocks, c.sms), 1, 1, 512, mmaxSmem(n),
			m.descs, m.n, m.blocks, x32, x16, c.dmap, n, m.in, mode)
		return
	}
	c.launch(fmt.Sprintf("nf4_gemvm_%d", n), c.gemvGrid(m.blocks), 1, 1, 256, (16640+n*xsz)*4,
		m.descs, m.n, m.blocks, x.ptr, c.dmap, m.in, mode, f.x2, f.normw, f.eps)
}

// mmaxFuse is the kernels' MmaxFuse (nf4_mmaxf_8's by-value argument).
type mmaxFuse struct {
	normw, h16  uint64
	eps         float32
	_           uint32
	ra          ropeArgs
	lsync       uint64
	nla, nlt    uint64 // chained: the next product's transposed shrink matrix; the chain's partials
	nlr, nparts int32  // the chain's rank; > 0: this launch takes nparts partials at nlt
}

// tcRope asks runTC for RoPE and the KV-cache store in the q, k, v
// product's epilogue (rope_kv_f16's work, one token): the caches and the
// token's slot and position, as ropeKV takes them.
type tcRope struct {
	kc, vc, seq, pos *Tensor
	heads, kvHeads   int
	theta, posScale  float32
}

// tcOpts are runTC's fusions and choices; the zero value is the plain
// products, overwriting their outputs, each weight rounded to half.
type tcOpts struct {
	norm gemvFuse   // normw, eps: RMSNorm in the prologue (x the float32 residual), as rmsnorm would store it
	h    *Tensor    // (n, out) F16: gate and up paired, silu(gate) * up stored here as silu_mul would
	rope *tcRope    // one token of q, k, v: RoPE and the KV-cache store, as ropeKV would do after
	post bool       // the post-scaled kernel nf4_mmaxfp_8 (nf4_mmax's POST), not nf4_mmaxf_8
	add  bool       // add to the outputs (the residual) instead of overwriting them
	next *multiGemv // paired gate/up, one token: also the chained shrink of next (down) from h
}

// runTC runs the products of up to 8 tokens of x on the tensor cores
// (nf4_mmaxf_8, nf4_mmaxfp_8) with the fusions of o: the norm (up to 4
// tokens, in <= 4096), the paired gate/up with SwiGLU, RoPE with the KV
// store. x is F16 (already the operand) or, with the norm, the float32
// residual. Inputs past 4096 are split over blocks (one weight, no
// fusion; atomic adds, rounded afterwards in fp16 compute).
//
// LoRA expands (m's, one token, no RoPE, ranks a multiple of 4 up to 32,
// one rank on every weight) are added in the epilogue, their shrinks computed in
// the prologue, a block a shrink row and k split (a shrink matrix per
// expand; the ranks' sum at most the blocks of a k split; k split ks of an
// expand's shrink goes to its t + ks * stride). A block stages the b rows
// of all its tiles, which the card's shared memory must hold.
//
// A chained expand (loraEp.at) takes the partial shrinks that the last
// runTC with next = m stored, so that must run first, on this launch's
// operand (its h), before anything else writes m's t. That producer (the
// paired gate/up) stages the rows of at that its tiles' h rows take.
func (m *multiGemv) runTC(c *CUDA, x *Tensor, o tcOpts) {
	n, f, h, nx := x.shape[0], o.norm, o.h, o.next
	bad := n > 8 || (f.normw != 0 && n > 4) || f.x2 != 0 || (f.normw == 0) != (x.dt == backend.F16) ||
		(h != nil && (h.dt != backend.F16 || h.elems() != n*m.outs[0])) ||
		(o.rope != nil && (h != nil || !m.tcRopeable(n, o.rope))) ||
		(nx != nil && (h == nil || n != 1 || o.add || nx.chain == 0 || nx.in != m.outs[0])) ||
		(m.chain != 0 && (m.parts == 0 || f.normw != 0 || h != nil))
	nr := 0 // the chained shrink's rank
	if nx != nil {
		nr = nx.ranks[0]
	}
	p := m.tcPlan(c, n, f.normw != 0, h != nil, o.rope != nil, nr)
	if bad || !p.ok {
		panic(fmt.Sprintf("cuda: tensor-core multi-weight product of x %v %v that nf4_mmaxf_8 does not take", x.dt, x.shape))
	}
	ks, gx, total, smem := p.ks, p.gx, p.total, p.smem
	x32, x16 := outPtrs(x)
	mf := mmaxFuse{normw: uint64(f.normw), eps: f.eps, lsync: uint64(m.sync)}
	if h != nil {
		mf.h16 = uint64(h.ptr)
	}
	if o.rope != nil {
		r := o.rope
		mf.ra = c.ropeArgsFor(r.kc, r.vc, r.seq, r.pos, m.outs[0]/r.heads, m.outs[1], r.theta, r.posScale)
	}
	if m.chain != 0 {
		mf.nlt, mf.nlr, mf.nparts = uint64(m.chainT), int32(m.ranks[0]), int32(m.parts)
	}
	name := "nf4_mmaxf"
	if o.post {
		name += "p"
	}
	if m.lora || nx != nil {
		name += "l"
	}
	if m.chain != 0 {
		name += "d"
	}
	if nx != nil {
		name += "c"
		mf.nla, mf.nlt, mf.nlr = uint64(nx.chain), uint64(nx.chainT), int32(nr)
		nx.parts = gx
	}
	name += "_8"
	run := func(mode int) {
		c.launch(name, gx, ks, 1, 512, smem, m.descs, m.n, total, x32, x16, c.dmap, n, m.in, mode, asByValue(&mf))
	}
	mode := c.productMode(o.add) | c.tcProbe
	if ks == 1 {
		run(mode)
		return
	}
	c.splitSum(m.ys[0].ptr, int64(n*m.outs[0]), mode, run) // k splits: one weight
}

// tcPlan is runTC's launch for m at n tokens: k splits, blocks, tiles
// and dynamic shared memory; ok when the kernel takes m with the fusions
// asked for (norm, paired gate/up, RoPE) and, with an adapter, its
// shrinks have a block each and its b rows fit in shared memory.
type tcPlan struct {
	ks, gx, total, smem int
	ok                  bool
}

func (m *multiGemv) tcPlan(c *CUDA, n int, norm, paired, rope bool, nextRank int) tcPlan {
	p := tcPlan{ks: (m.in + 4095) / 4096, total: m.blocks, smem: mmaxSmem(n)}
	if paired {
		p.total = (m.outs[0] + 7) / 8
	}
	p.gx = min(p.total, c.sms/p.ks)
	p.ok = n <= 8 && m.in%256 == 0 && p.gx > 0 &&
		(p.ks == 1 || (m.n == 1 && !norm && !paired && !rope)) &&
		(!paired || (m.n == 2 && m.outs[0] == m.outs[1]))
	iters := (p.total + p.gx - 1) / max(p.gx, 1)
	if m.lora {
		p.smem += mmaxLoRASmem(iters, m.ranks[0])
		p.ok = p.ok && n == 1 && !rope && !m.given && (m.sync != 0 || m.chain != 0) && m.jobs <= p.gx
		for _, r := range m.ranks {
			p.ok = p.ok && r%4 == 0 && r > 0 && r <= 32 && r == m.ranks[0]
		}
	}
	if m.chain != 0 { // the consumer's expand table
		p.ok = p.ok && iters <= mmaxMaxIters
	}
	if nextRank > 0 { // the producer: the rows of at its h rows take, staged (mmax_na_stage); its h rows; a partial a block
		p.smem += iters * 8 * nextRank * 4
		p.ok = p.ok && paired && n == 1 && nextRank%4 == 0 && nextRank <= 32 && iters <= mmaxMaxIters && p.gx <= chainParts
	}
	p.ok = p.ok && p.smem <= c.maxSmem
	return p
}

// tcRopeable reports whether runTC can do RoPE for m: one token, q, k, v
// with whole heads of a power-of-two size from 16 to 256 (16-row tiles of
// half heads) and fp16 caches.
func (m *multiGemv) tcRopeable(n int, r *tcRope) bool {
	return n == 1 && r.kc.dt == backend.F16 && r.vc.dt == backend.F16 && ropeHeadDim(m.outs, r.heads, r.kvHeads, 16) > 0
}

// gemvFused is nf4_gemv with its fusions; the caller checked gemvOK.
func (c *CUDA) gemvFused(d, x, w *Tensor, accumulate bool, ep *loraEp, f gemvFuse) {
	n, in, out := x.shape[0], x.shape[1], w.shape[0]
	if !c.gemvOK(n, in, w) || d.shape[0] != n || d.shape[1] != out || (ep != nil && ep.r > 32) {
		panic(fmt.Sprintf("cuda: fused gemv of x %v, w %v %v into %v", x.shape, w.dt, w.shape, d.shape))
	}
	mode := c.productMode(accumulate)
	var e loraEp
	if ep != nil {
		e = *ep
	}
	xsz := (in + 1023) / 1024 * 1024
	q := w.q
	if n == 1 && !c.gemvOld {
		c.gemvx1(d, x, w, mode, e, f)
		return
	}
	c.launch(fmt.Sprintf("nf4_gemv_%d", n), c.gemvGrid((out+15)/16), 1, 1, 256, (16640+n*xsz)*4,
		d.ptr, x.ptr, q.packed, q.qabs, q.absmax2, c.dmap, q.offset, out, in, mode,
		e.b, e.t, e.r, e.stride, e.scale, f.x2, f.normw, f.eps)
}

// matmulEp is matmul with an optional fused LoRA expand (nf4_gemv only; the
// other kernels run lora_expand after the product).
func (c *CUDA) matmulEp(d, x, w *Tensor, accumulate bool, ep *loraEp) {
	n, in := x.shape[0], x.shape[1]
	out := w.shape[0]
	wantShape("MatMul x", x, backend.F32, -1, -1)
	if w.shape[1] != in {
		panic(fmt.Sprintf("cuda: MatMul: x %v and w %v", x.shape, w.shape))
	}
	wantShape("MatMul dst", d, backend.F32, n, out)
	if n == 0 {
		return
	}
	mode := c.productMode(accumulate)
	xsz := (in + 1023) / 1024 * 1024
	switch w.dt {
	case backend.NF4:
		q := w.q
		switch {
		case n == 1 && gemvxOK(in, w) && !c.gemvOld && (ep == nil || ep.r <= 32):
			var e loraEp
			if ep != nil {
				e = *ep
				ep = nil
			}
			c.gemvx1(d, x, w, mode, e, gemvFuse{})
		case n >= 2 && n <= 16 && in%256 == 0 && !c.gemvOld:
			c.mmax(d, x, w, n, out, in, mode, false)
		case in%32 == 0 && n <= gemvMaxTokens && (16640+n*xsz)*4 <= c.maxSmem && (ep == nil || ep.r <= 32) &&
			!c.half: // float32 weights: not for fp16 compute
			var e loraEp
			if ep != nil {
				e = *ep
				ep = nil
			}
			c.launch(fmt.Sprintf("nf4_gemv_%d", n), c.gemvGrid((out+15)/16), 1, 1, 256, (16640+n*xsz)*4,
				d.ptr, x.ptr, q.packed, q.qabs, q.absmax2, c.dmap, q.offset, out, in, mode,
				e.b, e.t, e.r, e.stride, e.scale, cu.DevicePtr(0), cu.DevicePtr(0), float32(0))
		case in%128 == 0 && n <= 16 && c.mmad:
			N := 16
			if n <= 8 {
				N = 8
			}
			gx := (out + 127) / 128
			c.splitK(d, n, out, in, gx, 4, mode, func(gz, m int) {
				c.launch(fmt.Sprintf("nf4_mmad_%d", N), gx, 1, gz, 128, 0,
					d.ptr, x.ptr, q.packed, q.qabs, q.absmax2, c.dmap, q.offset, n, out, in, m)
			})
		case in%128 == 0 && n >= cublasMinTokens && !c.noCublas && !c.capturing:
			c.dequantGemm(d, x, w, n, out, in, mode)
		case in%128 == 0:
			c.mma("nf4", d, x, n, out, in, mode, func(N int, gx, gy, gz, m int) {
				c.launch(fmt.Sprintf("nf4_mma_%d", N), gx, gy, gz, 128, 0,
					d.ptr, x.ptr, q.packed, q.qabs, q.absmax2, c.dmap, q.offset, n, out, in, m)
			})
		default:
			c.launch("nf4_generic", gridFor(int64(n)*int64(out)*32, 256), 1, 1, 256, 0,
				d.ptr, x.ptr, q.packed, q.qabs, q.absmax2, c.dmap, q.offset, n, out, in, mode)
		}
	case backend.F16:
		switch {
		case in%32 == 0 && n <= gemvMaxTokens && n*xsz*4 <= c.maxSmem:
			c.launch(fmt.Sprintf("f16_gemv_%d", n), (out+15)/16, 1, 1, 256, n*xsz*4,
				d.ptr, x.ptr, w.ptr, out, in, mode)
		case in%128 == 0:
			c.mma("f16", d, x, n, out, in, mode, func(N int, gx, gy, gz, m int) {
				c.launch(fmt.Sprintf("f16_mma_%d", N), gx, gy, gz, 128, 0, d.ptr, x.ptr, w.ptr, n, out, in, m)
			})
		default:
			c.launch("f16_generic", gridFor(int64(n)*int64(out)*32, 256), 1, 1, 256, 0,
				d.ptr, x.ptr, w.ptr, n, out, in, mode)
		}
	case backend.F32:
		c.launch("f32_generic", gridFor(int64(n)*int64(out)*32, 256), 1, 1, 256, 0,
			d.ptr, x.ptr, w.ptr, n, out, in, mode)
	default:
		panic(fmt.Sprintf("cuda: MatMul with a %v weight", w.dt))
	}
	if ep != nil { // not fused: expand now
		c.launch("lora_expand", gridFor(int64(n*out), 256), 1, 1, 256, 0, d.ptr, ep.t, ep.b, cu.DevicePtr(0), n, ep.r,
			ep.stride, out, ep.scale, c.roundFlag())
	}
}

// mmaxKernel names the nf4_mmax kernel (base nf4_mmax or nf4_mmaxm) for n
// tokens: _8 up to 8 (one mma a step), _16 up to 16.
func mmaxKernel(base string, n int) string {
	if n <= 8 {
		return base + "_8"
	}
	return base + "_16"
}

// mmaxSmem is the dynamic shared memory of the nf4_mmax kernels for n
// tokens: the byte table (16 replicas; up to 8 tokens its entries are 256
// bytes apart, a 64 KB span), dmap and the double-buffered partial sums.
func mmaxSmem(n int) int {
	span := 16 // float2 slots an entry
	if n <= 8 {
		span = 32
	}
	return (256*span*2 + 256 + 2*16*256) * 4
}

// mmaxLoRASmem is what nf4_mmaxf(p)l_8 takes beyond mmaxSmem for a block
// of iters tiles and adapters of rank r: the b rows of its tiles (16 rows
// of r + 4 floats a tile; a shrink job's a row shares the partial sums'
// buffers). Every byte of it is L1 that the codes in flight lose.
func mmaxLoRASmem(iters, r int) int { return iters * 16 * (r + 4) * 4 }

// mmax runs nf4_mmax_8/16 for 1 to 16 tokens (in % 256 == 0): blocks of 16
// warps over 4096 inputs each (k splits beyond that add atomically into a
// zeroed or accumulated d, rounded afterwards), one wave of blocks walking
// the 16-row tiles. x is F32, or F16 (already rounded to half, as the
// kernel would: the same result from half the bytes). post (up to 8
// tokens) takes the post-scaled kernel nf4_mmaxp_8 (nf4_mmax's POST in kernels/matmul.cu).
func (c *CUDA) mmax(d, x, w *Tensor, n, out, in, mode int, post bool) {
	name := mmaxKernel("nf4_mmax", n)
	if post {
		if n > 8 {
			panic(fmt.Sprintf("cuda: the post-scaled tensor-core product takes up to 8 tokens, not %d", n))
		}
		name = "nf4_mmaxp_8"
	}
	q := w.q
	ks := (in + 4095) / 4096
	gx := max(1, min((out+15)/16, c.sms/ks))
	x32, x16 := outPtrs(x) // F16 x: already rounded to half
	run := func(m int) {
		c.launch(name, gx, ks, 1, 512, mmaxSmem(n),
			d.ptr, x32, x16, q.packed, q.qabs, q.absmax2, c.dmap, q.offset, n, out, in, m, ks)
	}
	if ks == 1 {
		run(mode)
		return
	}
	c.splitSum(d.ptr, int64(n*out), mode, run)
}

// cublasMinTokens is the step size from which an NF4 product dequantizes
// the weight to fp16 (in chunks of rows) and calls cuBLAS: the tensor-core
// kernel re-dequantizes each weight tile per 64 tokens, cuBLAS is faster
// once the dequantization is shared by this many tokens.
const cublasMinTokens = 128

// wChunkBytes bounds the fp16 weight scratch of the cuBLAS path.
const wChunkBytes = 32 << 20

// dequantGemm computes d (+)= x @ wᵀ for an NF4 w: x to fp16 once, then per
// chunk of weight rows: dequantize to fp16, cublasGemmEx with fp32 output.
func (c *CUDA) dequantGemm(d, x, w *Tensor, n, out, in, mode int) {
	if c.blas == nil {
		b, err := newCublas(c.stream)
		must("cuBLAS", err)
		c.blas = b
	}
	xb := int64(n) * int64(in) * 2
	c.growScratch(&c.x16, &c.x16N, xb)
	chunk := max(1, min(out, wChunkBytes/(2*in)))
	c.growScratch(&c.w16, &c.w16N, int64(chunk)*int64(in)*2)
	c.launch("f32_to_f16", gridFor(xb/4, 256), 1, 1, 256, 0, c.x16, x.ptr, xb/4)
	q := w.q
	beta := float32(0)
	if mode&1 != 0 {
		beta = 1
	}
	for r0 := 0; r0 < out; r0 += chunk {
		rows := min(chunk, out-r0)
		c.launch("nf4_dequant_f16", gridFor(int64(rows)*int64(in)/2, 256), 1, 1, 256, 0,
			c.w16, q.packed, q.qabs, q.absmax2, c.dmap, q.offset, int64(r0), rows, in)
		must("GEMM", c.blas.gemmF16(rows, n, in, c.w16, in, c.x16, in, beta, d.ptr+cu.DevicePtr(4*r0), out))
	}
	if mode&2 != 0 {
		c.launch("round_f16", gridFor(int64(n*out), 256), 1, 1, 256, 0, d.ptr, int64(n*out))
	}
}

// splitK runs a product whose blocks (gx of them per k range) split the k
// steps of 128 until the card has about perSM blocks per multiprocessor;
// split products add atomically into a zeroed (or, accumulating, the
// existing) d and are rounded afterwards.
func (c *CUDA) splitK(d *Tensor, n, out, in, gx, perSM, mode int, run func(gz, mode int)) {
	steps := in / 128
	splits := min(max((perSM*c.sms+gx-1)/gx, 1), steps, 32)
	if splits == 1 {
		run(1, mode)
		return
	}
	c.splitSum(d.ptr, int64(n*out), mode, func(m int) { run(splits, m) })
}

// splitSum runs a product whose k splits add atomically into y (elems
// floats): y is zeroed first unless mode adds into it (bit 0), the
// product runs without mode's fp16 rounding (bit 1), and y is rounded to
// half afterwards when mode has it.
func (c *CUDA) splitSum(y cu.DevicePtr, elems int64, mode int, run func(mode int)) {
	if mode&1 == 0 {
		must("cuMemsetD32Async", cu.MemsetD32Async(y, 0, elems, c.stream))
	}
	run(mode &^ 2)
	if mode&2 != 0 {
		c.launch("round_f16", gridFor(elems, 256), 1, 1, 256, 0, y, elems)
	}
}

// mma plans a tensor-core product: token tiles of 16 or 64, and the k steps
// (of 128) split across blocks until the card has about 16 blocks per
// multiprocessor. Split products add atomically into a zeroed (or, when
// accumulating, the existing) dst and are rounded afterwards.
func (c *CUDA) mma(kind string, d, x *Tensor, n, out, in, mode int, run func(N, gx, gy, gz, mode int)) {
	N := 64
	if n <= 16 {
		N = 16
	}
	gx, gy := (out+63)/64, (n+N-1)/N
	steps := in / 128
	splits := min(max((16*c.sms+gx*gy-1)/(gx*gy), 1), steps, 32)
	if splits == 1 {
		run(N, gx, gy, 1, mode)
		return
	}
	c.splitSum(d.ptr, int64(n*out), mode, func(m int) { run(N, gx, gy, splits, m) })
}

// AddLoRA adds scale * (x @ aᵀ) @ bᵀ to the listed rows of dst.
func (c *CUDA) AddLoRA(dst, x, a, b backend.Tensor, scale float32, rows backend.Tensor) {
	defer c.bind()()
	c.addLoRA(ct(dst), ct(x), ct(a), ct(b), scale, ct(rows))
}

func (c *CUDA) addLoRA(d, x, a, b *Tensor, scale float32, rows *Tensor) {
	n, in := x.shape[0], x.shape[1]
	r := a.shape[0]
	out := d.shape[1]
	wantShape("AddLoRA dst", d, backend.F32, n, -1)
	wantShape("AddLoRA x", x, backend.F32, n, in)
	wantShape("AddLoRA a", a, backend.F32, r, in)
	wantShape("AddLoRA b", b, backend.F32, out, r)
	k := n
	if rows != nil {
		wantShape("AddLoRA rows", rows, backend.I32, -1)
		k = rows.shape[0]
	}
	if k == 0 || r == 0 {
		return
	}
	t := c.loraScratch(int64(k * r))
	c.launch("lora_shrink", k*r, 1, 1, 1024, 0, t, x.ptr, a.ptr, ptrOf(rows), k, r, in, c.roundFlag())
	c.launch("lora_expand", gridFor(int64(k*out), 256), 1, 1, 256, 0, d.ptr, t, b.ptr, ptrOf(rows), k, r, r, out,
		scale, c.roundFlag())
}

// loraScratch returns a device buffer of at least n floats for the LoRA
// intermediate. It grows by reallocating, which must not happen during a
// graph capture: ReserveLoRA sizes it beforehand.
func (c *CUDA) loraScratch(n int64) cu.DevicePtr {
	c.growScratch(&c.loraT, &c.loraB, 4*max(n, 4096))
	return c.loraT
}

// growScratch makes the scratch buffer *p (*have bytes) hold at least
// bytes: a larger one replaces it once the queued work that may use it is
// done.
func (c *CUDA) growScratch(p *cu.DevicePtr, have *int64, bytes int64) {
	if bytes <= *have {
		return
	}
	if *p != 0 {
		must("cuStreamSynchronize", c.stream.Synchronize())
		cu.MemFree(*p)
	}
	*p, *have = c.alloc(bytes), bytes
}

// productMode is the `mode` of the product kernels: bit 0 adds into the
// output, bit 1 rounds it to fp16 (fp16 compute); nf4_gemvx's variants and
// probes: bit 4 its phase trace, 5 block-wide barriers, 6 and 7 the staged
// kernel's first stages all before x and at most 2 stages, 8 the byte
// table copied in.
func (c *CUDA) productMode(accumulate bool) int {
	mode := 0
	for _, b := range []struct {
		on  bool
		bit int
	}{{accumulate, 1}, {c.half, 2}, {c.gxTrace, 16}, {c.gxBlockBar, 32}, {c.gxEarly, 64}, {c.gxTwo, 128},
		{c.gxCopyTab, 256}} {
		if b.on {
			mode |= b.bit
		}
	}
	return mode
}

// MatMulLoRA computes dst = x @ wᵀ and adds each adapter's update. One
// adapter on all rows is fused: its shrink, then the product with the
// expand in the product's epilogue.
func (c *CUDA) MatMulLoRA(dst, x, w backend.Tensor, loras []backend.LoRA) {
	defer c.bind()()
	d, xx, ww := ct(dst), ct(x), ct(w)
	if len(loras) == 1 && loras[0].Rows == nil && !c.half { // fp16 compute rounds as the CPU backend: unfused
		l := loras[0]
		c.matmulLoRA(d, xx, ww, ct(l.A), ct(l.B), l.Scale, false)
		return
	}
	c.matmul(d, xx, ww, false)
	for _, l := range loras {
		c.addLoRA(d, xx, ct(l.A), ct(l.B), l.Scale, ct(l.Rows))
	}
}

// matmulLoRA computes dst (+)= x @ wᵀ + scale * (x @ aᵀ) @ bᵀ over all rows.
func (c *CUDA) matmulLoRA(d, x, w, a, b *Tensor, scale float32, accumulate bool) {
	n, in := x.shape[0], x.shape[1]
	r := a.shape[0]
	wantShape("MatMulLoRA a", a, backend.F32, r, in)
	wantShape("MatMulLoRA b", b, backend.F32, w.shape[0], r)
	t := c.loraScratch(int64(n * r))
	if n > 0 && r > 0 {
		c.launch("lora_shrink", n*r, 1, 1, 1024, 0, t, x.ptr, a.ptr, cu.DevicePtr(0), n, r, in, c.roundFlag())
	}
	c.matmulEp(d, x, w, accumulate, &loraEp{b: b.ptr, t: t, r: r, stride: r, scale: scale})
}

// matmulLoRA2 computes two products of the same x, each with its adapter
// (the gate and up projections): one launch for both shrinks, the expands
// fused into the products.
func (c *CUDA) matmulLoRA2(d1, d2, x, w1, w2, a1, b1, a2, b2 *Tensor, scale float32, accumulate bool) {
	n, in := x.shape[0], x.shape[1]
	r := a1.shape[0]
	wantShape("MatMulLoRA a", a1, backend.F32, r, in)
	wantShape("MatMulLoRA a", a2, backend.F32, r, in)
	t := c.loraScratch(int64(2 * n * r))
	c.launch("lora_shrink2", 2*n*r, 1, 1, 1024, 0, t, x.ptr, a1.ptr, a2.ptr, n, r, in)
	c.matmulEp(d1, x, w1, accumulate, &loraEp{b: b1.ptr, t: t, r: r, stride: 2 * r, scale: scale})
	c.matmulEp(d2, x, w2, accumulate, &loraEp{b: b2.ptr, t: t + cu.DevicePtr(4*r), r: r, stride: 2 * r, scale: scale})
}

var _ backend.MatMulLoRA = (*CUDA)(nil)
