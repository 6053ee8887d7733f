//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"gorgonia.org/cu"
	"gorgonia.org/cu/nvrtc"

	"loramix/engine/backend"
	"loramix/engine/dtype"
	"loramix/engine/nf4"
)

// CUDA is the CUDA backend. Use it from one goroutine at a time; every
// method locks that goroutine to its OS thread while it talks to the driver.
type CUDA struct {
	ctx     cu.CUContext
	dev     cu.Device
	stream  cu.Stream
	mod     cu.Module
	fns     map[string]cu.Function
	half    bool
	dmap    cu.DevicePtr // nf4.DynamicMap(), 256 float32
	gtab    cu.DevicePtr // the one-token products' byte table (gemvxTable), for those that copy it in (staged, gxCopyTab)
	name    string
	arch    string
	sms     int
	maxSmem int // dynamic shared memory a block of the big-smem kernels may use
	// gxWindow is the shared memory before the dynamic part of the 8-row
	// one-token kernels' blocks (the reserved part and the least static
	// shared memory among them): gemvxPlan asks for what takes their byte
	// table from its 64 KB boundary to 128 KB, and no more
	gxWindow int
	loraT    cu.DevicePtr
	loraB    int64 // bytes in loraT
	ropeInv  map[ropeKey]cu.DevicePtr

	// the split attention's scratch (attScratch)
	attPart  cu.DevicePtr // partial (o, m, l) of each block
	attPartN int64        // floats in attPart
	attCount cu.DevicePtr // a counter per (token, head), zero between launches
	attCntN  int          // ints in attCount

	syncEach  bool            // LORAMIX_CUDA_SYNC=1: wait for each kernel and name the one that failed
	pdl       bool            // programmatic dependent launch (sm_90 on; LORAMIX_CUDA_PDL=0 turns it off)
	pdlSkip   map[string]bool // kernels launched without it even so (pdlSkipDefault)
	capturing bool

	// the dequantize-then-cuBLAS path for products of many tokens
	noCublas      bool     // LORAMIX_CUDA_NO_CUBLAS=1: tensor-core kernels only
	mmad          bool     // LORAMIX_CUDA_MMAD=1: nf4_mmad for 5..16 tokens (slower than nf4_mma_16 on an H100)
	gx4           bool     // nf4_gemvx with 4-row blocks up to 8192 inputs (the benchmark's variant)
	gx8           bool     // nf4_gemvx: 8-row blocks of row groups filling 8 warps, not 12 (v7; the benchmark's variant)
	gxNoFit       bool     // nf4_gemvx: 12 warps even where fewer take fewer rounds (the benchmark's variant)
	gxBlockBar    bool     // nf4_gemvx: block-wide barriers, not a row group's (v7; the benchmark's variant)
	gxStaged      bool     // nf4_gemvxt, codes staged by bulk copies, for the one-token products (the benchmark's variant)
	gxTrace       bool     // nf4_gemvx records its phase trace (mode bit 4; the benchmark's probe)
	gxEarly       bool     // nf4_gemvxt requests all its first stages before x, not one (the benchmark's variant)
	gxTwo         bool     // nf4_gemvxt with at most 2 stages a row group (the benchmark's variant)
	gxCopyTab     bool     // nf4_gemvx copies its byte table and dmap in by bulk copy (mode bit 8; the benchmark's variant)
	gxRope        bool     // the one-token step does RoPE and the KV store in the q,k,v product (the benchmark's variant)
	gxV9Smem      bool     // the 8-row gemvx asks for v9's shared memory (the benchmark's variant)
	gxNoPair      bool     // the one-token step keeps gate's and up's rows apart, SwiGLU in down (the benchmark's variant)
	tcProbe       int      // runTC's mode bits 9-12: the adapter's wait, expands, shrinks or staging left out (the benchmark's probes of their cost; wrong results)
	att           attSplit // when the decode attention splits positions (attSplitDefault)
	attNoPrefetch bool     // the split attention without its cache prefetch before the PDL wait (the benchmark's variant)
	gemvOld       bool     // v5's kernels (for comparison): nf4_gemv_1 for one token, nf4_mma_16 for 2-16
	blas          *cublas
	w16, x16      cu.DevicePtr // fp16 scratch: a chunk of weight rows; x
	w16N          int64        // bytes
	x16N          int64
	closed        bool
}

var _ backend.Backend = (*CUDA)(nil)

// Tensor is a CUDA tensor: device memory holding a row-major array, or the
// four parts of an NF4 weight.
type Tensor struct {
	shape []int
	dt    backend.DType
	ptr   cu.DevicePtr
	view  bool
	q     *nf4Dev
}

type nf4Dev struct {
	packed, qabs, absmax2 cu.DevicePtr
	offset                float32
}

// Shape returns the tensor's shape.
func (t *Tensor) Shape() []int { return t.shape }

// DType returns the tensor's element type.
func (t *Tensor) DType() backend.DType { return t.dt }

func (t *Tensor) elems() int { return backend.Elements(t.shape) }

func ct(t backend.Tensor) *Tensor {
	if t == nil {
		return nil
	}
	c, ok := t.(*Tensor)
	if !ok {
		panic(fmt.Sprintf("cuda: tensor of type %T is not a CUDA tensor", t))
	}
	return c
}

// bind locks the calling goroutine to its OS thread and makes the backend's
// context current there; call the returned function when done.
func (c *CUDA) bind() func() {
	runtime.LockOSThread()
	if c.closed {
		runtime.UnlockOSThread()
		panic("cuda: backend used after Close")
	}
	if err := cu.SetCurrentContext(c.ctx); err != nil {
		runtime.UnlockOSThread()
		panic(fmt.Sprintf("cuda: cuCtxSetCurrent: %v", err))
	}
	return runtime.UnlockOSThread
}

