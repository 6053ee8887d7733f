//go:build cuda

package cuda

import (
	"encoding/json"
	"errors"

	"fmt"
	"gorgonia.org/cu"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"
	"unsafe"

	"loramix/engine/backend"
)

// BenchShape is the size of the random Llama model of a generation benchmark.
type BenchShape struct {
	Name                                                string
	Hidden, Intermediate, Layers, Heads, KVHeads, Vocab int
}

// Llama2_7B is the shape of Llama-2-7B.
var Llama2_7B = BenchShape{Name: "llama-2-7b", Hidden: 4096, Intermediate: 11008, Layers: 32, Heads: 32, KVHeads: 32, Vocab: 32000}

// BenchConfig is one generation benchmark: an NF4 model of Shape with random
// weights made on the GPU (no checkpoint), prompts of Prompt tokens, New
// greedy tokens, for each batch size. LoRARank > 0 also times batch-1 decode
// with one adapter of that rank on gate, up and down.
type BenchConfig struct {
	Shape       BenchShape
	Batches     []int
	Prompt, New int
	LoRARank    int
	Seed        uint64
	PeakBytesPS float64 // the card's measured copy bandwidth, bytes/s (0: 3.0e12, an H100)
	Variants    string  `json:",omitempty"` // a regexp: only the side-by-side variants whose names match run ("": all)
}

// BenchResult is the outcome for one batch size.
type BenchResult struct {
	Device         string  `json:"device"`
	Shape          string  `json:"shape"`
	Quant          string  `json:"quant"`
	Batch          int     `json:"batch"`
	Step           string  `json:"decode_step"` // the decode step's kernels: tensor-core (one token), gemvx, batch
	Prompt         int     `json:"prompt"`
	New            int     `json:"new"`
	PrefillSeconds float64 `json:"prefill_s"`
	PrefillTokS    float64 `json:"prefill_tok_s"`
	DecodeSeconds  float64 `json:"decode_s"`
	DecodeTokS     float64 `json:"decode_tok_s"` // aggregate over the batch
	StepMs         float64 `json:"decode_step_ms"`
	WeightBytes    int64   `json:"weight_bytes"`       // read once per decode step
	BandwidthBPS   float64 `json:"bandwidth_bytes_s"`  // weights + KV cache read per step / step time
	BandwidthShare float64 `json:"bandwidth_share"`    // of PeakBytesPS
	MemUsedBytes   int64   `json:"gpu_mem_used_bytes"` // on the card, context included
	LoRARank       int     `json:"lora_rank,omitempty"`
	LoRADecodeTokS float64 `json:"lora_decode_tok_s,omitempty"`
	LoRAOverhead   float64 `json:"lora_overhead,omitempty"` // decode time with the adapter / without - 1
}

type benchLayer struct {
	attnNorm, mlpNorm          *Tensor
	wq, wk, wv, wo, wg, wu, wd *Tensor
	kc, vc                     *Tensor
	lora                       [3][2]*Tensor // gate, up, down: A (r, in), B (out, r)
	downAT                     *Tensor       // down's A transposed (in, r): its chained shrink's
	qkv, gu, guLoRA, downLoRA  *multiGemv    // the fused decode's multi-weight products (downLoRA: the tensor-core step's)
	downChain                  *multiGemv    // the tensor-core step's down with its shrink chained from gate/up
	downFused                  *multiGemv    // down alone through runTC (the benchmark's variant)
	downSync                   cu.DevicePtr  // the counters of down's in-kernel shrink
}

type benchModel struct {
	c           *CUDA
	s           BenchShape
	embed       *Tensor // (vocab, hidden) F16
	norm        *Tensor // (hidden) F32
	lmHead      *Tensor // (vocab, hidden) F16
	layers      []*benchLayer
	bytes       int64     // weights read per decode step
	log         io.Writer // the profile's
	noMany      bool      // step: one launch per weight (the spec's reference)
	tc1         bool      // batch 1 through step's tensor-core products (fp16 weights, half operands), not stepFused
	tcApart     bool      // tc1 with the norms and SwiGLU as kernels of their own, not in the products (nf4_mmaxf_8)
	tcRopeApart bool      // tc1 with RoPE and the KV store as a kernel of its own, not in the q, k, v product
	tcExact     bool      // tc1 with each weight rounded to half (nf4_mmaxf_8, nf4_mmax_8), not post-scaled (nf4_mmaxfp_8, nf4_mmaxp_8)
	tcDownJobs  bool      // tc1's adapter: down computes its shrink in its own prologue (v12), not chained from gate/up
	tcDownFused bool      // tc1 without the adapter: down through runTC (nf4_mmaxfp_8), not nf4_mmaxp_8
	only        string    // step, stepFused: run only this kind of kernel (stepKinds; the profile's), "" all
}

// benchBufs are the activations of a step of up to T tokens.
type benchBufs struct {
	ids, seq, pos, last, next *Tensor // I32
	x, xn, q, k, v, att       *Tensor
	g, u                      *Tensor
	h, logits                 *Tensor
	xn16, att16, g16          *Tensor // F16, up to 16 rows: the batch decode's product operands
	sw                        *Tensor // (1, intermediate): SwiGLU of the one-token step's paired gate/up
}

func (c *CUDA) fillBytes(p uint64, bytes int64, seed uint64) {
	c.launch("fill_bytes", gridFor(bytes/8, 256), 1, 1, 256, 0, p, bytes/8, seed)
}

func (c *CUDA) fillUniform(t *Tensor, lo, hi float32, seed uint64) {
	half := 0
	if t.dt == backend.F16 {
		half = 1
	}
	n := int64(t.elems())
	c.launch("fill_uniform", gridFor(n, 256), 1, 1, 256, 0, t.ptr, n, lo, hi, seed, half)
}

// randomNF4 makes an NF4 (rows, cols) weight on the card: random codes and
// absmax codes, per-256 scales in [0.004, 0.006] and offset 0.04, so that
// absmax is near 0.04 and the weights look like a trained layer's.
func (c *CUDA) randomNF4(rows, cols int, seed uint64) (*Tensor, int64) {
	n := int64(rows) * int64(cols)
	nb := (n + 63) / 64
	groups := (nb + 255) / 256
	packed := (n/2 + 15) / 16 * 16
	qabs := (nb + 7) / 8 * 8
	d := &nf4Dev{offset: 0.04}
	d.packed, d.qabs, d.absmax2 = c.alloc(packed), c.alloc(nf4Pad(qabs)), c.alloc(nf4Pad(4*groups))
	c.fillBytes(uint64(d.packed), packed, seed)
	c.fillBytes(uint64(d.qabs), nf4Pad(qabs), seed^0x5bd1e995)
	a2 := &Tensor{shape: []int{int(groups)}, dt: backend.F32, ptr: d.absmax2}
	c.fillUniform(a2, 0.004, 0.006, seed^0x27d4eb2f)
	return &Tensor{shape: []int{rows, cols}, dt: backend.NF4, q: d}, n/2 + nb + 4*groups
}

func (c *CUDA) newT(dt backend.DType, shape ...int) *Tensor { return c.New(dt, shape...).(*Tensor) }

