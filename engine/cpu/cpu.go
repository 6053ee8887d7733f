// Package cpu is the pure-Go implementation of backend.Backend.
//
// Tensors live in Go slices. Ops with enough work are split across
// Options.Threads goroutines (all cores by default); small ops run on the
// calling goroutine, because for the tiny models a goroutine hand-off costs
// more than the arithmetic. Under Options.Compute == backend.F16 every op
// rounds its output to half precision, and NF4 weights are dequantized to
// half before their products, emulating fp16 compute as bitsandbytes does it.
package cpu

import (
	"fmt"
	"runtime"
	"sync"

	"loramix/engine/backend"
	"loramix/engine/dtype"
	"loramix/engine/nf4"
)

// Options configures a CPU backend.
type Options struct {
	Threads int           // worker goroutines; 0 means runtime.GOMAXPROCS(0)
	Compute backend.DType // F32 (default) or F16 (outputs rounded to half)
}

// CPU is the CPU backend. Use it from one goroutine at a time.
type CPU struct {
	threads int
	half    bool
	scratch [][]float32 // per worker
	lora    []float32   // AddLoRA's (k, r) intermediate
	xd      []float32   // MatMul's deinterleaved x for the NF4 kernels
	work    chan task   // the worker pool's queue, started on first use
	wg      sync.WaitGroup
	ropeT   *ropeTable
}

var _ backend.Backend = (*CPU)(nil)

// New returns a CPU backend.
func New(o Options) *CPU {
	t := o.Threads
	if t <= 0 {
		t = runtime.GOMAXPROCS(0)
	}
	if o.Compute != backend.F32 && o.Compute != backend.F16 {
		panic(fmt.Sprintf("cpu: compute dtype %v not supported", o.Compute))
	}
	return &CPU{threads: t, half: o.Compute == backend.F16, scratch: make([][]float32, t)}
}

// Name returns "cpu".
func (c *CPU) Name() string { return "cpu" }

// Threads returns the number of worker goroutines.
func (c *CPU) Threads() int { return c.threads }

// Tensor is the CPU tensor: exactly one of the data slices is set.
type Tensor struct {
	shape []int
	dt    backend.DType
	F32   []float32
	F16   []uint16
	I32   []int32
	Q     *nf4.Tensor
}

// Shape returns the tensor's shape.
func (t *Tensor) Shape() []int { return t.shape }

// DType returns the tensor's element type.
func (t *Tensor) DType() backend.DType { return t.dt }

func ct(t backend.Tensor) *Tensor {
	c, ok := t.(*Tensor)
	if !ok {
		panic(fmt.Sprintf("cpu: tensor of type %T is not a CPU tensor", t))
	}
	return c
}

// New returns a zeroed tensor.
func (c *CPU) New(dt backend.DType, shape ...int) backend.Tensor {
	n := backend.Elements(shape)
	t := &Tensor{shape: append([]int(nil), shape...), dt: dt}
	switch dt {
	case backend.F32:
		t.F32 = make([]float32, n)
	case backend.F16:
		t.F16 = make([]uint16, n)
	case backend.I32:
		t.I32 = make([]int32, n)
	default:
		panic(fmt.Sprintf("cpu: New: dtype %v", dt))
	}
	return t
}

// NF4 wraps a quantized weight; q is used in place.
func (c *CPU) NF4(q *nf4.Tensor) backend.Tensor {
	return &Tensor{shape: []int{q.Rows, q.Cols}, dt: backend.NF4, Q: q}
}

// SetFloat32 copies src into an F32 or F16 tensor.
func (c *CPU) SetFloat32(t backend.Tensor, src []float32) {
	x := ct(t)
	switch x.dt {
	case backend.F32:
		mustLen("SetFloat32", len(src), len(x.F32))
		copy(x.F32, src)
	case backend.F16:
		mustLen("SetFloat32", len(src), len(x.F16))
		for i, v := range src {
			x.F16[i] = dtype.F32ToF16(v)
		}
	default:
		panic(fmt.Sprintf("cpu: SetFloat32 into %v tensor", x.dt))
	}
}

// SetInt32 copies src into an I32 tensor.
func (c *CPU) SetInt32(t backend.Tensor, src []int32) {
	x := ct(t)
	if x.dt != backend.I32 {
		panic(fmt.Sprintf("cpu: SetInt32 into %v tensor", x.dt))
	}
	mustLen("SetInt32", len(src), len(x.I32))
	copy(x.I32, src)
}

