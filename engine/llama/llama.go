// Package llama is the Llama 2 decoder, written once against
// backend.Backend: embeddings, RMSNorm, rotary embeddings (rope_theta,
// linear scaling), attention with grouped KV heads and a KV cache, the
// SwiGLU MLP, lm_head (or the tied embeddings), and LoRA adapters applied on
// the fly (lora.go). generate.go decodes with it.
//
// One forward step takes n tokens from any number of sequences: token i is
// ids[i], in KV-cache slot seq[i], at position pos[i] (see engine/backend).
package llama

import (
	"fmt"

	"loramix/engine/adapter"
	"loramix/engine/backend"
	"loramix/engine/checkpoint"
	"loramix/engine/dtype"
	"loramix/engine/nf4"
)

// Quant is how the decoder's linear layers are stored.
type Quant string

// The storage choices for the decoder's linear layers. Embeddings, norms
// and lm_head are never quantized: they keep the checkpoint's precision
// (F16 stays F16, F32 and BF16 become F32), or F16 under QuantFP16.
const (
	NF4  Quant = "nf4"  // NF4 with double quantization, as bitsandbytes
	FP16 Quant = "fp16" // half precision
	FP32 Quant = "fp32" // single precision
)

// ParseQuant checks a --quant value.
func ParseQuant(s string) (Quant, error) {
	switch q := Quant(s); q {
	case NF4, FP16, FP32:
		return q, nil
	}
	return "", fmt.Errorf("quant %q: want nf4, fp16 or fp32", s)
}

// Options configures Load.
type Options struct {
	Quant     Quant // default FP32
	MaxTokens int   // the largest forward step; longer steps are split (default 256)
}

// Model is a loaded Llama model on a backend. Its methods must be called
// from one goroutine at a time.
type Model struct {
	Config *checkpoint.Config
	Quant  Quant
	b      backend.Backend

	embed  backend.Tensor // (vocab, hidden)
	layers []*Layer
	norm   backend.Tensor // (hidden)
	lmHead backend.Tensor // (vocab, hidden); the embeddings when tied

	adapters map[string]*adapter.Adapter
	active   string   // "" means the base model
	slot     []string // per cache slot: adapter name, "" for the active one

	maxTokens   int
	slots, span int // KV cache: slots (sequences) x span (positions)
	buf         buffers
	steps       map[int]*step // views of buf for a step of n tokens
	logitRows   int           // rows of buf.logits
	rowsHost    map[string][]int32
	wantHost    []int32
	pre         map[string]bool // weights stored in 4-bit by bitsandbytes
}

// Layer is one decoder layer.
type Layer struct {
	AttnNorm, MLPNorm                 backend.Tensor // (hidden) F32
	WQ, WK, WV, WO, WGate, WUp, WDown *Linear
	kc, vc                            backend.Tensor // (slots, span, kvHeads*headDim)
}

// Linear is a linear layer without bias, y = x Wᵀ, with the LoRA pairs
// of every loaded adapter that adapts it.
type Linear struct {
	Name    string         // the module name, e.g. "model.layers.0.mlp.gate_proj"
	Out, In int            // the weight's shape
	W       backend.Tensor // (Out, In) F32, F16 or NF4
	q       *nf4.Tensor    // the host copy of an NF4 weight, for merging
	loras   map[string]*lora
}

// linears lists a layer's linear layers in module order.
func (l *Layer) linears() []*Linear {
	return []*Linear{l.WQ, l.WK, l.WV, l.WO, l.WGate, l.WUp, l.WDown}
}

// buffers are the per-step tensors, allocated once for maxTokens rows.
type buffers struct {
	ids, seq, pos backend.Tensor            // (T) I32
	x, xn, o      backend.Tensor            // (T, hidden) residual stream, normed, projection out
	q, attn       backend.Tensor            // (T, heads*headDim)
	k, v          backend.Tensor            // (T, kvHeads*headDim)
	gate, up      backend.Tensor            // (T, intermediate)
	want          backend.Tensor            // (L) I32 rows wanted as logits
	h             backend.Tensor            // (L, hidden) their hidden states
	logits        backend.Tensor            // (L, vocab)
	rows          map[string]backend.Tensor // (T) I32 per adapter: the rows it applies to
}

// step holds views of the buffers for n tokens.
type step struct {
	n                 int
	ids, seq, pos     backend.Tensor
	x, xn, o, q, attn backend.Tensor
	k, v, gate, up    backend.Tensor
	groups            []group // the adapters of this step's tokens
}

// group is one adapter and the rows of the step it applies to (nil: all).
type group struct {
	name string
	rows backend.Tensor
}