// transposedF32 is a copy of the (rows, cols) F32 t as (cols, rows), made
// on the host (setup only).
func (c *CUDA) transposedF32(t *Tensor) *Tensor {
	r, k := t.shape[0], t.shape[1]
	v, w := make([]float32, r*k), make([]float32, r*k)
	c.Float32(v, t)
	for i := 0; i < r; i++ {
		for j := 0; j < k; j++ {
			w[j*r+i] = v[i*k+j]
		}
	}
	d := c.newT(backend.F32, k, r)
	c.SetFloat32(d, w)
	return d
}

func newBenchModel(c *CUDA, s BenchShape, rank int, seed uint64) *benchModel {
	defer c.bind()()
	m := &benchModel{c: c, s: s}
	hd := s.Hidden / s.Heads
	kvd := s.KVHeads * hd
	m.embed = c.newT(backend.F16, s.Vocab, s.Hidden)
	c.fillUniform(m.embed, -0.05, 0.05, seed)
	m.lmHead = c.newT(backend.F16, s.Vocab, s.Hidden)
	c.fillUniform(m.lmHead, -0.02, 0.02, seed+1)
	m.norm = c.newT(backend.F32, s.Hidden)
	c.fillUniform(m.norm, 1, 1, 0)
	m.bytes = int64(s.Vocab)*int64(s.Hidden)*2 + int64(s.Hidden)*4
	for i := 0; i < s.Layers; i++ {
		l := &benchLayer{}
		sd := seed + uint64(i+1)*1000
		var b int64
		add := func(t *Tensor, n int64) *Tensor { b += n; return t }
		l.wq = add(c.randomNF4(s.Hidden, s.Hidden, sd+1))
		l.wk = add(c.randomNF4(kvd, s.Hidden, sd+2))
		l.wv = add(c.randomNF4(kvd, s.Hidden, sd+3))
		l.wo = add(c.randomNF4(s.Hidden, s.Hidden, sd+4))
		l.wg = add(c.randomNF4(s.Intermediate, s.Hidden, sd+5))
		l.wu = add(c.randomNF4(s.Intermediate, s.Hidden, sd+6))
		l.wd = add(c.randomNF4(s.Hidden, s.Intermediate, sd+7))
		l.attnNorm, l.mlpNorm = c.newT(backend.F32, s.Hidden), c.newT(backend.F32, s.Hidden)
		c.fillUniform(l.attnNorm, 1, 1, 0)
		c.fillUniform(l.mlpNorm, 1, 1, 0)
		m.bytes += b + 2*int64(s.Hidden)*4
		if rank > 0 {
			dims := [3][2]int{{s.Hidden, s.Intermediate}, {s.Hidden, s.Intermediate}, {s.Intermediate, s.Hidden}}
			for j, d := range dims {
				a, bb := c.newT(backend.F32, rank, d[0]), c.newT(backend.F32, d[1], rank)
				c.fillUniform(a, -0.02, 0.02, sd+uint64(10+j))
				c.fillUniform(bb, -0.02, 0.02, sd+uint64(20+j))
				l.lora[j] = [2]*Tensor{a, bb}
			}
			l.downAT = c.transposedF32(l.lora[2][0])
		}
		m.layers = append(m.layers, l)
	}
	return m
}

func (m *benchModel) bufs(T, rows int) *benchBufs {
	c, s := m.c, m.s
	kvd := s.KVHeads * (s.Hidden / s.Heads)
	return &benchBufs{
		ids: c.newT(backend.I32, T), seq: c.newT(backend.I32, T), pos: c.newT(backend.I32, T),
		last: c.newT(backend.I32, rows), next: c.newT(backend.I32, rows),
		x: c.newT(backend.F32, T, s.Hidden), xn: c.newT(backend.F32, T, s.Hidden),
		q: c.newT(backend.F32, T, s.Hidden), att: c.newT(backend.F32, T, s.Hidden),
		k: c.newT(backend.F32, T, kvd), v: c.newT(backend.F32, T, kvd),
		g: c.newT(backend.F32, T, s.Intermediate), u: c.newT(backend.F32, T, s.Intermediate),
		h: c.newT(backend.F32, rows, s.Hidden), logits: c.newT(backend.F32, rows, s.Vocab),
		xn16: c.newT(backend.F16, min(T, 16), s.Hidden), att16: c.newT(backend.F16, min(T, 16), s.Hidden),
		g16: c.newT(backend.F16, min(T, 16), s.Intermediate), sw: c.newT(backend.F32, 1, s.Intermediate),
	}
}

func (c *CUDA) view(t *Tensor, rows int) *Tensor { return c.View(t, rows).(*Tensor) }

// multi uploads the multi-weight products of the fused decode step for the
// buffers b: q,k,v and gate,up (plain and with the adapter's expands, whose
// shrinks go to the LoRA scratch, gate's then up's: computed by the
// one-token kernel itself, or by lora_shrink_f before a launch of more
// tokens).
func (m *benchModel) multi(b *benchBufs, rank int) {
	c := m.c
	var t, parts cu.DevicePtr // the shrinks; down's chained partials (one per gate/up block) after them
	if rank > 0 {
		t = c.loraScratch(int64((2*gemvMaxTokens + chainParts) * rank))
		parts = t + cu.DevicePtr(4*2*gemvMaxTokens*rank)
	}
	for _, l := range m.layers {
		l.qkv = c.newMultiGemv([]*Tensor{l.wq, l.wk, l.wv}, []*Tensor{b.q, b.k, b.v}, nil)
		l.gu = c.newMultiGemv([]*Tensor{l.wg, l.wu}, []*Tensor{b.g, b.u}, nil)
		l.downFused = c.newMultiGemv([]*Tensor{l.wd}, []*Tensor{b.x}, nil)
		if rank > 0 {
			l.guLoRA = c.newMultiGemv([]*Tensor{l.wg, l.wu}, []*Tensor{b.g, b.u}, []*loraEp{
				{b: l.lora[0][1].ptr, t: t, a: l.lora[0][0].ptr, r: rank, stride: 2 * rank, scale: 2},
				{b: l.lora[1][1].ptr, t: t + cu.DevicePtr(4*rank), a: l.lora[1][0].ptr, r: rank, stride: 2 * rank, scale: 2}})
			l.downSync = c.newLoRASync()
			l.downLoRA = c.newMultiGemv([]*Tensor{l.wd}, []*Tensor{b.x}, []*loraEp{
				{b: l.lora[2][1].ptr, t: t, a: l.lora[2][0].ptr, r: rank, stride: rank, scale: 2}})
			l.downChain = c.newMultiGemv([]*Tensor{l.wd}, []*Tensor{b.x}, []*loraEp{
				{b: l.lora[2][1].ptr, t: parts, at: l.downAT.ptr, r: rank, stride: rank, scale: 2}})
		}
	}
}

