// Package cuda is the CUDA implementation of backend.Backend, built with the
// build tag `cuda` on gorgonia.org/cu (the driver API) and its nvrtc package.
//
// Without the tag the package holds only what needs no CUDA: the embedded
// kernel sources (Source, CacheKey) and CPU mirrors of the kernels' index
// math (ref.go), which the tests check on any machine; New then returns
// ErrNoCUDA.
//
// Kernels are CUDA C (kernels/*.cu), compiled with NVRTC at start-up for the
// card's compute capability and cached on disk as PTX, keyed by CacheKey
// (under os.UserCacheDir()/loramix/kernels unless Options.KernelCache says
// otherwise). CUDA contexts are bound to OS threads: every call into the
// driver runs with the calling goroutine locked to its thread and the
// backend's context made current there (see bind in cuda.go).
//
// NF4 weights stay 4-bit on the card: the packed codes, the 8-bit absmax
// codes, the per-256 scales and the offset of nf4.Tensor, dequantized in
// registers inside the matrix kernels (nf4_gemv_* for up to 4 tokens,
// nf4_mma_* on the tensor cores for more). See README.md for building and
// kernels/matmul.cu for the layouts.
package cuda