// LoadDir builds a model from the Hugging Face checkpoint folder dir (its
// config.json and weights) as Load does, closing the weights afterwards.
func LoadDir(b backend.Backend, dir string, o Options) (*Model, error) {
	cfg, err := checkpoint.LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	w, err := checkpoint.OpenWeights(dir)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	return Load(b, cfg, w, o)
}

// Load builds a model from a checkpoint's config and weights. Linear layers
// of the decoder are quantized to NF4 or converted as o.Quant says; the
// weights are read once and may be closed afterwards.
func Load(b backend.Backend, cfg *checkpoint.Config, w checkpoint.Weights, o Options) (*Model, error) {
	if o.Quant == "" {
		o.Quant = FP32
	}
	if _, err := ParseQuant(string(o.Quant)); err != nil {
		return nil, err
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 256
	}
	pre := bnbWeights(w) // layers bitsandbytes saved in 4-bit, if any
	check := checkpoint.CheckWeights
	if len(pre) > 0 {
		check = func(c *checkpoint.Config, w checkpoint.Weights) error { return checkPrequantized(c, w, pre) }
	}
	if err := check(cfg, w); err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Quant: o.Quant, b: b, adapters: map[string]*adapter.Adapter{}, maxTokens: o.MaxTokens,
		steps: map[int]*step{}, rowsHost: map[string][]int32{}, pre: pre}
	var err error
	if m.embed, err = m.dense(w, checkpoint.TensorName(checkpoint.Embed, 0), false); err != nil {
		return nil, err
	}
	if m.norm, err = m.vector(w, checkpoint.TensorName(checkpoint.Norm, 0)); err != nil {
		return nil, err
	}
	m.lmHead = m.embed
	if !cfg.TieWordEmbeddings {
		if m.lmHead, err = m.dense(w, checkpoint.TensorName(checkpoint.LMHead, 0), false); err != nil {
			return nil, err
		}
	}
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		l := &Layer{}
		if l.AttnNorm, err = m.vector(w, checkpoint.TensorName(checkpoint.AttnNorm, i)); err != nil {
			return nil, err
		}
		if l.MLPNorm, err = m.vector(w, checkpoint.TensorName(checkpoint.MLPNorm, i)); err != nil {
			return nil, err
		}
		for _, r := range []struct {
			dst  **Linear
			role checkpoint.Role
		}{{&l.WQ, checkpoint.WQ}, {&l.WK, checkpoint.WK}, {&l.WV, checkpoint.WV}, {&l.WO, checkpoint.WO},
			{&l.WGate, checkpoint.WGate}, {&l.WUp, checkpoint.WUp}, {&l.WDown, checkpoint.WDown}} {
			if *r.dst, err = m.linear(w, checkpoint.TensorName(r.role, i)); err != nil {
				return nil, err
			}
		}
		m.layers = append(m.layers, l)
	}
	m.allocBuffers()
	return m, nil
}

// Backend returns the backend the model runs on.
func (m *Model) Backend() backend.Backend { return m.b }

// Layers returns the decoder layers.
func (m *Model) Layers() []*Layer { return m.layers }

// Linears returns every decoder linear layer, layer by layer.
func (m *Model) Linears() []*Linear {
	var out []*Linear
	for _, l := range m.layers {
		out = append(out, l.linears()...)
	}
	return out
}

// dense uploads a 2-D weight that stays 16/32-bit: F16 when the checkpoint
// stores F16 or the model is FP16, else F32.
func (m *Model) dense(w checkpoint.Weights, name string, decoder bool) (backend.Tensor, error) {
	v, shape, err := w.Float32(name)
	if err != nil {
		return nil, err
	}
	info, _ := w.Info(name)
	dt := backend.F32
	if m.Quant == FP16 || (!decoder && info.DType == dtype.F16) {
		dt = backend.F16
	}
	t := m.b.New(dt, shape...)
	m.b.SetFloat32(t, v)
	return t, nil
}

// vector uploads a norm weight as F32.
func (m *Model) vector(w checkpoint.Weights, name string) (backend.Tensor, error) {
	v, shape, err := w.Float32(name)
	if err != nil {
		return nil, err
	}
	t := m.b.New(backend.F32, shape...)
	m.b.SetFloat32(t, v)
	return t, nil
}

// linear loads a decoder linear layer, quantized as the model says.
func (m *Model) linear(w checkpoint.Weights, name string) (*Linear, error) {
	l := &Linear{Name: name[:len(name)-len(".weight")], loras: map[string]*lora{}}
	if m.pre[name] {
		return m.prequantized(w, name, l)
	}
	if m.Quant != NF4 {
		t, err := m.dense(w, name, true)
		if err != nil {
			return nil, err
		}
		l.W, l.Out, l.In = t, t.Shape()[0], t.Shape()[1]
		return l, nil
	}
	v, shape, err := w.Float32(name)
	if err != nil {
		return nil, err
	}
	l.Out, l.In = shape[0], shape[1]
	l.q = nf4.Quantize(v, l.Out, l.In)
	l.W = m.b.NF4(l.q)
	return l, nil
}