// stepFused is step for a decode of at most 4 tokens, with the fusions of
// nf4_gemv: RMSNorm inside the q/k/v and gate/up products, SwiGLU inside
// the down product, RoPE and the KV store in one kernel, q/k/v and gate/up
// each in one launch, residual adds and LoRA expands in the products'
// epilogues: 6 kernels a layer instead of 14. multi must have run for b.
func (m *benchModel) stepFused(b *benchBufs, ids *Tensor, n int, lora bool) {
	c, s := m.c, m.s
	defer c.bind()()
	const eps = 1e-5
	v := func(t *Tensor) *Tensor { return c.view(t, n) }
	x, q, k, vv, att, g, u := v(b.x), v(b.q), v(b.k), v(b.v), v(b.att), v(b.g), v(b.u)
	seq, pos := c.view(b.seq, n), c.view(b.pos, n)
	if m.on("head") {
		c.Rows(x, m.embed, ids)
	}
	r := 0
	var t cu.DevicePtr
	if lora {
		r = m.layers[0].lora[0][0].shape[0]
		t = c.loraScratch(int64(2 * gemvMaxTokens * r)) // the size multi reserved: no reallocation
	}
	for _, l := range m.layers {
		nrm := gemvFuse{normw: l.attnNorm.ptr, eps: eps}
		// one token: the q, k, v product does RoPE and the KV store itself
		rope := n == 1 && l.qkv.ropeable(c, s.Heads, s.KVHeads)
		if m.on("qkv") {
			if rope {
				l.qkv.runRope(c, x, nrm, l.kc, l.vc, seq, pos, s.Heads, s.KVHeads, 10000, 1)
			} else {
				l.qkv.run(c, x, false, nrm) // q, k, v
			}
		}
		if m.on("attention") {
			if !rope {
				c.ropeKV(q, k, vv, l.kc, l.vc, seq, pos, s.Heads, s.KVHeads, 10000, 1)
			}
			c.attend(att, q, l.kc, l.vc, seq, pos, s.Heads, s.KVHeads)
		}
		if m.on("o") {
			c.gemvFused(x, att, l.wo, true, nil, gemvFuse{})
		}
		nrm = gemvFuse{normw: l.mlpNorm.ptr, eps: eps}
		var ed *loraEp
		// one token: the products compute their shrinks themselves, and
		// gate/up pair their rows and store SwiGLU (b.sw) for down
		inKernel := n == 1 && !c.gemvOld
		gu := l.gu
		if lora {
			gu = l.guLoRA // gate, up with their expands
		}
		paired := n == 1 && gu.pairable(c)
		if m.on("gate,up") {
			if lora && !inKernel {
				c.launch("lora_shrink_f", 2*n*r, 1, 1, 1024, 0, t, x.ptr, cu.DevicePtr(0), l.mlpNorm.ptr, float32(eps),
					l.lora[0][0].ptr, l.lora[1][0].ptr, n, r, s.Hidden)
			}
			if paired {
				gu.runPaired(c, x, b.sw, nrm)
			} else {
				gu.run(c, x, false, nrm)
			}
		}
		if !m.on("down") {
			continue
		}
		// down's operand: SwiGLU stored by the paired gate/up, or computed
		// from g and u (x2) as down stages them
		hin, x2 := g, u.ptr
		if paired {
			hin, x2 = b.sw, 0
		}
		if lora {
			ed = &loraEp{b: l.lora[2][1].ptr, t: t, a: l.lora[2][0].ptr, sync: l.downSync, r: r, stride: r, scale: 2}
			if !inKernel || !c.shrinkInKernel(ed, s.Intermediate, s.Hidden) {
				ed.a, ed.sync = 0, 0
				c.launch("lora_shrink_f", n*r, 1, 1, 1024, 0, t, hin.ptr, x2, cu.DevicePtr(0), float32(0),
					l.lora[2][0].ptr, cu.DevicePtr(0), n, r, s.Intermediate)
			}
		}
		c.gemvFused(x, hin, l.wd, true, ed, gemvFuse{x2: x2})
	}
	if !m.on("head") {
		return
	}
	h, logits := c.view(b.h, n), c.view(b.logits, n)
	c.RMSNorm(h, x, m.norm, eps)
	c.MatMul(logits, h, m.lmHead)
	c.Argmax(c.view(b.next, n), logits)
}

// step runs n tokens (ids, seq, pos) through the model and leaves the
// greedy next token of the rows `last` in next. With lora it applies the
// adapter of each layer (scale 2) to every row. With m.tc1 one token takes
// the batch decode's tensor-core products (stepFused's alternative).
func (m *benchModel) step(b *benchBufs, ids *Tensor, n, rows int, lora bool) {
	c, s := m.c, m.s
	const eps = 1e-5
	v := func(t *Tensor) *Tensor { return c.view(t, n) }
	x, xn, q, k, vv, att, g, u := v(b.x), v(b.xn), v(b.q), v(b.k), v(b.v), v(b.att), v(b.g), v(b.u)
	seq, pos := c.view(b.seq, n), c.view(b.pos, n)
	defer c.bind()()
	if m.on("head") {
		c.Rows(x, m.embed, ids)
	}
	// 2 to 16 tokens of as many sequences (a batch decode): RoPE with the KV
	// store (ropeKV), and q,k,v and gate,up each in one launch of
	// nf4_mmaxm_16 (multi must have run for b). Without an adapter the
	// products' operands are stored in half by the kernels before them (the
	// products round them so anyway; each of the 132 blocks of a product
	// reads all of its operand): xin, ain, gin.
	decode := n == rows && (n >= 2 || m.tc1) && n <= 16 && s.Hidden%256 == 0 && s.Intermediate%256 == 0
	many := decode && m.layers[0].qkv != nil && s.Hidden <= 4096 && !c.gemvOld && !m.noMany
	// one token (tc1): the norms in the products' prologues, SwiGLU in the
	// gate/up product's epilogue, RoPE and the KV store in the q, k, v
	// product's (nf4_mmaxf_8; tcApart, tcRopeApart: the benchmark's
	// variants without); the adapter's shrinks and expands in the gate/up
	// and down products' prologues and epilogues
	tc := many && n == 1 && m.tc1 && !m.tcApart && (!lora || m.tcLoRA())
	half := many && (!lora || tc)
	fuse := half && n == 1 && !m.tcApart
	post := fuse && !m.tcExact // the post-scaled kernels (nf4_mmax's POST, kernels/matmul.cu)
	xin, ain, gin := xn, att, g
	if half {
		xin, ain, gin = c.view(b.xn16, n), c.view(b.att16, n), c.view(b.g16, n)
	}
	for _, l := range m.layers {
		// the norms zero the outputs of the products after them that add
		// (the multi-weight products store)
		switch {
		case !m.on("small") || fuse:
		case many:
			c.RMSNorm(xin, x, l.attnNorm, eps)
		default:
			c.rmsnormZero(xn, x, l.attnNorm, eps, q, k, vv)
		}
		switch {
		case !m.on("qkv"):
		case fuse:
			var rope *tcRope
			if !m.tcRopeApart {
				rope = &tcRope{kc: l.kc, vc: l.vc, seq: seq, pos: pos, heads: s.Heads, kvHeads: s.KVHeads, theta: 10000, posScale: 1}
			}
			l.qkv.runTC(c, x, tcOpts{norm: gemvFuse{normw: l.attnNorm.ptr, eps: eps}, rope: rope, post: post})
		case many:
			l.qkv.run(c, xin, false, gemvFuse{})
		default:
			c.matmul(q, xn, l.wq, true)
			c.matmul(k, xn, l.wk, true)
			c.matmul(vv, xn, l.wv, true)
		}
		switch {
		case !m.on("attention"):
		case decode:
			if !fuse || m.tcRopeApart { // else done by the q, k, v product
				c.ropeKV(q, k, vv, l.kc, l.vc, seq, pos, s.Heads, s.KVHeads, 10000, 1)
			}
			c.attend(ain, q, l.kc, l.vc, seq, pos, s.Heads, s.KVHeads)
		default:
			c.RoPE(q, pos, s.Heads, 10000, 1)
			c.RoPE(k, pos, s.KVHeads, 10000, 1)
			c.Attention(att, q, k, vv, l.kc, l.vc, seq, pos, s.Heads, s.KVHeads)
		}
		switch {
		case !m.on("o"):
		case half:
			c.mmax(x, ain, l.wo, n, s.Hidden, s.Hidden, c.productMode(true), post)
		default:
			c.MatMulAdd(x, att, l.wo)
		}
		switch {
		case !m.on("small") || fuse:
		case half:
			c.RMSNorm(xin, x, l.mlpNorm, eps)
		default: // the adapter's products below add
			c.rmsnormZero(xn, x, l.mlpNorm, eps, g, u)
		}
		switch {
		case !m.on("gate,up"):
		case fuse:
			gu, o := l.gu, tcOpts{norm: gemvFuse{normw: l.mlpNorm.ptr, eps: eps}, h: gin, post: post}
			if lora {
				gu = l.guLoRA
				if !m.tcDownJobs {
					o.next = l.downChain
				}
			}
			gu.runTC(c, x, o)
		case lora:
			c.matmulLoRA2(g, u, xn, l.wg, l.wu, l.lora[0][0], l.lora[0][1], l.lora[1][0], l.lora[1][1], 2, true)
		case many:
			l.gu.run(c, xin, false, gemvFuse{})
		default:
			c.matmul(g, xn, l.wg, true)
			c.matmul(u, xn, l.wu, true)
		}
		if m.on("small") && !fuse {
			c.SiLUMul(gin, g, u)
		}
		switch {
		case !m.on("down"):
		case fuse && lora && m.tcDownJobs:
			l.downLoRA.runTC(c, gin, tcOpts{post: post, add: true})
		case fuse && lora:
			l.downChain.runTC(c, gin, tcOpts{post: post, add: true})
		case fuse && m.tcDownFused:
			l.downFused.runTC(c, gin, tcOpts{post: post, add: true})
		case lora:
			c.matmulLoRA(x, g, l.wd, l.lora[2][0], l.lora[2][1], 2, true)
		case half:
			c.mmax(x, gin, l.wd, n, s.Hidden, s.Intermediate, c.productMode(true), post)
		default:
			c.MatMulAdd(x, g, l.wd)
		}
	}
	if !m.on("head") {
		return
	}
	h, logits := c.view(b.h, rows), c.view(b.logits, rows)
	c.Rows(h, x, c.view(b.last, rows))
	c.RMSNorm(h, h, m.norm, eps)
	c.MatMul(logits, h, m.lmHead)
	c.Argmax(c.view(b.next, rows), logits)
}