func must(what string, err error) {
	if err != nil {
		panic(fmt.Sprintf("cuda: %s: %v", what, err))
	}
}

// New creates a context on device o.Device, compiles (or loads from the
// cache) the kernels for its architecture and returns the backend.
func New(o Options) (b *CUDA, err error) {
	if o.Compute != backend.F32 && o.Compute != backend.F16 {
		return nil, fmt.Errorf("cuda: compute dtype %v not supported", o.Compute)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// gorgonia.org/cu calls cuInit when the package initializes (and exits
	// the process if that fails), so the driver is up here.
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: cuDeviceGetCount: %w", err)
	}
	if o.Device < 0 || o.Device >= n {
		return nil, fmt.Errorf("cuda: device %d not present (%d devices)", o.Device, n)
	}
	dev := cu.Device(o.Device)
	ctx, err := dev.MakeContext(cu.SchedAuto)
	if err != nil {
		return nil, fmt.Errorf("cuda: cuCtxCreate: %w", err)
	}
	c := &CUDA{ctx: ctx, dev: dev, half: o.Compute == backend.F16, fns: map[string]cu.Function{},
		syncEach: os.Getenv("LORAMIX_CUDA_SYNC") == "1", noCublas: os.Getenv("LORAMIX_CUDA_NO_CUBLAS") == "1",
		mmad: os.Getenv("LORAMIX_CUDA_MMAD") == "1"}
	defer func() {
		if err != nil {
			c.destroy()
		}
	}()
	if c.name, err = dev.Name(); err != nil {
		return nil, err
	}
	attrs, err := dev.Attributes(cu.ComputeCapabilityMajor, cu.ComputeCapabilityMinor, cu.MultiprocessorCount)
	if err != nil {
		return nil, fmt.Errorf("cuda: device attributes: %w", err)
	}
	c.arch = fmt.Sprintf("%d%d", attrs[0], attrs[1])
	// every kernel calls pdl_wait before it touches what earlier kernels
	// wrote (kernels/common.cuh), so each may be launched early
	c.pdl = attrs[0] >= 9 && driverVersion() >= 12030 && os.Getenv("LORAMIX_CUDA_PDL") != "0"
	c.pdlSkip = pdlSkipDefault
	c.att = attSplitDefault
	c.sms = attrs[2]
	if c.maxSmem, err = maxSmemOptin(o.Device); err != nil {
		return nil, err
	}
	if attrs[0] < 8 {
		return nil, fmt.Errorf("cuda: %s has compute capability %d.%d; the kernels need 8.0 or newer (mma.sync)", c.name, attrs[0], attrs[1])
	}
	if c.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return nil, fmt.Errorf("cuda: cuStreamCreate: %w", err)
	}
	ptx, err := kernelPTX(c.arch, o.KernelCache)
	if err != nil {
		return nil, err
	}
	if c.mod, err = cu.LoadData(ptx); err != nil {
		return nil, fmt.Errorf("cuda: loading kernels (cuModuleLoadData): %w", err)
	}
	for _, name := range kernelNames {
		f, err := c.mod.Function(name)
		if err != nil {
			return nil, fmt.Errorf("cuda: kernel %s: %w", name, err)
		}
		c.fns[name] = f
	}
	reserved, err := smemReserved(o.Device)
	if err != nil {
		return nil, err
	}
	static := -1
	for _, name := range kernelNames {
		// the 8-row kernels that put their table at a 64 KB boundary: plain
		// (_), paired (p) and RoPE (q); not staged (t) nor 4-row (4)
		if k := strings.TrimPrefix(name, "nf4_gemvxm"); k != name && strings.ContainsRune("_pq", rune(k[0])) {
			st, err := c.fns[name].Attribute(cu.SharedSizeBytes)
			if err != nil {
				return nil, fmt.Errorf("cuda: kernel %s: static shared memory: %w", name, err)
			}
			if static < 0 || st < static {
				static = st
			}
		}
	}
	c.gxWindow = reserved + static
	optin := c.maxSmem
	for _, name := range bigSmemKernels {
		dyn, err := setMaxDynamicSmem(c.fns[name], optin)
		if err != nil {
			return nil, fmt.Errorf("%w (kernel %s, %d bytes)", err, name, optin)
		}
		c.maxSmem = min(c.maxSmem, dyn)
	}
	dm := nf4.DynamicMap()
	if c.dmap, err = cu.MemAlloc(256 * 4); err != nil {
		return nil, err
	}
	if err = cu.MemcpyHtoD(c.dmap, unsafe.Pointer(&dm[0]), 256*4); err != nil {
		return nil, err
	}
	tab := gemvxTable()
	if c.gtab, err = cu.MemAlloc(int64(4 * len(tab))); err != nil {
		return nil, err
	}
	if err = cu.MemcpyHtoD(c.gtab, unsafe.Pointer(&tab[0]), int64(4*len(tab))); err != nil {
		return nil, err
	}
	return c, nil
}

// gemvxTable is the byte table of the one-token NF4 products: for each code
// byte b, 32 copies (one a lane, so that a warp's lookups hit distinct
// banks) of the pair (Code[b>>4], Code[b&15]), float32.
func gemvxTable() []float32 {
	t := make([]float32, 256*32*2)
	for b := 0; b < 256; b++ {
		for r := 0; r < 32; r++ {
			t[2*(32*b+r)], t[2*(32*b+r)+1] = nf4.Code[b>>4], nf4.Code[b&15]
		}
	}
	return t
}

