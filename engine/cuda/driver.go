//go:build cuda

package cuda

// The few driver calls gorgonia.org/cu v0.9.6 lacks: the dynamic shared
// memory limit of a kernel, stream capture into CUDA graphs, graph launch,
// and launches with programmatic dependent launch (cuLaunchKernelEx). The include path must put engine/cuda/include first (the CUDA 13
// compatibility header); the Makefile and scripts/device set CGO_CFLAGS.

/*
#cgo CFLAGS: -I${SRCDIR}/include -I/usr/local/cuda/include
#cgo LDFLAGS: -L/usr/local/cuda/lib64 -L/usr/local/cuda/lib64/stubs -lcuda -lcublas
#include <cuda.h>
#include <string.h>
#include <stdlib.h>
#include <cublas_v2.h>

static int lm_cublas_create(cublasHandle_t *h) { return (int)cublasCreate(h); }
static int lm_cublas_set_stream(cublasHandle_t h, CUstream s) { return (int)cublasSetStream(h, (cudaStream_t)s); }
static void lm_cublas_destroy(cublasHandle_t h) { cublasDestroy(h); }

// lm_gemm_f16 computes C (m x n, column-major, ldc) = beta*C + Aᵀ B with
// A (k x m, lda) and B (k x n, ldb) fp16 column-major, fp32 C and compute:
// for row-major Y (n, out) = X (n, in) Wᵀ it is m = out, k = in, A = W, B = X.
static int lm_gemm_f16(cublasHandle_t h, int m, int n, int k, CUdeviceptr A, int lda, CUdeviceptr B, int ldb,
                       float beta, CUdeviceptr C, int ldc) {
	float alpha = 1.f;
	return (int)cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, (const void *)A, CUDA_R_16F, lda,
	                         (const void *)B, CUDA_R_16F, ldb, &beta, (void *)C, CUDA_R_32F, ldc,
	                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

// lm_set_max_smem raises f's dynamic shared memory limit to what the block
// opt-in limit leaves beside f's static shared memory, and returns it.
static CUresult lm_set_max_smem(CUfunction f, int optin, int *dyn) {
	int st = 0;
	CUresult r = cuFuncGetAttribute(&st, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, f);
	if (r != CUDA_SUCCESS) return r;
	*dyn = optin - st;
	return cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, *dyn);
}
// lm_launch launches f on s, with pdl set with programmatic stream
// serialization: f may start before the kernel ahead of it finishes (its
// griddepcontrol.wait then waits for it).
static CUresult lm_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned smem,
                          CUstream s, void **params, int pdl) {
	CUlaunchAttribute attr;
	memset(&attr, 0, sizeof attr);
	attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
	attr.value.programmaticStreamSerializationAllowed = 1;
	CUlaunchConfig cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.gridDimX = gx, cfg.gridDimY = gy, cfg.gridDimZ = gz;
	cfg.blockDimX = bx, cfg.blockDimY = 1, cfg.blockDimZ = 1;
	cfg.sharedMemBytes = smem;
	cfg.hStream = s;
	cfg.attrs = &attr;
	cfg.numAttrs = pdl ? 1 : 0;
	return cuLaunchKernelEx(&cfg, f, params, NULL);
}
static CUresult lm_begin_capture(CUstream s) {
	return cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
}
static CUresult lm_end_capture(CUstream s, CUgraph *g) { return cuStreamEndCapture(s, g); }
static CUresult lm_instantiate(CUgraphExec *e, CUgraph g) { return cuGraphInstantiateWithFlags(e, g, 0); }
static CUresult lm_graph_launch(CUgraphExec e, CUstream s) { return cuGraphLaunch(e, s); }
static CUresult lm_graph_destroy(CUgraph g) { return cuGraphDestroy(g); }
static CUresult lm_exec_destroy(CUgraphExec e) { return cuGraphExecDestroy(e); }
static const char *lm_error_name(CUresult r) {
	const char *s = 0;
	cuGetErrorName(r, &s);
	return s ? s : "unknown CUDA error";
}
static CUresult lm_smem_optin(int dev, int *v) {
	return cuDeviceGetAttribute(v, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev);
}
static CUresult lm_smem_reserved(int dev, int *v) {
	return cuDeviceGetAttribute(v, CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK, dev);
}
static int lm_driver_version(void) { int v = 0; cuDriverGetVersion(&v); return v; }
*/
import "C"

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

func check(what string, r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return fmt.Errorf("cuda: %s: %s", what, C.GoString(C.lm_error_name(r)))
}

// rawFunction and rawStream read the C handles out of cu's wrapper types,
// whose only field is that handle.
func rawFunction(f cu.Function) C.CUfunction { return *(*C.CUfunction)(unsafe.Pointer(&f)) }
func rawStream(s cu.Stream) C.CUstream       { return *(*C.CUstream)(unsafe.Pointer(&s)) }

