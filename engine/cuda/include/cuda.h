/*
 * loramix compatibility header for gorgonia.org/cu v0.9.6 with CUDA 13.
 *
 * It must come first on the include path (CGO_CFLAGS=-I.../engine/cuda/include).
 * It includes the toolkit's own cuda.h and, from CUDA 13 on, points back the
 * five entry points whose default versions changed, so that cu's calls keep
 * their old (CUDA 12) signatures:
 *
 *   cuCtxCreate            -> cuCtxCreate_v2 (CUDA 13 maps it to _v4, with a params argument)
 *   cuMemAdvise            -> the unversioned symbol (13 maps it to _v2, taking a CUmemLocation)
 *   cuMemPrefetchAsync     -> the unversioned symbol (likewise)
 *   cuGraphAddDependencies -> the unversioned symbol (13 maps it to _v2, with edge data)
 *   cuGraphGetEdges        -> the unversioned symbol (likewise)
 *
 * The driver still exports all of these older symbols. With CUDA 12 (or
 * older) headers nothing is changed.
 */
#ifndef LORAMIX_CUDA_COMPAT_H
#define LORAMIX_CUDA_COMPAT_H

#include_next <cuda.h>

#if defined(CUDA_VERSION) && CUDA_VERSION >= 13000

#ifdef __cplusplus
extern "C" {
#endif

#undef cuCtxCreate
#undef cuMemAdvise
#undef cuMemPrefetchAsync
#undef cuGraphAddDependencies
#undef cuGraphGetEdges

CUresult CUDAAPI cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev);
#define cuCtxCreate cuCtxCreate_v2

CUresult CUDAAPI cuMemAdvise(CUdeviceptr devPtr, size_t count, CUmem_advise advice, CUdevice device);
CUresult CUDAAPI cuMemPrefetchAsync(CUdeviceptr devPtr, size_t count, CUdevice dstDevice, CUstream hStream);
CUresult CUDAAPI cuGraphAddDependencies(CUgraph hGraph, const CUgraphNode *from, const CUgraphNode *to, size_t numDependencies);
CUresult CUDAAPI cuGraphGetEdges(CUgraph hGraph, CUgraphNode *from, CUgraphNode *to, size_t *numEdges);

#ifdef __cplusplus
}
#endif

#endif /* CUDA_VERSION >= 13000 */

#endif /* LORAMIX_CUDA_COMPAT_H */