var kernelNames = []string{
	"nf4_gemv_1", "nf4_gemv_2", "nf4_gemv_3", "nf4_gemv_4",
	"nf4_gemvm_1", "nf4_gemvm_2", "nf4_gemvm_3", "nf4_gemvm_4",
	"nf4_gemvxm_1", "nf4_gemvxm_1r", "nf4_gemvxmt_1", "nf4_gemvxmt_1r", "nf4_gemvxmp_1", "nf4_gemvxmp_1r", "nf4_gemvxmq_1", "nf4_gemvxm4_1", "nf4_gemvxm4_1r", "nf4_mmax_16", "nf4_mmaxm_16", "nf4_mmax_8", "nf4_mmaxm_8", "nf4_mmaxf_8", "nf4_mmaxp_8", "nf4_mmaxfp_8", "nf4_mmaxfl_8", "nf4_mmaxfpl_8", "nf4_mmaxflc_8", "nf4_mmaxfplc_8", "nf4_mmaxfld_8", "nf4_mmaxfpld_8",
	"f16_gemv_1", "f16_gemv_2", "f16_gemv_3", "f16_gemv_4",
	"nf4_mma_16", "nf4_mma_64", "nf4_mmad_8", "nf4_mmad_16", "f16_mma_16", "f16_mma_64", "round_f16", "nf4_dequant_f16", "f32_to_f16",
	"nf4_generic", "f16_generic", "f32_generic",
	"rows_f32", "rows_f16", "rmsnorm", "rmsnorm_zero", "rope", "kv_store_f32", "kv_store_f16",
	"attention_f32", "attention_f16", "attention_split_f32", "attention_split_f16", "silu_mul", "add", "lora_shrink", "lora_shrink2", "lora_shrink_f", "lora_expand", "rope_kv_f16",
	"argmax", "sample", "fill_bytes", "fill_uniform", "inc_i32", "read_probe", "clock_probe",
}

// bigSmemKernels take more than 48 KB of dynamic shared memory.
var bigSmemKernels = []string{
	"nf4_gemv_1", "nf4_gemv_2", "nf4_gemv_3", "nf4_gemv_4",
	"nf4_gemvm_1", "nf4_gemvm_2", "nf4_gemvm_3", "nf4_gemvm_4",
	"nf4_gemvxm_1", "nf4_gemvxm_1r", "nf4_gemvxmt_1", "nf4_gemvxmt_1r", "nf4_gemvxmp_1", "nf4_gemvxmp_1r", "nf4_gemvxmq_1", "nf4_gemvxm4_1", "nf4_gemvxm4_1r", "nf4_mmax_16", "nf4_mmaxm_16", "nf4_mmax_8", "nf4_mmaxm_8", "nf4_mmaxf_8", "nf4_mmaxp_8", "nf4_mmaxfp_8", "nf4_mmaxfl_8", "nf4_mmaxfpl_8", "nf4_mmaxflc_8", "nf4_mmaxfplc_8", "nf4_mmaxfld_8", "nf4_mmaxfpld_8",
	"f16_gemv_1", "f16_gemv_2", "f16_gemv_3", "f16_gemv_4", "attention_f32", "attention_f16",
}

// kernelPTX returns the kernels compiled for compute capability arch, from
// the disk cache when present, else compiled with NVRTC and cached.
func kernelPTX(arch, dir string) (string, error) {
	maj, min, err := nvrtc.Version()
	if err != nil {
		return "", fmt.Errorf("cuda: nvrtcVersion: %w", err)
	}
	key := CacheKey(arch, fmt.Sprintf("%d.%d", maj, min))
	if dir == "" {
		if ucd, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(ucd, "loramix", "kernels")
		}
	}
	path := ""
	if dir != "" {
		path = filepath.Join(dir, key+".ptx")
		if data, err := os.ReadFile(path); err == nil && len(data) > 0 {
			return string(data), nil
		}
	}
	prog, err := nvrtc.CreateProgram(Source(), "loramix.cu")
	if err != nil {
		return "", fmt.Errorf("cuda: nvrtcCreateProgram: %w", err)
	}
	defer prog.Destroy()
	if err := prog.Compile(CompileOptions(arch)...); err != nil {
		log, _ := prog.GetLog()
		return "", fmt.Errorf("cuda: compiling kernels for sm_%s: %w\n%s", arch, err, log)
	}
	ptx, err := prog.GetPTX()
	if err != nil {
		return "", fmt.Errorf("cuda: nvrtcGetPTX: %w", err)
	}
	if path != "" { // a cache that cannot be written only costs a recompile next time
		if os.MkdirAll(dir, 0o755) == nil {
			tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
			if os.WriteFile(tmp, []byte(ptx), 0o644) == nil {
				os.Rename(tmp, path)
			}
		}
	}
	return ptx, nil
}

// Name returns "cuda".
func (c *CUDA) Name() string { return "cuda" }

// Device returns the card's name and compute capability, e.g. "NVIDIA H100 80GB HBM3 (sm_90)".
func (c *CUDA) Device() string { return fmt.Sprintf("%s (sm_%s)", c.name, c.arch) }

// MemUsed returns the bytes of device memory in use on the card (by every
// process), from cuMemGetInfo.
func (c *CUDA) MemUsed() int64 {
	defer c.bind()()
	free, total, err := cu.MemInfo()
	must("cuMemGetInfo", err)
	return total - free
}

