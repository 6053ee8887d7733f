// Package backend is the boundary between the model code (engine/llama) and
// the machines it runs on (engine/cpu, the CUDA backend).
//
// The model never touches tensor memory. It asks a Backend for tensors, fills
// them from the host, and calls the few ops a Llama decoder needs; each op
// overwrites (or, where it says so, adds into) its dst argument, which is
// allocated by the caller. Shapes are row-major; the comment on each op
// gives them, with n the number of tokens in the step.
//
// Tokens of a step may come from several sequences at different positions:
// the I32 tensors seq (n) and pos (n) say, for each token, which KV-cache
// slot (sequence) it belongs to and its position in that sequence. That one
// convention covers prefill of prompts of different lengths (no padding) and
// batched decode (one token per sequence).
//
// Programmer errors (shape or dtype mismatches) panic with a "backend:" or
// backend-specific prefix. A Backend is used by one goroutine at a time; ops
// may run asynchronously, and Float32 waits for them.
//
// Optional fused kernels are capability interfaces (MatMulLoRA below) that
// the model type-asserts, falling back to the generic ops.
package backend

import "loramix/engine/nf4"

// DType is the element type of a tensor in backend memory.
type DType int

const (
	F32 DType = iota
	F16       // IEEE half; on the CPU a weight storage type (compute is F32)
	I32       // indices: token ids, positions, slots, rows
	NF4       // read-only weights made by Backend.NF4
)

func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case I32:
		return "I32"
	case NF4:
		return "NF4"
	}
	return "DType(?)"
}

// Tensor is a handle to backend memory holding a row-major tensor.
type Tensor interface {
	Shape() []int // the caller must not modify it
	DType() DType
}

// Backend allocates tensors and runs the ops of a Llama forward pass.
type Backend interface {
	// Name identifies the backend ("cpu", "cuda").
	Name() string

	// New returns a zeroed tensor of dtype F32, F16 or I32.
	New(dt DType, shape ...int) Tensor
	// NF4 uploads a quantized (out, in) weight; the result is an NF4 tensor
	// of shape (q.Rows, q.Cols) usable as the w of MatMul. q must not be
	// modified afterwards (a backend may keep referring to it).
	NF4(q *nf4.Tensor) Tensor
	// SetFloat32 copies len(src) == elements(t) values into t (F32 or F16;
	// F16 rounds to nearest even).
	SetFloat32(t Tensor, src []float32)
	// SetInt32 copies len(src) == elements(t) values into an I32 tensor.
	SetInt32(t Tensor, src []int32)
	// Float32 copies t (F32 or F16) into dst, len(dst) == elements(t),
	// after all pending ops finished.
	Float32(dst []float32, t Tensor)
	// View returns the first rows rows (along dim 0) of t, sharing memory.
	View(t Tensor, rows int) Tensor
	// Free releases t's memory; t and its views must not be used afterwards.
	Free(t Tensor)

	// Rows gathers rows: dst[i] = src[idx[i]].
	// dst (n, d) F32, src (m, d) F32 or F16, idx (n) I32 with 0 <= idx[i] < m.
	// Embedding lookup, and picking the last token of each sequence.
	Rows(dst, src, idx Tensor)

	// MatMul computes dst = x @ wᵀ.
	// dst (n, out) F32, x (n, in) F32, w (out, in) F32, F16 or NF4.
	// NF4 weights are dequantized exactly as nf4.Tensor.Dequantize does.
	MatMul(dst, x, w Tensor)

	// AddLoRA adds scale * (x @ aᵀ) @ bᵀ to the rows of dst listed in rows,
	// or to all rows when rows is nil.
	// dst (n, out) F32, x (n, in) F32, a (r, in) F32, b (out, r) F32,
	// rows (k) I32 with entries in [0, n).
	AddLoRA(dst, x, a, b Tensor, scale float32, rows Tensor)

	// RMSNorm computes dst[i] = x[i] / sqrt(mean(x[i]²) + eps) * w.
	// dst, x (n, d) F32 (dst may be x), w (d) F32 or F16.
	RMSNorm(dst, x, w Tensor, eps float32)

	// RoPE rotates x in place, Hugging Face Llama style (rotate_half: the
	// pairs are (j, j+headDim/2) within each head). Token i is at position
	// pos[i] * posScale (posScale = 1/factor under linear rope scaling); the
	// angle of pair j is position * theta^(-2j/headDim).
	// x (n, heads*headDim) F32, pos (n) I32.
	RoPE(x, pos Tensor, heads int, theta, posScale float32)

	// Attention first stores k[i] and v[i] into the caches at
	// (seq[i], pos[i]), then computes for each token i and query head h
	// softmax(q_h · K_g[0..pos[i]]ᵀ / sqrt(headDim)) @ V_g[0..pos[i]] over
	// the cache rows of slot seq[i] (causal), with KV head g = h / (heads/kvHeads).
	// dst, q (n, heads*headDim) F32; k, v (n, kvHeads*headDim) F32;
	// kc, vc (slots, maxLen, kvHeads*headDim) F32 or F16; seq, pos (n) I32
	// with pos[i] < maxLen. A slot's rows beyond pos[i] are ignored, so a
	// slot is reused by simply starting again at position 0.
	Attention(dst, q, k, v, kc, vc, seq, pos Tensor, heads, kvHeads int)

	// SiLUMul computes dst = silu(gate) * up, elementwise; silu(x) = x/(1+e^-x).
	// dst, gate, up (n, d) F32; dst may be gate or up.
	SiLUMul(dst, gate, up Tensor)

	// Add computes dst = a + b, elementwise. dst, a, b (n, d) F32; dst may be a or b.
	Add(dst, a, b Tensor)
}

// LoRA is one adapter's factors for one linear layer, for MatMulLoRA.
type LoRA struct {
	A, B  Tensor  // (r, in), (out, r) F32
	Scale float32 // alpha/r or alpha/sqrt(r)
	Rows  Tensor  // (k) I32 rows of x it applies to; nil for all
}

// MatMulLoRA is an optional fused kernel: dst = x @ wᵀ followed by AddLoRA
// for each element of loras, in one call. The model uses it when the backend
// has it and falls back to MatMul + AddLoRA otherwise.
type MatMulLoRA interface {
	MatMulLoRA(dst, x, w Tensor, loras []LoRA)
}

// Elements returns the number of elements of a tensor of the given shape.
func Elements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