// tcLoRA reports whether the tensor-core step's products take the adapter
// (its shrinks a block each, its b rows in shared memory); else step
// applies it with the plain ops.
func (m *benchModel) tcLoRA() bool {
	l := m.layers[0]
	if l.guLoRA == nil || l.downLoRA == nil || l.downChain == nil {
		return false
	}
	down, next := l.downChain, l.downChain.ranks[0] // gate/up stages the chained shrink's rows
	if m.tcDownJobs {
		down, next = l.downLoRA, 0
	}
	return l.guLoRA.tcPlan(m.c, 1, true, true, false, next).ok && down.tcPlan(m.c, 1, false, false, false, 0).ok
}

// fused reports whether a decode of B sequences runs stepFused (the gemvx
// products), not step.
func (m *benchModel) fused(B int) bool {
	c, s, l := m.c, m.s, m.layers[0]
	return !m.tc1 && B <= gemvMaxTokens && c.gemvOK(B, s.Hidden, l.wq) && c.gemvOK(B, s.Intermediate, l.wd)
}

// stepName names the decode step of B sequences that run times: the gemvx
// one (stepFused), the tensor-core one-token step (tc1), or the batch
// step.
func (m *benchModel) stepName(B int) string {
	switch {
	case m.fused(B):
		return "gemvx"
	case B == 1 && m.tc1:
		return "tensor-core"
	}
	return "batch"
}

// stepKinds are the kinds of kernel of a step that the profile times apart
// (benchModel.only): the products, attention (RoPE, the KV store and
// attention), small (norms and SwiGLU between the products of step) and
// head (the embedding rows, final norm, lm_head and argmax).
var stepKinds = []string{"qkv", "attention", "o", "gate,up", "down", "small", "head"}

// on reports whether step and stepFused run kernels of kind k.
func (m *benchModel) on(k string) bool { return m.only == "" || m.only == k }