// Close releases the context and everything allocated in it.
func (c *CUDA) Close() error {
	if c.closed {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return c.destroy()
}

func (c *CUDA) destroy() error {
	c.closed = true
	return c.ctx.Destroy()
}

func dsize(dt backend.DType) int64 {
	switch dt {
	case backend.F32, backend.I32:
		return 4
	case backend.F16:
		return 2
	}
	panic(fmt.Sprintf("cuda: no element size for %v", dt))
}

func (c *CUDA) alloc(bytes int64) cu.DevicePtr {
	if bytes == 0 {
		bytes = 4
	}
	p, err := cu.MemAlloc(bytes)
	must(fmt.Sprintf("cuMemAlloc(%d bytes)", bytes), err)
	return p
}

// New returns a zeroed tensor.
func (c *CUDA) New(dt backend.DType, shape ...int) backend.Tensor {
	if dt == backend.NF4 {
		panic("cuda: New: NF4 tensors come from NF4")
	}
	defer c.bind()()
	t := &Tensor{shape: append([]int(nil), shape...), dt: dt}
	bytes := int64(t.elems()) * dsize(dt)
	t.ptr = c.alloc(bytes)
	must("cuMemsetD8", cu.MemsetD8(t.ptr, 0, max(bytes, 4)))
	return t
}

// NF4 uploads a quantized weight. The codes are addressed in 16-byte chunks,
// so the packed buffer is padded to a multiple of 16 bytes.
func (c *CUDA) NF4(q *nf4.Tensor) backend.Tensor {
	defer c.bind()()
	d := &nf4Dev{offset: q.Offset}
	d.packed = c.upload(unsafe.Pointer(&q.Packed[0]), int64(len(q.Packed)), (int64(len(q.Packed))+15)/16*16)
	d.qabs = c.upload(unsafe.Pointer(&q.QAbsmax[0]), int64(len(q.QAbsmax)), nf4Pad(int64(len(q.QAbsmax))))
	d.absmax2 = c.upload(unsafe.Pointer(&q.Absmax2[0]), 4*int64(len(q.Absmax2)), nf4Pad(4*int64(len(q.Absmax2))))
	return &Tensor{shape: []int{q.Rows, q.Cols}, dt: backend.NF4, q: d}
}

// nf4Pad is the allocation of an NF4 weight's absmax codes or group scales
// of n bytes: nf4_gemvxt copies 16-byte aligned windows of them, which may
// reach up to 16 bytes past the end.
func nf4Pad(n int64) int64 { return (n+15)/16*16 + 16 }

func (c *CUDA) upload(src unsafe.Pointer, n, alloc int64) cu.DevicePtr {
	p := c.alloc(alloc)
	if alloc > n {
		must("cuMemsetD8", cu.MemsetD8(p, 0, alloc))
	}
	must("cuMemcpyHtoD", cu.MemcpyHtoD(p, src, n))
	return p
}

// SetFloat32 copies src into t (F32, or F16 rounded to nearest even).
func (c *CUDA) SetFloat32(t backend.Tensor, src []float32) {
	d := ct(t)
	if len(src) != d.elems() {
		panic(fmt.Sprintf("cuda: SetFloat32: %d values for %v", len(src), d.shape))
	}
	if len(src) == 0 {
		return
	}
	defer c.bind()()
	must("cuStreamSynchronize", c.stream.Synchronize())
	switch d.dt {
	case backend.F32:
		must("cuMemcpyHtoD", cu.MemcpyHtoD(d.ptr, unsafe.Pointer(&src[0]), int64(4*len(src))))
	case backend.F16:
		h := make([]uint16, len(src))
		for i, v := range src {
			h[i] = dtype.F32ToF16(v)
		}
		must("cuMemcpyHtoD", cu.MemcpyHtoD(d.ptr, unsafe.Pointer(&h[0]), int64(2*len(h))))
	default:
		panic(fmt.Sprintf("cuda: SetFloat32 on a %v tensor", d.dt))
	}
}

// SetInt32 copies src into an I32 tensor.
func (c *CUDA) SetInt32(t backend.Tensor, src []int32) {
	d := ct(t)
	if d.dt != backend.I32 || len(src) != d.elems() {
		panic(fmt.Sprintf("cuda: SetInt32: %d values for %v %v", len(src), d.dt, d.shape))
	}
	if len(src) == 0 {
		return
	}
	defer c.bind()()
	must("cuStreamSynchronize", c.stream.Synchronize())
	must("cuMemcpyHtoD", cu.MemcpyHtoD(d.ptr, unsafe.Pointer(&src[0]), int64(4*len(src))))
}

// Float32 copies t into dst after all pending work finished.
func (c *CUDA) Float32(dst []float32, t backend.Tensor) {
	d := ct(t)
	if len(dst) != d.elems() {
		panic(fmt.Sprintf("cuda: Float32: %d values for %v", len(dst), d.shape))
	}
	defer c.bind()()
	must("cuStreamSynchronize", c.stream.Synchronize())
	if len(dst) == 0 {
		return
	}
	switch d.dt {
	case backend.F32:
		must("cuMemcpyDtoH", cu.MemcpyDtoH(unsafe.Pointer(&dst[0]), d.ptr, int64(4*len(dst))))
	case backend.F16:
		h := make([]uint16, len(dst))
		must("cuMemcpyDtoH", cu.MemcpyDtoH(unsafe.Pointer(&h[0]), d.ptr, int64(2*len(h))))
		for i, v := range h {
			dst[i] = dtype.F16ToF32(v)
		}
	default:
		panic(fmt.Sprintf("cuda: Float32 on a %v tensor", d.dt))
	}
}

// Int32 copies an I32 tensor into dst after all pending work finished.
func (c *CUDA) Int32(dst []int32, t backend.Tensor) {
	d := ct(t)
	if d.dt != backend.I32 || len(dst) != d.elems() {
		panic(fmt.Sprintf("cuda: Int32: %d values for %v %v", len(dst), d.dt, d.shape))
	}
	defer c.bind()()
	must("cuStreamSynchronize", c.stream.Synchronize())
	if len(dst) > 0 {
		must("cuMemcpyDtoH", cu.MemcpyDtoH(unsafe.Pointer(&dst[0]), d.ptr, int64(4*len(dst))))
	}
}

// View returns the first rows rows of t, sharing its memory.
func (c *CUDA) View(t backend.Tensor, rows int) backend.Tensor {
	d := ct(t)
	if d.dt == backend.NF4 || len(d.shape) == 0 || rows < 0 || rows > d.shape[0] {
		panic(fmt.Sprintf("cuda: View(%d rows) of %v %v", rows, d.dt, d.shape))
	}
	s := append([]int(nil), d.shape...)
	s[0] = rows
	return &Tensor{shape: s, dt: d.dt, ptr: d.ptr, view: true}
}

// Free releases t's memory.
func (c *CUDA) Free(t backend.Tensor) {
	d := ct(t)
	if d.view {
		return
	}
	defer c.bind()()
	if d.q != nil {
		cu.MemFree(d.q.packed)
		cu.MemFree(d.q.qabs)
		cu.MemFree(d.q.absmax2)
		d.q = nil
		return
	}
	if d.ptr != 0 {
		cu.MemFree(d.ptr)
		d.ptr = 0
	}
}

// pdlSkipDefault are the kernels launched without programmatic dependent
// launch: the small ones (norms, SwiGLU, row gathers, argmax) that sit
// between the products of a many-token step. Measured on an H100 (bench
// variants): at batch 16 the step took 7.66 ms with PDL for every kernel,
// 7.19 ms without PDL, 6.99 ms with PDL for all but these; at batch 1 the
// three were 3.47, 3.61 and 3.48 ms.
var pdlSkipDefault = map[string]bool{"rmsnorm_zero": true, "rmsnorm": true, "silu_mul": true, "add": true,
	"rows_f16": true, "rows_f32": true, "argmax": true, "inc_i32": true}

// byValue is a kernel argument passed by value in 8-byte words: a struct
// parameter (gorgonia's Launch copies 8 bytes a parameter, so launches go
// through launchKernel).
type byValue []uint64

// launch runs kernel name on the backend's stream. Arguments are device
// pointers, ints (passed as C int), float32 or uint64, each taking one
// 8-byte slot of which the kernel reads its parameter's size, or a byValue
// struct. With c.pdl the kernel may start while the one before it finishes
// (programmatic dependent launch): its prologue up to pdl_wait overlaps
// that kernel's tail, and in a captured graph the launch gap shrinks too.
func (c *CUDA) launch(name string, gx, gy, gz, block, smem int, args ...any) {
	f, ok := c.fns[name]
	if !ok {
		panic("cuda: unknown kernel " + name)
	}
	params := make([][]uint64, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case cu.DevicePtr:
			params[i] = []uint64{uint64(v)}
		case int:
			params[i] = []uint64{uint64(uint32(int32(v)))}
		case int64:
			params[i] = []uint64{uint64(v)}
		case float32:
			params[i] = []uint64{uint64(math.Float32bits(v))}
		case uint64:
			params[i] = []uint64{v}
		case byValue:
			params[i] = v
		default:
			panic(fmt.Sprintf("cuda: kernel argument of type %T", a))
		}
	}
	err := launchKernel(f, gx, gy, gz, block, smem, c.stream, params, c.pdl && !c.pdlSkip[name])
	if err != nil {
		panic(fmt.Sprintf("cuda: launching %s (grid %d,%d,%d block %d smem %d): %v", name, gx, gy, gz, block, smem, err))
	}
	if c.syncEach && !c.capturing {
		if err := c.stream.Synchronize(); err != nil {
			panic(fmt.Sprintf("cuda: kernel %s (grid %d,%d,%d block %d smem %d) failed: %v", name, gx, gy, gz, block, smem, err))
		}
	}
}