// Float32 copies an F32 or F16 tensor into dst.
func (c *CPU) Float32(dst []float32, t backend.Tensor) {
	x := ct(t)
	switch x.dt {
	case backend.F32:
		mustLen("Float32", len(dst), len(x.F32))
		copy(dst, x.F32)
	case backend.F16:
		mustLen("Float32", len(dst), len(x.F16))
		for i, h := range x.F16 {
			dst[i] = f16[h]
		}
	default:
		panic(fmt.Sprintf("cpu: Float32 from %v tensor", x.dt))
	}
}

// View returns the first rows rows of t.
func (c *CPU) View(t backend.Tensor, rows int) backend.Tensor {
	x := ct(t)
	if x.dt == backend.NF4 || len(x.shape) == 0 || rows < 0 || rows > x.shape[0] {
		panic(fmt.Sprintf("cpu: View of %d rows of %v %v", rows, x.dt, x.shape))
	}
	shape := append([]int{rows}, x.shape[1:]...)
	n := backend.Elements(shape)
	v := &Tensor{shape: shape, dt: x.dt}
	switch x.dt {
	case backend.F32:
		v.F32 = x.F32[:n:n]
	case backend.F16:
		v.F16 = x.F16[:n:n]
	case backend.I32:
		v.I32 = x.I32[:n:n]
	}
	return v
}

// Free drops the tensor's memory (the garbage collector reclaims it).
func (c *CPU) Free(t backend.Tensor) {
	x := ct(t)
	x.F32, x.F16, x.I32, x.Q = nil, nil, nil, nil
}

func mustLen(op string, got, want int) {
	if got != want {
		panic(fmt.Sprintf("cpu: %s: %d values for a tensor of %d elements", op, got, want))
	}
}

// f16 maps every half-precision bit pattern to its float32 value.
var f16 = func() []float32 {
	t := make([]float32, 1<<16)
	for i := range t {
		t[i] = dtype.F16ToF32(uint16(i))
	}
	return t
}()

// minWork is the number of multiply-adds below which an op runs on the
// calling goroutine.
const minWork = 1 << 15

// task is one chunk of a parallel op, run by a pool worker.
type task struct {
	fn        func(worker, lo, hi int)
	w, lo, hi int
	wg        *sync.WaitGroup
}

// startPool starts threads-1 worker goroutines (the caller runs the first
// chunk itself); they end when the backend is garbage collected.
func (c *CPU) startPool() {
	c.work = make(chan task, c.threads)
	for i := 1; i < c.threads; i++ {
		go func(work <-chan task) {
			for t := range work {
				t.fn(t.w, t.lo, t.hi)
				t.wg.Done()
			}
		}(c.work)
	}
	runtime.AddCleanup(c, func(work chan task) { close(work) }, c.work)
}

// parallel calls fn(worker, lo, hi) over a split of [0, n) into at most
// c.threads contiguous chunks, each a multiple of align items (except the
// last), and waits. work is the cost of one item, in multiply-adds.
func (c *CPU) parallel(n, work, align int, fn func(worker, lo, hi int)) {
	chunks := c.threads
	if n*work < minWork || chunks == 1 || n <= align {
		fn(0, 0, n)
		return
	}
	per := (n + chunks - 1) / chunks
	per = (per + align - 1) / align * align
	if per >= n {
		fn(0, 0, n)
		return
	}
	if c.work == nil {
		c.startPool()
	}
	w := 1
	for lo := per; lo < n; lo += per {
		c.wg.Add(1)
		c.work <- task{fn, w, lo, min(lo+per, n), &c.wg}
		w++
	}
	fn(0, 0, per)
	c.wg.Wait()
}

// buf returns worker w's scratch of at least n floats.
func (c *CPU) buf(w, n int) []float32 {
	if cap(c.scratch[w]) < n {
		c.scratch[w] = make([]float32, n)
	}
	return c.scratch[w][:n]
}

// round16 rounds x to half precision in place when computing in F16.
func (c *CPU) round16(x []float32) {
	if !c.half {
		return
	}
	for i, v := range x {
		x[i] = f16[dtype.F32ToF16(v)]
	}
}