// Bench runs the generation benchmark on the card and returns one result
// per batch size. Progress lines go to log.
func Bench(c *CUDA, cfg BenchConfig, log io.Writer) ([]BenchResult, error) {
	if cfg.PeakBytesPS == 0 {
		cfg.PeakBytesPS = 3.0e12
	}
	s := cfg.Shape
	if s.Hidden%s.Heads != 0 || s.Heads%s.KVHeads != 0 || cfg.Prompt <= 0 || cfg.New <= 0 {
		return nil, fmt.Errorf("cuda: bench: bad shape or lengths: %+v, prompt %d, new %d", s, cfg.Prompt, cfg.New)
	}
	t0 := time.Now()
	m := newBenchModel(c, s, cfg.LoRARank, cfg.Seed+1)
	m.tc1 = true // batch 1 through the tensor-core step (v12's default; the gemvx step is a variant)
	if err := c.Sync(); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "random NF4 %s on %s: %.2f GB read per decode step, built in %.1fs\n",
		s.Name, c.Device(), float64(m.bytes)/1e9, time.Since(t0).Seconds())
	rng := rand.New(rand.NewPCG(cfg.Seed, 99))
	batches := append([]int(nil), cfg.Batches...)
	sort.Ints(batches)
	var out []BenchResult
	for _, B := range batches {
		r, err := m.run(cfg, B, rng, log)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (m *benchModel) run(cfg BenchConfig, B int, rng *rand.Rand, log io.Writer) (r BenchResult, err error) {
	stage := "setup"
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
		if err != nil {
			err = fmt.Errorf("batch %d, %s: %w", B, stage, err)
		}
	}()
	c, s := m.c, m.s
	P, N := cfg.Prompt, cfg.New
	span := P + N
	kvd := s.KVHeads * (s.Hidden / s.Heads)
	for _, l := range m.layers {
		l.kc, l.vc = c.newT(backend.F16, B, span, kvd), c.newT(backend.F16, B, span, kvd)
	}
	b := m.bufs(B*P, B)
	if B <= 16 { // the multi-weight products of the fused step (<= 4 tokens) and of step (<= 16)
		rank := 0
		if B <= gemvMaxTokens {
			rank = cfg.LoRARank
		}
		func() {
			defer c.bind()()
			m.multi(b, rank)
		}()
	}
	defer func() {
		for _, t := range []*Tensor{b.ids, b.seq, b.pos, b.last, b.next, b.x, b.xn, b.q, b.k, b.v, b.att, b.g, b.u, b.h, b.logits,
			b.xn16, b.att16, b.g16, b.sw} {
			c.Free(t)
		}
		for _, l := range m.layers {
			c.Free(l.kc)
			c.Free(l.vc)
			func() {
				defer c.bind()()
				for _, mg := range []*multiGemv{l.qkv, l.gu, l.guLoRA, l.downLoRA, l.downChain, l.downFused} {
					mg.free()
				}
				if l.downSync != 0 {
					cu.MemFree(l.downSync)
				}
			}()
			l.qkv, l.gu, l.guLoRA, l.downLoRA, l.downChain, l.downFused, l.downSync = nil, nil, nil, nil, nil, nil, 0
		}
	}()
	// prefill: B prompts of P random tokens, concatenated
	ids, seq, pos, last := make([]int32, B*P), make([]int32, B*P), make([]int32, B*P), make([]int32, B)
	for i := range ids {
		ids[i], seq[i], pos[i] = int32(rng.IntN(s.Vocab)), int32(i/P), int32(i%P)
	}
	for i := range last {
		last[i] = int32(i*P + P - 1)
	}
	// the prefill step's inputs; decode overwrites the first B of seq, pos
	// and last, so every prefill sets them again
	setPrefill := func() {
		c.SetInt32(b.ids, ids)
		c.SetInt32(b.seq, seq)
		c.SetInt32(b.pos, pos)
		c.SetInt32(b.last, last)
	}
	prefill := func() float64 {
		setPrefill()
		must("sync", c.Sync())
		t := time.Now()
		m.step(b, b.ids, B*P, B, false)
		must("sync", c.Sync())
		return time.Since(t).Seconds()
	}
	stage = "prefill"
	prefill() // warm-up: module load, first launches
	tp := min(prefill(), prefill())

	// decode: one token per sequence, its input the previous greedy token;
	// captured once as a CUDA graph that also advances the positions.
	dseq, dpos, dlast := make([]int32, B), make([]int32, B), make([]int32, B)
	for i := range dseq {
		dseq[i], dpos[i], dlast[i] = int32(i), int32(P), int32(i)
	}
	decode := func(lora bool) (float64, error) {
		c.SetInt32(c.view(b.seq, B), dseq)
		c.SetInt32(c.view(b.last, B), dlast)
		fused := m.fused(B)
		g, err := c.Capture(func() {
			if fused {
				m.stepFused(b, b.next, B, lora)
			} else {
				m.step(b, b.next, B, B, lora)
			}
			c.launch("inc_i32", 1, 1, 1, max(32, (B+31)/32*32), 0, c.view(b.pos, B).ptr, B)
		})
		if err != nil {
			return 0, err
		}
		defer g.Destroy()
		c.SetInt32(c.view(b.pos, B), dpos)
		for i := 0; i < 2; i++ { // warm-up
			g.Replay()
		}
		if err := c.Sync(); err != nil {
			return 0, fmt.Errorf("graph replay: %w", err)
		}
		c.SetInt32(c.view(b.pos, B), dpos)
		must("sync", c.Sync())
		t := time.Now()
		for i := 0; i < N; i++ {
			g.Replay()
		}
		if err := c.Sync(); err != nil {
			return 0, err
		}
		return time.Since(t).Seconds(), nil
	}
	setPrefill()
	m.step(b, b.ids, B*P, B, false) // refill the cache after the timing runs
	must("sync", c.Sync())
	stage = "decode"
	td, err := decode(false)
	if err != nil {
		return r, err
	}
	r = BenchResult{Device: c.Device(), Shape: s.Name, Quant: "nf4", Batch: B, Prompt: P, New: N,
		PrefillSeconds: tp, PrefillTokS: float64(B*P) / tp, DecodeSeconds: td, DecodeTokS: float64(B*N) / td,
		StepMs: td / float64(N) * 1e3, WeightBytes: m.bytes, MemUsedBytes: c.MemUsed(), Step: m.stepName(B)}
	// bytes per step: the weights once, and each sequence's KV cache up to
	// its (average) position, fp16
	kvBytes := int64(B) * int64(s.Layers) * 2 * int64(P+N/2) * int64(kvd) * 2
	r.BandwidthBPS = float64(m.bytes+kvBytes) / (td / float64(N))
	r.BandwidthShare = r.BandwidthBPS / cfg.PeakBytesPS
	// variants of the same decode, side by side: ms a step and the ratio to
	// the default's
	// variants of the same decode, side by side: the best of two runs of
	// the variant, each followed by one of the default, so that a clock or
	// a neighbour's drift does not land on one side
	vre, err := regexp.Compile(cfg.Variants)
	if err != nil {
		return r, fmt.Errorf("bench: variants %q: %w", cfg.Variants, err)
	}
	base := "default" // what the variants below are compared with
	vlora := false    // the variants below decode with the adapter
	variant := func(name string, set func(), reset func()) {
		if !vre.MatchString(name) {
			return
		}
		tv, t0 := math.Inf(1), math.Inf(1)
		for rep := 0; rep < 2; rep++ {
			set()
			t, err := decode(vlora)
			reset()
			must("decode "+name, err)
			tv = min(tv, t)
			t, err = decode(vlora)
			must("decode", err)
			t0 = min(t0, t)
		}
		fmt.Fprintf(log, "batch %3d: decode %-34s %.3f ms/step (%s %.3f: %.3fx)\n", B, name,
			tv/float64(N)*1e3, base, t0/float64(N)*1e3, tv/t0)
	}
	if c.pdl {
		variant("without PDL", func() { c.pdl = false }, func() { c.pdl = true })
		def := c.pdlSkip
		variant("with PDL for every kernel", func() { c.pdlSkip = nil }, func() { c.pdlSkip = def })
		attention := map[string]bool{"rope": true, "kv_store_f16": true, "attention_f16": true, "attention_split_f16": true}
		for k := range def {
			attention[k] = true
		}
		variant("without PDL for attention too", func() { c.pdlSkip = attention }, func() { c.pdlSkip = def })
	}
	if B <= 16 {
		variant("with v5's products", func() { c.gemvOld = true }, func() { c.gemvOld = false })
	}
	if B == 1 {
		variant("through the gemvx step (v11's default)", func() { m.tc1 = false }, func() { m.tc1 = true })
		variant("through the tensor-core step, exact weight rounding", func() { m.tcExact = true }, func() { m.tcExact = false })
		variant("through the tensor-core step, norms and SwiGLU apart", func() { m.tcApart = true }, func() { m.tcApart = false })
		variant("through the tensor-core step, RoPE apart", func() { m.tcRopeApart = true }, func() { m.tcRopeApart = false })
		variant("through the tensor-core step, down through runTC", func() { m.tcDownFused = true }, func() { m.tcDownFused = false })
		// the gemvx step's variants, against the gemvx step
		def := m.tc1
		m.tc1, base = false, "gemvx step"
		variant("with 4-row gemvx, 2 blocks a SM", func() { c.gx4 = true }, func() { c.gx4 = false })
		variant("with 8-warp gemvx blocks (v7)", func() { c.gx8 = true }, func() { c.gx8 = false })
		variant("with 12-warp gemvx blocks everywhere", func() { c.gxNoFit = true }, func() { c.gxNoFit = false })
		variant("with block-wide gemvx barriers (v7)", func() { c.gxBlockBar = true }, func() { c.gxBlockBar = false })
		variant("with the gemvx byte table copied in", func() { c.gxCopyTab = true }, func() { c.gxCopyTab = false })
		variant("with v9's gemvx shared memory request (92 KB of L1)", func() { c.gxV9Smem = true }, func() { c.gxV9Smem = false })
		variant("with RoPE and the KV store in the q,k,v product", func() { c.gxRope = true }, func() { c.gxRope = false })
		variant("without paired gate/up rows (SwiGLU in down)", func() { c.gxNoPair = true }, func() { c.gxNoPair = false })
		variant("with staged gemvx codes (bulk copies)", func() { c.gxStaged = true }, func() { c.gxStaged = false })
		variant("with staged gemvx codes, all first stages before x", func() { c.gxStaged, c.gxEarly = true, true },
			func() { c.gxStaged, c.gxEarly = false, false })
		variant("with staged gemvx codes, 2 stages a row group", func() { c.gxStaged, c.gxTwo = true, true },
			func() { c.gxStaged, c.gxTwo = false, false })
		m.tc1, base = def, "default"
	}
	variant("without the attention's cache prefetch", func() { c.attNoPrefetch = true }, func() { c.attNoPrefetch = false })
	if B == 1 || B == 16 {
		def := c.att
		splits := []attSplit{{2, 4}, {8, 4}, {16, 16}}
		if B == 1 { // 32 pairs: 16 splits (the most the cache length allows) by default, 9 and 5 here
			splits = []attSplit{{8, 2}, {8, 1}}
		}
		for _, a := range splits {
			variant(fmt.Sprintf("with attention split below %d pairs an SM, %d blocks", a.pairsPerSM, a.blocksPerSM),
				func() { c.att = a }, func() { c.att = def })
		}
	}
	if B == 1 || B == 16 { // the step's time by kind of kernel, each over every layer (weights from HBM)
		for _, tc := range []bool{false, true} {
			if tc && B != 1 {
				continue
			}
			name := ""
			switch {
			case tc:
				name = "tensor-core step, "
			case B == 1:
				name = "gemvx step, "
			}
			for _, k := range stepKinds { // one run each: a breakdown, not a comparison
				def := m.tc1
				m.only, m.tc1 = k, tc
				t, err := decode(false)
				m.only, m.tc1 = "", def
				must("decode only "+k, err)
				fmt.Fprintf(log, "batch %3d: decode only %-29s %.3f ms/step (default %.3f: %.3fx)\n", B, name+k,
					t/float64(N)*1e3, r.StepMs, t/td)
			}
		}
	}
	if B == 1 { // the phase trace of the last gemvx launch of a kind, in the gemvx step (weights from HBM)
		m.log = log
		def := m.tc1
		m.tc1 = false
		for _, k := range []string{"qkv", "gate,up", "down"} {
			m.only, c.gxTrace = k, true
			_, err := decode(false)
			m.only, c.gxTrace = "", false
			must("decode traced "+k, err)
			m.printTrace(k + "@step")
		}
		m.tc1 = def
		m.profile(b, log)
	}
	if cfg.LoRARank > 0 && B == 1 {
		func() { // size the LoRA scratch outside the capture
			defer c.bind()()
			c.loraScratch(int64(2 * B * cfg.LoRARank))
		}()
		setPrefill()
		m.step(b, b.ids, B*P, B, false)
		stage = "decode with LoRA"
		tl, err := decode(true)
		if err != nil {
			return r, err
		}
		r.LoRARank, r.LoRADecodeTokS, r.LoRAOverhead = cfg.LoRARank, float64(B*N)/tl, tl/td-1
		if m.tc1 && m.tcLoRA() {
			vlora, base = true, "default with the adapter"
			variant("with the adapter, down's shrink in its own prologue (v12)", func() { m.tcDownJobs = true },
				func() { m.tcDownJobs = false })
			vlora, base = false, "default"
		}
		if m.tc1 { // the tensor-core step's adapter without one of its parts (wrong results; timing only)
			for _, p := range []struct {
				name string
				bit  int
			}{{"without waiting for the shrinks", 512}, {"without expands", 1024}, {"without shrinks or the wait", 512 | 2048},
				{"without staging b rows", 4096}, {"without any of them", 512 | 1024 | 2048 | 4096}} {
				c.tcProbe = p.bit
				t, err := decode(true)
				c.tcProbe = 0
				must("decode probe", err)
				fmt.Fprintf(log, "batch %3d: decode with the adapter, %-32s %.3f ms/step (%+.1f%% over none)\n",
					B, p.name, t/float64(N)*1e3, 100*(t/td-1))
			}
		}
		for _, k := range []string{"gate,up", "down"} { // where the adapter's cost goes
			m.only = k
			t0, err0 := decode(false)
			c.gxTrace = true
			t1, err1 := decode(true)
			c.gxTrace = false
			m.only = ""
			must("decode only "+k, errors.Join(err0, err1))
			fmt.Fprintf(log, "batch %3d: decode only %-8s %.3f ms/step, with the adapter %.3f (%+.1f%%)\n",
				B, k, t0/float64(N)*1e3, t1/float64(N)*1e3, 100*(t1/t0-1))
			if !m.tc1 {
				m.printTrace(k + "+LoRA@step")
			}
		}
	}
	fmt.Fprintf(log, "batch %3d: prefill %8.0f tok/s (%.3fs)  decode %7.1f tok/s (%.2f ms/step)  %.0f GB/s (%.0f%% of %.1f TB/s)  GPU mem %.2f GB",
		B, r.PrefillTokS, tp, r.DecodeTokS, r.StepMs, r.BandwidthBPS/1e9, 100*r.BandwidthShare, cfg.PeakBytesPS/1e12, float64(r.MemUsedBytes)/1e9)
	if r.LoRARank > 0 {
		fmt.Fprintf(log, "  LoRA r%d: %.1f tok/s (%+.1f%%)", r.LoRARank, r.LoRADecodeTokS, 100*r.LoRAOverhead)
	}
	fmt.Fprintln(log)
	return r, nil
}