// prequantized loads a layer that bitsandbytes saved in 4-bit: as is under
// NF4, else dequantized to the model's precision.
func (m *Model) prequantized(w checkpoint.Weights, name string, l *Linear) (*Linear, error) {
	var shape []int
	for _, e := range m.Config.Expected() {
		if e.Name == name {
			shape = e.Shape
		}
	}
	q, err := readBnb(w, name, shape[0], shape[1])
	if err != nil {
		return nil, err
	}
	l.Out, l.In = shape[0], shape[1]
	if m.Quant == NF4 {
		l.q, l.W = q, m.b.NF4(q)
		return l, nil
	}
	v := make([]float32, l.Out*l.In)
	q.Dequantize(v)
	dt := backend.F32
	if m.Quant == FP16 {
		dt = backend.F16
	}
	l.W = m.b.New(dt, l.Out, l.In)
	m.b.SetFloat32(l.W, v)
	return l, nil
}

func (m *Model) allocBuffers() {
	c, b, T := m.Config, m.b, m.maxTokens
	m.logitRows = min(T, 64)
	m.wantHost = make([]int32, m.logitRows)
	m.buf = buffers{
		ids: b.New(backend.I32, T), seq: b.New(backend.I32, T), pos: b.New(backend.I32, T),
		x: b.New(backend.F32, T, c.HiddenSize), xn: b.New(backend.F32, T, c.HiddenSize), o: b.New(backend.F32, T, c.HiddenSize),
		q: b.New(backend.F32, T, c.QDim()), attn: b.New(backend.F32, T, c.QDim()),
		k: b.New(backend.F32, T, c.KVDim()), v: b.New(backend.F32, T, c.KVDim()),
		gate: b.New(backend.F32, T, c.IntermediateSize), up: b.New(backend.F32, T, c.IntermediateSize),
		want: b.New(backend.I32, m.logitRows), h: b.New(backend.F32, m.logitRows, c.HiddenSize),
		logits: b.New(backend.F32, m.logitRows, c.VocabSize),
		rows:   map[string]backend.Tensor{},
	}
}

// viewStep returns the views of the buffers for n tokens (made once per n).
func (m *Model) viewStep(n int) *step {
	if s, ok := m.steps[n]; ok {
		return s
	}
	b, u := m.b, &m.buf
	s := &step{n: n, ids: b.View(u.ids, n), seq: b.View(u.seq, n), pos: b.View(u.pos, n),
		x: b.View(u.x, n), xn: b.View(u.xn, n), o: b.View(u.o, n), q: b.View(u.q, n), attn: b.View(u.attn, n),
		k: b.View(u.k, n), v: b.View(u.v, n), gate: b.View(u.gate, n), up: b.View(u.up, n)}
	m.steps[n] = s
	return s
}

// Reserve makes the KV cache hold at least slots sequences of span
// positions each. Growing it discards what the cache held.
func (m *Model) Reserve(slots, span int) {
	if slots <= m.slots && span <= m.span {
		return
	}
	slots, span = max(slots, m.slots), max(span, m.span)
	for _, l := range m.layers {
		if l.kc != nil {
			m.b.Free(l.kc)
			m.b.Free(l.vc)
		}
		l.kc = m.b.New(backend.F32, slots, span, m.Config.KVDim())
		l.vc = m.b.New(backend.F32, slots, span, m.Config.KVDim())
	}
	m.slots, m.span = slots, span
	for len(m.slot) < slots {
		m.slot = append(m.slot, "")
	}
}

// Forward runs the tokens of one step through the model: token i is ids[i]
// of cache slot seq[i] at position pos[i]. Each slot's cache must already
// hold its positions below the smallest it gets here, and a slot's tokens
// must come in increasing position order. For the j-th entry of want (an
// index into ids) it writes the logits to dst[j*vocab : (j+1)*vocab].
// Steps longer than Options.MaxTokens are split.
func (m *Model) Forward(ids, seq, pos, want []int32, dst []float32) error {
	c := m.Config
	if len(seq) != len(ids) || len(pos) != len(ids) || len(dst) != len(want)*c.VocabSize {
		return fmt.Errorf("llama: Forward: %d ids, %d slots, %d positions, %d wanted, %d logits", len(ids), len(seq), len(pos), len(want), len(dst))
	}
	for i, id := range ids {
		if id < 0 || int(id) >= c.VocabSize {
			return fmt.Errorf("llama: token id %d outside the vocabulary of %d", id, c.VocabSize)
		}
		if seq[i] < 0 || int(seq[i]) >= m.slots || pos[i] < 0 || int(pos[i]) >= m.span {
			return fmt.Errorf("llama: token %d at slot %d position %d outside the KV cache (%d slots x %d positions)", i, seq[i], pos[i], m.slots, m.span)
		}
	}
	for j, i := range want {
		if i < 0 || int(i) >= len(ids) {
			return fmt.Errorf("llama: wanted row %d of %d tokens", i, len(ids))
		}
		if j > 0 && i <= want[j-1] {
			return fmt.Errorf("llama: wanted rows must increase")
		}
	}
	wi := 0
	for lo := 0; lo < len(ids); lo += m.maxTokens {
		hi := min(lo+m.maxTokens, len(ids))
		s := m.viewStep(hi - lo)
		m.b.SetInt32(s.ids, ids[lo:hi])
		m.b.SetInt32(s.seq, seq[lo:hi])
		m.b.SetInt32(s.pos, pos[lo:hi])
		m.setGroups(s, seq[lo:hi])
		m.forward(s)
		wj := wi
		for wj < len(want) && int(want[wj]) < hi {
			wj++
		}
		m.logits(s, want[wi:wj], int32(lo), dst[wi*c.VocabSize:wj*c.VocabSize])
		wi = wj
	}
	return nil
}