// Sync waits for all queued work and reports a device error, if any.
func (c *CUDA) Sync() error {
	defer c.bind()()
	return c.stream.Synchronize()
}

func ptrOf(t *Tensor) cu.DevicePtr {
	if t == nil {
		return 0
	}
	return t.ptr
}

func (c *CUDA) roundFlag() int {
	if c.half {
		return 1
	}
	return 0
}

func gridFor(n int64, block int) int {
	g := (n + int64(block) - 1) / int64(block)
	return int(min(max(g, 1), 1<<31-1))
}

func wantShape(op string, t *Tensor, dt backend.DType, shape ...int) {
	if t.dt != dt || len(t.shape) != len(shape) {
		panic(fmt.Sprintf("cuda: %s: got %v %v, want %v %v", op, t.dt, t.shape, dt, shape))
	}
	for i := range shape {
		if shape[i] >= 0 && t.shape[i] != shape[i] {
			panic(fmt.Sprintf("cuda: %s: got %v %v, want %v %v", op, t.dt, t.shape, dt, shape))
		}
	}
}

// Rows gathers rows: dst[i] = src[idx[i]].
func (c *CUDA) Rows(dst, src, idx backend.Tensor) {
	d, s, ix := ct(dst), ct(src), ct(idx)
	n, dim := d.shape[0], d.shape[1]
	wantShape("Rows idx", ix, backend.I32, n)
	wantShape("Rows dst", d, backend.F32, n, dim)
	if n == 0 {
		return
	}
	defer c.bind()()
	gx := (dim + 255) / 256
	switch s.dt {
	case backend.F32:
		wantShape("Rows src", s, backend.F32, -1, dim)
		c.launch("rows_f32", gx, n, 1, 256, 0, d.ptr, s.ptr, ix.ptr, n, dim)
	case backend.F16:
		wantShape("Rows src", s, backend.F16, -1, dim)
		c.launch("rows_f16", gx, n, 1, 256, 0, d.ptr, s.ptr, ix.ptr, n, dim)
	default:
		panic(fmt.Sprintf("cuda: Rows from a %v tensor", s.dt))
	}
}