// BenchReport is what WriteBenchReport stores: the configuration and one
// result per batch size.
type BenchReport struct {
	Benchmark string        `json:"benchmark"` // "generate"
	Device    string        `json:"device"`
	Date      string        `json:"date"` // RFC 3339, UTC
	Config    BenchConfig   `json:"config"`
	Results   []BenchResult `json:"results"`
}

// WriteBenchReport writes the report as indented JSON to path, atomically
// (a temporary file renamed into place).
func WriteBenchReport(path string, r BenchReport) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bench-*.json")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// traceGemvx runs nf4_gemvx once on w with its phase trace (mode bit 4)
// and prints, for the first and the last block, when each phase ended (us
// after the first block started): 1 first loads issued, 2 tables built,
// 3 x staged, 4 barrier passed, then per row block products, partial
// sums stored, barrier passed, combined; 23 end.
func (m *benchModel) traceGemvx(b *benchBufs, w *Tensor, name string) {
	c := m.c
	c.gxTrace = true
	for rep := 0; rep < 3; rep++ { // the last of three (warm)
		c.gemvx1(c.view(b.q, 1), c.view(b.xn, 1), w, c.productMode(false), loraEp{}, gemvFuse{})
	}
	c.gxTrace = false
	must("sync", c.Sync())
	m.printTrace(name)
}