// forward runs the decoder over a step, leaving the last hidden states
// (before the final norm) in s.x.
func (m *Model) forward(s *step) {
	m.b.Rows(s.x, m.embed, s.ids) // (n, hidden)
	for _, l := range m.layers {
		m.layer(l, s)
	}
}

// layer is one decoder layer: x += Attention(RMSNorm(x)); x += MLP(RMSNorm(x)).
func (m *Model) layer(l *Layer, s *step) {
	b, c := m.b, m.Config
	eps := float32(c.RMSNormEps)

	b.RMSNorm(s.xn, s.x, l.AttnNorm, eps)
	m.apply(s.q, s.xn, l.WQ, s) // (n, heads*headDim)
	m.apply(s.k, s.xn, l.WK, s) // (n, kvHeads*headDim)
	m.apply(s.v, s.xn, l.WV, s)
	theta, posScale := float32(c.RopeTheta), float32(1/c.RopeFactor())
	b.RoPE(s.q, s.pos, c.NumAttentionHeads, theta, posScale)
	b.RoPE(s.k, s.pos, c.NumKeyValueHeads, theta, posScale)
	b.Attention(s.attn, s.q, s.k, s.v, l.kc, l.vc, s.seq, s.pos, c.NumAttentionHeads, c.NumKeyValueHeads)
	m.apply(s.o, s.attn, l.WO, s) // (n, hidden)
	b.Add(s.x, s.x, s.o)

	b.RMSNorm(s.xn, s.x, l.MLPNorm, eps)
	m.apply(s.gate, s.xn, l.WGate, s) // (n, intermediate)
	m.apply(s.up, s.xn, l.WUp, s)
	b.SiLUMul(s.gate, s.gate, s.up)
	m.apply(s.o, s.gate, l.WDown, s) // (n, hidden)
	b.Add(s.x, s.x, s.o)
}

// apply computes dst = x Wᵀ plus the LoRA update of each adapter of the step.
func (m *Model) apply(dst, x backend.Tensor, l *Linear, s *step) {
	var loras []backend.LoRA
	for _, g := range s.groups {
		if p := l.loras[g.name]; p != nil {
			loras = append(loras, backend.LoRA{A: p.a, B: p.b, Scale: p.scale, Rows: g.rows})
		}
	}
	if f, ok := m.b.(backend.MatMulLoRA); ok && len(loras) > 0 {
		f.MatMulLoRA(dst, x, l.W, loras)
		return
	}
	m.b.MatMul(dst, x, l.W)
	for _, p := range loras {
		m.b.AddLoRA(dst, x, p.A, p.B, p.Scale, p.Rows)
	}
}

// logits writes the vocab logits of the step's rows want (indices offset by
// base into the whole Forward call) into dst: final RMSNorm, then lm_head.
func (m *Model) logits(s *step, want []int32, base int32, dst []float32) {
	b, c := m.b, m.Config
	for lo := 0; lo < len(want); lo += m.logitRows {
		hi := min(lo+m.logitRows, len(want))
		k := hi - lo
		idx := m.b.View(m.buf.want, k)
		rel := m.wantHost[:k]
		for j := range rel {
			rel[j] = want[lo+j] - base
		}
		b.SetInt32(idx, rel)
		h, out := b.View(m.buf.h, k), b.View(m.buf.logits, k)
		b.Rows(h, s.x, idx)                            // (k, hidden)
		b.RMSNorm(h, h, m.norm, float32(c.RMSNormEps)) // (k, hidden)
		b.MatMul(out, h, m.lmHead)                     // (k, vocab)
		b.Float32(dst[lo*c.VocabSize:hi*c.VocabSize], out)
	}
}