// RMSNorm computes dst[i] = x[i] / sqrt(mean(x[i]²) + eps) * w. dst may
// be F16 (the results rounded to half: the operand of a batch product).
func (c *CUDA) RMSNorm(dst, x, w backend.Tensor, eps float32) {
	d, xx, ww := ct(dst), ct(x), ct(w)
	n, dim := xx.shape[0], xx.shape[1]
	d32, d16 := outPtrs(d)
	wantShape("RMSNorm dst", d, d.dt, n, dim)
	var w32, w16 cu.DevicePtr
	switch ww.dt {
	case backend.F32:
		w32 = ww.ptr
	case backend.F16:
		w16 = ww.ptr
	default:
		panic("cuda: RMSNorm weight must be F32 or F16")
	}
	if ww.elems() != dim || n == 0 {
		if n == 0 {
			return
		}
		panic(fmt.Sprintf("cuda: RMSNorm: weight %v for rows of %d", ww.shape, dim))
	}
	defer c.bind()()
	c.launch("rmsnorm", n, 1, 1, 256, 0, d32, xx.ptr, w32, w16, dim, eps, c.roundFlag(), d16)
}

// outPtrs returns the (float32, fp16) output pointers of the kernels that
// can store either (store_f in ops.cu): one of them is d's, the other zero.
func outPtrs(d *Tensor) (f32, f16 cu.DevicePtr) {
	switch d.dt {
	case backend.F32:
		return d.ptr, 0
	case backend.F16:
		return 0, d.ptr
	}
	panic(fmt.Sprintf("cuda: an output of %v (want F32 or F16)", d.dt))
}

type ropeKey struct {
	half            int
	theta, posScale float32
}

// ropeTable returns the device copy of inv_freq[j] = posScale /
// theta^(2j/headDim), rounded to float32 as Hugging Face (and the CPU
// backend) compute it; made once per (headDim, theta, posScale), so that it
// is never allocated inside a graph capture after the first step.
func (c *CUDA) ropeTable(half int, theta, posScale float32) cu.DevicePtr {
	k := ropeKey{half, theta, posScale}
	if p, ok := c.ropeInv[k]; ok {
		return p
	}
	inv := make([]float32, half)
	for j := range inv {
		e := float32(2*j) / float32(2*half)
		inv[j] = float32(float32(1)/float32(math.Pow(float64(theta), float64(e)))) * posScale
	}
	p := c.alloc(int64(4 * half))
	must("cuMemcpyHtoD", cu.MemcpyHtoD(p, unsafe.Pointer(&inv[0]), int64(4*half)))
	if c.ropeInv == nil {
		c.ropeInv = map[ropeKey]cu.DevicePtr{}
	}
	c.ropeInv[k] = p
	return p
}

// rmsnormZero is RMSNorm with an F32 weight that also zeroes the rows of
// up to three outputs (nil skipped), which the next products then add into.
func (c *CUDA) rmsnormZero(d, x, w *Tensor, eps float32, zs ...*Tensor) {
	n, dim := x.shape[0], x.shape[1]
	args := []any{d.ptr, x.ptr, w.ptr, dim, eps, c.roundFlag()}
	for i := 0; i < 3; i++ {
		if i < len(zs) && zs[i] != nil {
			if zs[i].shape[0] != n {
				panic("cuda: rmsnormZero: outputs must have the rows of x")
			}
			args = append(args, zs[i].ptr, zs[i].shape[1])
		} else {
			args = append(args, cu.DevicePtr(0), 0)
		}
	}
	c.launch("rmsnorm_zero", n, 1, 1, 256, 0, args...)
}

// RoPE rotates x in place (Hugging Face rotate_half layout).
func (c *CUDA) RoPE(x, pos backend.Tensor, heads int, theta, posScale float32) {
	xx, p := ct(x), ct(pos)
	n := xx.shape[0]
	if xx.dt != backend.F32 || xx.shape[1]%heads != 0 || (xx.shape[1]/heads)%2 != 0 {
		panic(fmt.Sprintf("cuda: RoPE: x %v %v with %d heads", xx.dt, xx.shape, heads))
	}
	wantShape("RoPE pos", p, backend.I32, n)
	if n == 0 {
		return
	}
	hd := xx.shape[1] / heads
	defer c.bind()()
	total := int64(n * heads * hd / 2)
	c.launch("rope", gridFor(total, 256), 1, 1, 256, 0, xx.ptr, p.ptr, c.ropeTable(hd/2, theta, posScale), n, heads, hd, c.roundFlag())
}