// setMaxDynamicSmem lets f use all the shared memory a block may opt in to
// (less its static shared memory), and returns that dynamic limit.
func setMaxDynamicSmem(f cu.Function, optin int) (int, error) {
	var dyn C.int
	err := check("cuFuncSetAttribute", C.lm_set_max_smem(rawFunction(f), C.int(optin), &dyn))
	return int(dyn), err
}

// launchKernel launches f with params (each one parameter of one or more
// 8-byte words; a scalar parameter reads its size from its word's start)
// through cuLaunchKernelEx, with programmatic dependent launch when pdl is
// set. Written here because gorgonia.org/cu has no cuLaunchKernelEx and
// its Launch copies 8 bytes a parameter (no struct parameters). The words
// and their pointers are copied to C memory, as cgo forbids passing Go
// pointers to Go pointers.
func launchKernel(f cu.Function, gx, gy, gz, block, smem int, s cu.Stream, params [][]uint64, pdl bool) error {
	words := 1 // at least one, so that the buffer is never empty
	for _, p := range params {
		words += len(p)
	}
	n := max(len(params), 1)
	buf := C.malloc(C.size_t(words)*8 + C.size_t(n)*C.size_t(unsafe.Sizeof(uintptr(0)))) // the words, then the parameters' pointers
	defer C.free(buf)
	slots := unsafe.Slice((*uint64)(buf), words)
	ptrs := unsafe.Add(buf, 8*words)
	pv := unsafe.Slice((*unsafe.Pointer)(ptrs), n)
	w := 0
	for i, p := range params {
		pv[i] = unsafe.Pointer(&slots[w])
		w += copy(slots[w:], p)
	}
	flag := C.int(0)
	if pdl {
		flag = 1
	}
	return check("cuLaunchKernelEx", C.lm_launch(rawFunction(f), C.uint(gx), C.uint(gy), C.uint(gz), C.uint(block),
		C.uint(smem), rawStream(s), (*unsafe.Pointer)(ptrs), flag))
}

func maxSmemOptin(dev int) (int, error) {
	var v C.int
	err := check("cuDeviceGetAttribute", C.lm_smem_optin(C.int(dev), &v))
	return int(v), err
}

// smemReserved is the shared memory the driver reserves in each block's
// window, before the static and dynamic shared memory (1 KB from sm_80).
func smemReserved(dev int) (int, error) {
	var v C.int
	err := check("cuDeviceGetAttribute", C.lm_smem_reserved(C.int(dev), &v))
	return int(v), err
}

func driverVersion() int { return int(C.lm_driver_version()) }

// graph is an instantiated CUDA graph captured from a stream.
type graph struct {
	g C.CUgraph
	e C.CUgraphExec
}

func beginCapture(s cu.Stream) error {
	return check("cuStreamBeginCapture", C.lm_begin_capture(rawStream(s)))
}

func endCapture(s cu.Stream) (*graph, error) {
	var g graph
	if err := check("cuStreamEndCapture", C.lm_end_capture(rawStream(s), &g.g)); err != nil {
		return nil, err
	}
	if err := check("cuGraphInstantiate", C.lm_instantiate(&g.e, g.g)); err != nil {
		C.lm_graph_destroy(g.g)
		return nil, err
	}
	return &g, nil
}

func (g *graph) launch(s cu.Stream) error {
	return check("cuGraphLaunch", C.lm_graph_launch(g.e, rawStream(s)))
}

func (g *graph) destroy() {
	C.lm_exec_destroy(g.e)
	C.lm_graph_destroy(g.g)
}

// cublas is a cuBLAS handle bound to the backend's stream.
type cublas struct{ h C.cublasHandle_t }

func newCublas(s cu.Stream) (*cublas, error) {
	var b cublas
	if r := C.lm_cublas_create(&b.h); r != 0 {
		return nil, fmt.Errorf("cuda: cublasCreate: status %d", int(r))
	}
	if r := C.lm_cublas_set_stream(b.h, rawStream(s)); r != 0 {
		C.lm_cublas_destroy(b.h)
		return nil, fmt.Errorf("cuda: cublasSetStream: status %d", int(r))
	}
	return &b, nil
}

// gemmF16 is lm_gemm_f16 (see there for the layout).
func (b *cublas) gemmF16(m, n, k int, A cu.DevicePtr, lda int, B cu.DevicePtr, ldb int, beta float32, Cp cu.DevicePtr, ldc int) error {
	if r := C.lm_gemm_f16(b.h, C.int(m), C.int(n), C.int(k), C.CUdeviceptr(A), C.int(lda), C.CUdeviceptr(B), C.int(ldb),
		C.float(beta), C.CUdeviceptr(Cp), C.int(ldc)); r != 0 {
		return fmt.Errorf("cuda: cublasGemmEx (%dx%dx%d): status %d", m, n, k, int(r))
	}
	return nil
}