// printTrace prints the phase trace of the last nf4_gemvx launch with mode
// bit 4 (see traceGemvx) and clears it.
func (m *benchModel) printTrace(name string) {
	c, log := m.c, m.log
	defer c.bind()()
	ptr, _, err := c.mod.Global("gx_trace")
	must("gx_trace", err)
	var tr [2][24]uint64
	must("cuMemcpyDtoH", cu.MemcpyDtoH(unsafe.Pointer(&tr[0][0]), ptr, int64(unsafe.Sizeof(tr))))
	for blk := 0; blk < 2; blk++ {
		line := fmt.Sprintf("  trace gemvx %-5s block %-5s", name, map[int]string{0: "first", 1: "last"}[blk])
		for k, t := range tr[blk] {
			if t != 0 && t >= tr[0][0] {
				line += fmt.Sprintf(" %d:%.2f", k, float64(t-tr[0][0])/1e3)
			}
		}
		fmt.Fprintln(log, line)
	}
	must("cuMemsetD8", cu.MemsetD8(ptr, 0, int64(unsafe.Sizeof(tr))))
	lp, _, err := c.mod.Global("gx_layout")
	must("gx_layout", err)
	var lay [4]uint32
	must("cuMemcpyDtoH", cu.MemcpyDtoH(unsafe.Pointer(&lay[0]), lp, 16))
	fmt.Fprintf(log, "  trace gemvx %-5s stages: %d a row group (%d before the table, %d after, %d bytes each)\n",
		name, lay[0], lay[1], lay[2], lay[3])
	pp, _, err := c.mod.Global("gx_ptrace")
	must("gx_ptrace", err)
	var pt [2][12]uint64
	must("cuMemcpyDtoH", cu.MemcpyDtoH(unsafe.Pointer(&pt[0][0]), pp, int64(unsafe.Sizeof(pt))))
	for blk := 0; blk < 2; blk++ { // the prologue: 1 located, 2 barriers made, 3 stages issued, 4 loads issued,
		// 5 previous kernel done, 6 x requested, 7 table built, 8 x staged, 9 norm's barrier; 10 first shrink
		// published (first block), 11 every shrink seen
		line := fmt.Sprintf("  trace gemvx %-5s prologue %-5s", name, map[int]string{0: "first", 1: "last"}[blk])
		for k, t := range pt[blk] {
			if t != 0 && t >= pt[blk][0] {
				line += fmt.Sprintf(" %d:%.2f", k, float64(t-pt[blk][0])/1e3)
			}
		}
		fmt.Fprintln(log, line)
	}
	must("cuMemsetD8", cu.MemsetD8(pp, 0, int64(unsafe.Sizeof(pt))))
}

// probeCard prints the SM clock and the latency of a dependent global load
// (a chain over 64 MB, so each step misses the L2) and of an L2 hit (4 KB).
func (m *benchModel) probeCard(log io.Writer) {
	c := m.c
	for _, span := range []int{1 << 10, 16 << 20} { // u32 entries: 4 KB, 64 MB
		chain := make([]int32, span)
		rng := rand.New(rand.NewPCG(uint64(span), 5))
		perm := rng.Perm(span)
		for i := range perm { // one cycle through every entry
			chain[perm[i]] = int32(perm[(i+1)%span])
		}
		t := c.newT(backend.I32, span)
		c.SetInt32(t, chain)
		out := c.alloc(3 * 8)
		const steps = 2000
		c.launch("clock_probe", 1, 1, 1, 1, 0, t.ptr, steps, out) // warm
		c.launch("clock_probe", 1, 1, 1, 1, 0, t.ptr, steps, out)
		must("sync", c.Sync())
		var r [3]uint64
		must("cuMemcpyDtoH", cu.MemcpyDtoH(unsafe.Pointer(&r[0]), out, 24))
		fmt.Fprintf(log, "  probe %-12s dependent load %6.0f ns, %5.0f cycles; SM clock %4.0f MHz\n",
			map[int]string{1 << 10: "4 KB (L2)", 16 << 20: "64 MB (HBM)"}[span],
			float64(r[1])/steps, float64(r[0])/steps, float64(r[0])/float64(r[1])*1e3)
		cu.MemFree(out)
		c.Free(t)
	}
}