// Attention stores k, v into the caches, then attends causally.
func (c *CUDA) Attention(dst, q, k, v, kc, vc, seq, pos backend.Tensor, heads, kvHeads int) {
	d, qq, kk, vv, kcc, vcc, s, p := ct(dst), ct(q), ct(k), ct(v), ct(kc), ct(vc), ct(seq), ct(pos)
	n := qq.shape[0]
	if heads <= 0 || kvHeads <= 0 || heads%kvHeads != 0 || qq.shape[1]%heads != 0 {
		panic(fmt.Sprintf("cuda: Attention: %d heads, %d kv heads, q %v", heads, kvHeads, qq.shape))
	}
	hd := qq.shape[1] / heads
	if hd%4 != 0 || hd > 256 {
		panic(fmt.Sprintf("cuda: Attention: head dim %d (the kernel needs a multiple of 4, at most 256)", hd))
	}
	kvd := kvHeads * hd
	wantShape("Attention dst", d, backend.F32, n, heads*hd)
	wantShape("Attention q", qq, backend.F32, n, heads*hd)
	wantShape("Attention k", kk, backend.F32, n, kvd)
	wantShape("Attention v", vv, backend.F32, n, kvd)
	wantShape("Attention seq", s, backend.I32, n)
	wantShape("Attention pos", p, backend.I32, n)
	if len(kcc.shape) != 3 || kcc.shape[2] != kvd || kcc.dt != vcc.dt || !sameShape(kcc.shape, vcc.shape) {
		panic(fmt.Sprintf("cuda: Attention: caches %v %v and %v %v for kv dim %d", kcc.dt, kcc.shape, vcc.dt, vcc.shape, kvd))
	}
	maxLen := kcc.shape[1]
	if n == 0 {
		return
	}
	c.attSmem(n*heads, maxLen, hd) // panics before the store when the cache is too long for attention_f32/f16
	defer c.bind()()
	gx := (kvd + 255) / 256
	switch kcc.dt {
	case backend.F32:
		c.launch("kv_store_f32", gx, n, 1, 256, 0, kcc.ptr, vcc.ptr, kk.ptr, vv.ptr, s.ptr, p.ptr, n, kvd, maxLen)
	case backend.F16:
		c.launch("kv_store_f16", gx, n, 1, 256, 0, kcc.ptr, vcc.ptr, kk.ptr, vv.ptr, s.ptr, p.ptr, n, kvd, maxLen)
	default:
		panic(fmt.Sprintf("cuda: Attention: %v caches", kcc.dt))
	}
	c.attend(d, qq, kcc, vcc, s, p, heads, kvHeads)
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ropeKV is RoPE of q and k plus the store of k and v into F16 caches, in
// one kernel (the decode path of the benchmark); attend then attends
// without storing again.
func (c *CUDA) ropeKV(q, k, v, kc, vc, seq, pos *Tensor, heads, kvHeads int, theta, posScale float32) {
	n := q.shape[0]
	hd := q.shape[1] / heads
	if kc.dt != backend.F16 || vc.dt != backend.F16 || k.shape[1] != kvHeads*hd {
		panic("cuda: ropeKV needs F16 caches and matching shapes")
	}
	total := int64(n) * int64(heads+kvHeads) * int64(hd/2)
	c.launch("rope_kv_f16", gridFor(total, 256), 1, 1, 256, 0, q.ptr, k.ptr, v.ptr, kc.ptr, vc.ptr, seq.ptr, pos.ptr,
		c.ropeTable(hd/2, theta, posScale), n, heads, kvHeads, hd, kc.shape[1])
}

// The split attention (attention_split_*): few (token, head) pairs spread
// their positions over S blocks each, about c.att.blocksPerSM blocks an SM
// when every split holds keys, at most attMaxSplits (ATS_MAX_SPLITS in
// ops.cu) and none that could never hold keys (a split holds at least
// attMinChunk = ATS_MIN_CHUNK positions).
const (
	attMaxSplits  = 64
	attMinChunk   = 16
	attMaxHeadDim = 256
	// the most that attSplit's fields may be set to (the scratch's size)
	attMaxBlocksPerSM = 16
	attMaxPairsPerSM  = 16
)

// attSplit says when and how finely the decode attention splits positions:
// fewer than pairsPerSM*sms (token, head) pairs split, into about
// blocksPerSM blocks an SM.
type attSplit struct{ pairsPerSM, blocksPerSM int }

// attSplitDefault is CUDA.att's default.
var attSplitDefault = attSplit{pairsPerSM: 8, blocksPerSM: 8}

// attSplits returns the number of position splits for pairs (token, head)
// pairs over caches of maxLen positions, or 0 when there are enough pairs
// to fill the card with one block each (prefill: attention_f32/f16).
func (c *CUDA) attSplits(pairs, maxLen int) int {
	if pairs >= c.att.pairsPerSM*c.sms {
		return 0
	}
	s := (c.att.blocksPerSM*c.sms + pairs - 1) / pairs
	return max(1, min(s, attMaxSplits, (maxLen+attMinChunk-1)/attMinChunk))
}

// attScratchMax is the scratch that covers every split launch: fewer than
// P = attMaxPairsPerSM*sms pairs of at most ceil(B/pairs) splits each (B =
// attMaxBlocksPerSM*sms) is fewer than B + P blocks, each with hd+2 floats.
func (c *CUDA) attScratchMax() (floats int64, counters int) {
	return int64((attMaxBlocksPerSM+attMaxPairsPerSM)*c.sms) * (attMaxHeadDim + 2), attMaxPairsPerSM * c.sms
}

// attScratch returns the split attention's scratch, of at least floats
// floats, and counters ints that are zero between launches (each launch's
// last block per pair resets its counter). It grows by reallocating (like
// loraScratch), which must not happen during a graph capture: attend asks
// for attScratchMax on every call outside a capture, so that the first
// attention step (a prefill, say) sizes it for every later decode.
func (c *CUDA) attScratch(floats int64, counters int) (part, count cu.DevicePtr) {
	if floats > c.attPartN || counters > c.attCntN {
		if c.capturing {
			panic(fmt.Sprintf("cuda: attention: the split attention needs %d floats and %d counters of scratch (have %d, %d) "+
				"and cannot allocate during a graph capture: run one attention step before capturing", floats, counters, c.attPartN, c.attCntN))
		}
		must("cuStreamSynchronize", c.stream.Synchronize())
		if c.attPart != 0 {
			must("cuMemFree", cu.MemFree(c.attPart))
			must("cuMemFree", cu.MemFree(c.attCount))
		}
		c.attPartN, c.attCntN = max(floats, c.attPartN), max(counters, c.attCntN)
		c.attPart = c.alloc(4 * c.attPartN)
		c.attCount = c.alloc(4 * int64(c.attCntN))
		must("cuMemsetD32Async", cu.MemsetD32Async(c.attCount, 0, int64(c.attCntN), c.stream))
	}
	return c.attPart, c.attCount
}

// attSmem returns the dynamic shared memory of attention_f32/f16 (the
// maxLen scores, then 16 warps' partial outputs) for pairs (token, head)
// pairs, 0 when they go to the split kernel (which needs none); it panics
// when the card has too little.
func (c *CUDA) attSmem(pairs, maxLen, hd int) int {
	if c.attSplits(pairs, maxLen) > 0 {
		return 0
	}
	smem := (maxLen + 16*hd) * 4
	if smem > c.maxSmem {
		panic(fmt.Sprintf("cuda: Attention: cache length %d needs %d bytes of shared memory (have %d)", maxLen, smem, c.maxSmem))
	}
	return smem
}

// attend attends causally over the caches (k and v already stored):
// d (n, heads*hd) float32 (or F16: rounded to half) from q (n, heads*hd), kc and vc (slots, maxLen,
// kvHeads*hd) F32 or F16, seq and pos (n). Few (token, head) pairs (decode)
// go to the split kernel, which fills the card; many to one block a pair.
// The context must be bound.
func (c *CUDA) attend(d, q, kc, vc, seq, pos *Tensor, heads, kvHeads int) {
	n := q.shape[0]
	hd := q.shape[1] / heads
	maxLen := kc.shape[1]
	if n == 0 {
		return
	}
	if !c.capturing {
		c.attScratch(c.attScratchMax())
	}
	f16 := kc.dt == backend.F16
	d32, d16 := outPtrs(d)
	if S := c.attSplits(n*heads, maxLen); S > 0 {
		part, count := c.attScratch(int64(n*heads*S)*int64(hd+2), n*heads)
		name := "attention_split_f32"
		if f16 {
			name = "attention_split_f16"
		}
		prefetch := 1
		if c.attNoPrefetch {
			prefetch = 0
		}
		c.launch(name, n, heads, S, 32*4, 0, d32, part, count, q.ptr, kc.ptr, vc.ptr, seq.ptr, pos.ptr,
			heads, kvHeads, hd, maxLen, c.roundFlag(), d16, prefetch)
		return
	}
	name := "attention_f32"
	if f16 {
		name = "attention_f16"
	}
	c.launch(name, n, heads, 1, 512, c.attSmem(n*heads, maxLen, hd), d32, q.ptr, kc.ptr, vc.ptr, seq.ptr, pos.ptr,
		heads, kvHeads, hd, maxLen, c.roundFlag(), d16)
}

// SiLUMul computes dst = silu(gate) * up.
func (c *CUDA) SiLUMul(dst, gate, up backend.Tensor) {
	d, g, u := ct(dst), ct(gate), ct(up)
	c.elementwise("silu_mul", d, g, u)
}

// Add computes dst = a + b.
func (c *CUDA) Add(dst, a, b backend.Tensor) {
	c.elementwise("add", ct(dst), ct(a), ct(b))
}

func (c *CUDA) elementwise(name string, d, a, b *Tensor) {
	if (d.dt != backend.F32 && d.dt != backend.F16) || a.dt != backend.F32 || b.dt != backend.F32 ||
		!sameShape(d.shape, a.shape) || !sameShape(d.shape, b.shape) {
		panic(fmt.Sprintf("cuda: %s: %v %v, %v %v, %v %v", name, d.dt, d.shape, a.dt, a.shape, b.dt, b.shape))
	}
	n := int64(d.elems())
	if n == 0 {
		return
	}
	defer c.bind()()
	d32, d16 := outPtrs(d)
	c.launch(name, gridFor(n, 256), 1, 1, 256, 0, d32, a.ptr, b.ptr, n, c.roundFlag(), d16)
}

// Argmax writes the index of the largest logit of each row (ties: the
// lowest index) into dst. dst (n) I32, logits (n, vocab) F32.
func (c *CUDA) Argmax(dst, logits backend.Tensor) {
	d, l := ct(dst), ct(logits)
	n := l.shape[0]
	wantShape("Argmax dst", d, backend.I32, n)
	wantShape("Argmax logits", l, backend.F32, n, -1)
	if n == 0 {
		return
	}
	defer c.bind()()
	c.launch("argmax", n, 1, 1, 1024, 0, d.ptr, l.ptr, l.shape[1])
}

// Sample draws one token per row from softmax(logits/temperature), using
// u[i] in [0, 1) as the uniform number of row i: the first token whose
// cumulative probability exceeds u[i]. dst (n) I32, logits (n, vocab), u (n) F32.
func (c *CUDA) Sample(dst, logits, u backend.Tensor, temperature float32) {
	d, l, uu := ct(dst), ct(logits), ct(u)
	n := l.shape[0]
	wantShape("Sample dst", d, backend.I32, n)
	wantShape("Sample logits", l, backend.F32, n, -1)
	wantShape("Sample u", uu, backend.F32, n)
	if !(temperature > 0) {
		panic("cuda: Sample: temperature must be > 0 (use Argmax for greedy decoding)")
	}
	if n == 0 {
		return
	}
	defer c.bind()()
	c.launch("sample", n, 1, 1, 256, 0, d.ptr, l.ptr, uu.ptr, l.shape[1], temperature)
}

// Capture records everything fn queues on the backend into a CUDA graph,
// which Replay runs again with the same tensors (their contents may
// change; pointers and shapes may not). fn must not allocate or synchronize.
func (c *CUDA) Capture(fn func()) (*Graph, error) {
	defer c.bind()()
	must("cuStreamSynchronize", c.stream.Synchronize())
	if err := beginCapture(c.stream); err != nil {
		return nil, err
	}
	var perr any
	c.capturing = true
	func() {
		defer func() { perr = recover() }()
		fn()
	}()
	c.capturing = false
	g, err := endCapture(c.stream)
	if perr != nil {
		if g != nil {
			g.destroy()
		}
		return nil, fmt.Errorf("cuda: during graph capture: %v", perr)
	}
	if err != nil {
		return nil, err
	}
	return &Graph{c: c, g: g}, nil
}

// Graph is a captured sequence of kernels.
type Graph struct {
	c *CUDA
	g *graph
}

// Replay queues the captured kernels again.
func (g *Graph) Replay() {
	defer g.c.bind()()
	must("cuGraphLaunch", g.g.launch(g.c.stream))
}

// Destroy releases the graph.
func (g *Graph) Destroy() {
	defer g.c.bind()()
	g.g.destroy()
}