// profile prints the time of single kernels of a batch-1 decode step
// (each repeated back to back, launch overhead included) and of one step
// launched kernel by kernel instead of from a graph.
func (m *benchModel) profile(b *benchBufs, log io.Writer) {
	m.log = log
	c := m.c
	defer c.bind()()
	l := m.layers[0]
	x1 := func(t *Tensor) *Tensor { return c.view(t, 1) }
	// each kernel 50 times in one CUDA graph, replayed: GPU time per kernel,
	// graph-node gaps included, host launch cost excluded
	timeit := func(name string, bytes int64, fn func()) {
		const reps = 50
		g, err := c.Capture(func() {
			for i := 0; i < reps; i++ {
				fn()
			}
		})
		must("capture "+name, err)
		defer g.Destroy()
		g.Replay()
		must("sync", c.Sync())
		t := time.Now()
		for k := 0; k < 4; k++ {
			g.Replay()
		}
		must("sync", c.Sync())
		us := time.Since(t).Seconds() / (4 * reps) * 1e6
		fmt.Fprintf(log, "  profile b1 %-28s %8.1f us", name, us)
		if bytes > 0 {
			fmt.Fprintf(log, "  %6.0f GB/s", float64(bytes)/us/1e3)
		}
		fmt.Fprintln(log)
	}
	timeit("empty kernel", 0, func() { c.launch("inc_i32", 1, 1, 1, 32, 0, b.next.ptr, 0) })
	m.traceGemvx(b, l.wq, "q")
	m.traceGemvx(b, l.wg, "gate")
	m.probeCard(log)
	// a plain full-width read of the q weight's codes, and of all 7 of a layer's
	probe := c.alloc(4 * int64(4*c.sms))
	nb := func(t *Tensor) int64 { return int64(t.shape[0]) * int64(t.shape[1]) * 33 / 64 } // 4.125 bits
	for _, blocks := range []int{c.sms, 2 * c.sms, 4 * c.sms} {
		timeit(fmt.Sprintf("read 8.4 MB, %d blocks", blocks), int64(l.wq.shape[0])*int64(l.wq.shape[1])/2, func() {
			c.launch("read_probe", blocks, 1, 1, 512, 0, l.wq.q.packed, int64(l.wq.shape[0])*int64(l.wq.shape[1])/32, probe)
		})
	}
	timeit("read 22.5 MB, 264 blocks", int64(l.wg.shape[0])*int64(l.wg.shape[1])/2, func() {
		c.launch("read_probe", 2*c.sms, 1, 1, 512, 0, l.wg.q.packed, int64(l.wg.shape[0])*int64(l.wg.shape[1])/32, probe)
	})
	// a plain read from HBM: 1 GB, far beyond the L2
	big := c.alloc(1 << 30)
	for _, blocks := range []int{c.sms, 2 * c.sms, 8 * c.sms} {
		timeit(fmt.Sprintf("read 1 GB from HBM, %d blocks", blocks), 1<<30, func() {
			c.launch("read_probe", blocks, 1, 1, 512, 0, big, int64(1<<30/16), probe)
		})
	}
	cu.MemFree(big)
	cu.MemFree(probe)
	timeit("gemv q 4096x4096", nb(l.wq), func() { c.MatMul(x1(b.q), x1(b.xn), l.wq) })
	timeit("gemv gate 11008x4096", nb(l.wg), func() { c.MatMul(x1(b.g), x1(b.xn), l.wg) })
	timeit("gemv down 4096x11008", nb(l.wd), func() { c.MatMulAdd(x1(b.x), x1(b.g), l.wd) })
	timeit("gemv lm_head f16 32000x4096", int64(m.s.Vocab)*int64(m.s.Hidden)*2, func() { c.MatMul(x1(b.logits), x1(b.h), m.lmHead) })
	timeit("argmax of 32000 logits", 0, func() { c.Argmax(x1(b.next), x1(b.logits)) })
	c.half = true // the fp16-compute kernel: each weight rounded to half
	timeit("gemv(fp16 w) q 4096x4096", nb(l.wq), func() { c.MatMul(x1(b.q), x1(b.xn), l.wq) })
	timeit("gemv(fp16 w) down 4096x11008", nb(l.wd), func() { c.MatMulAdd(x1(b.x), x1(b.g), l.wd) })
	c.half = false
	x16 := func(t *Tensor) *Tensor { return c.view(t, 16) }
	c.gemvOld = true // v5's kernels: x in shared memory
	timeit("gemv(v5) q 4096x4096", nb(l.wq), func() { c.MatMul(x1(b.q), x1(b.xn), l.wq) })
	timeit("gemv(v5) gate 11008x4096", nb(l.wg), func() { c.MatMul(x1(b.g), x1(b.xn), l.wg) })
	timeit("gemv(v5) down 4096x11008", nb(l.wd), func() { c.MatMulAdd(x1(b.x), x1(b.g), l.wd) })
	timeit("16 tok mma(v5) q 4096x4096", nb(l.wq), func() { c.MatMul(x16(b.q), x16(b.xn), l.wq) })
	c.gemvOld = false
	qkv := c.newMultiGemv([]*Tensor{l.wq, l.wk, l.wv}, []*Tensor{b.q, b.k, b.v}, nil)
	timeit("gemvm q,k,v + rmsnorm", 3*nb(l.wq), func() { qkv.run(c, x1(b.x), false, gemvFuse{normw: l.attnNorm.ptr, eps: 1e-5}) })
	cu.MemFree(qkv.descs)
	// the LoRA's cost in the fused step's two products that carry it
	nrm := gemvFuse{normw: l.mlpNorm.ptr, eps: 1e-5}
	if l.gu != nil {
		timeit("gemvm gate,up + rmsnorm", 2*nb(l.wg), func() { l.gu.run(c, x1(b.x), false, nrm) })
	}
	if l.guLoRA != nil {
		timeit("  the same + LoRA r16", 2*nb(l.wg), func() { l.guLoRA.run(c, x1(b.x), false, nrm) })
	}
	timeit("gemv down + SwiGLU", nb(l.wd), func() { c.gemvFused(x1(b.x), x1(b.g), l.wd, true, nil, gemvFuse{x2: b.u.ptr}) })
	if l.downSync != 0 {
		r := l.lora[2][0].shape[0]
		ed := &loraEp{b: l.lora[2][1].ptr, t: c.loraT, a: l.lora[2][0].ptr, sync: l.downSync, r: r, stride: r, scale: 2}
		timeit("  the same + LoRA r16", nb(l.wd), func() { c.gemvFused(x1(b.x), x1(b.g), l.wd, true, ed, gemvFuse{x2: b.u.ptr}) })
	}
	timeit("16 tok mma q 4096x4096", nb(l.wq), func() { c.MatMul(x16(b.q), x16(b.xn), l.wq) })
	timeit("16 tok mma gate 11008x4096", nb(l.wg), func() { c.MatMul(x16(b.g), x16(b.xn), l.wg) })
	timeit("16 tok mma down 4096x11008", nb(l.wd), func() { c.MatMulAdd(x16(b.x), x16(b.g), l.wd) })
	// one token on the tensor cores, x in half (the tensor-core step's
	// products)
	// (exact: each weight rounded to half; post: post-scaled, nf4_mmaxp_8)
	for _, post := range []bool{false, true} {
		name := map[bool]string{false: "exact", true: "post"}[post]
		mm := func(d, x, w *Tensor, add bool) func() {
			return func() { c.mmax(x1(d), c.view(x, 1), w, 1, w.shape[0], w.shape[1], c.productMode(add), post) }
		}
		timeit("1 tok mma "+name+" q 4096x4096", nb(l.wq), mm(b.q, b.xn16, l.wq, false))
		timeit("1 tok mma "+name+" gate 11008x4096", nb(l.wg), mm(b.g, b.xn16, l.wg, false))
		timeit("1 tok mma "+name+" down 4096x11008", nb(l.wd), mm(b.x, b.g16, l.wd, true))
		if l.gu != nil {
			timeit("1 tok mma "+name+" gate,up+norm+SwiGLU", 2*nb(l.wg), func() {
				l.gu.runTC(c, x1(b.x), tcOpts{norm: gemvFuse{normw: l.mlpNorm.ptr, eps: 1e-5}, h: c.view(b.g16, 1), post: post})
			})
		}
		if l.guLoRA == nil || !post {
			continue
		}
		// the adapter's products (its cost: against the lines above)
		gu := func(next *multiGemv) func() {
			return func() {
				l.guLoRA.runTC(c, x1(b.x), tcOpts{norm: gemvFuse{normw: l.mlpNorm.ptr, eps: 1e-5}, h: c.view(b.g16, 1), post: true, next: next})
			}
		}
		down := func(mg *multiGemv) func() {
			return func() { mg.runTC(c, c.view(b.g16, 1), tcOpts{post: true, add: true}) }
		}
		timeit("  the same + LoRA r16", 2*nb(l.wg), gu(nil))
		timeit("  the same, down's shrink chained", 2*nb(l.wg), gu(l.downChain))
		timeit("1 tok mma post down through runTC", nb(l.wd), down(l.downFused))
		timeit("  the same + LoRA r16 (own shrink)", nb(l.wd), down(l.downLoRA))
		timeit("  the same + LoRA r16 (chained)", nb(l.wd), down(l.downChain))
	}
	timeit("attention L=256", 0, func() {
		c.Attention(x1(b.att), x1(b.q), x1(b.k), x1(b.v), l.kc, l.vc, x1(b.seq), x1(b.pos), m.s.Heads, m.s.KVHeads)
	})
	timeit("rmsnorm", 0, func() { c.RMSNorm(x1(b.xn), x1(b.x), l.attnNorm, 1e-5) })
	t := time.Now()
	for i := 0; i < 10; i++ {
		m.step(b, b.next, 1, 1, false)
	}
	must("sync", c.Sync())
	fmt.Fprintf(log, "  profile b1 %-28s %8.1f us\n", "decode step, no graph", time.Since(t).Seconds()/10*1e6)
}
