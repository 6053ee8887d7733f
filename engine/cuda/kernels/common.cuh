// Shared helpers of the loramix CUDA kernels. NVRTC compiles the kernels
// with no system headers: half precision goes through inline PTX, and the
// fixed-width types are spelled out.
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

// Programmatic dependent launch (sm_90 on, engine/cuda/pdl.go): a kernel
// launched with it may start while the kernel before it in the stream still
// runs. pdl_wait blocks until that kernel has finished and its writes are
// visible; a kernel calls it before it touches memory that an earlier kernel
// writes, or reads (it could overwrite it). Work before it may only read what
// no kernel writes (weights, tables, descriptors). pdl_launch lets the next
// kernel start once every block of this one has called it. Both are no-ops
// without PDL.
__device__ __forceinline__ void pdl_wait() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_launch() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
// pdl_start is both, for kernels with no independent prologue.
__device__ __forceinline__ void pdl_start() {
  pdl_wait();
  pdl_launch();
}

// round_half rounds v to the nearest fp16 value (ties to even) and back.
__device__ __forceinline__ float round_half(float v) {
  u16 h;
  float r;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
  asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h));
  return r;
}

__device__ __forceinline__ float half_to_float(u16 h) {
  float r;
  asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h));
  return r;
}

__device__ __forceinline__ u16 float_to_half(float v) {
  u16 h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
  return h;
}

// pack_half2 packs lo into the low 16 bits and hi into the high 16 bits.
__device__ __forceinline__ u32 pack_half2(float lo, float hi) {
  u32 r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

__device__ __forceinline__ float maybe_round(float v, int round) {
  return round ? round_half(v) : v;
}

// store_f stores v at dst[i], or rounded to half at dst16[i] when dst16 is
// non-null (an output that a tensor-core product reads next).
__device__ __forceinline__ void store_f(float* dst, u16* dst16, long long i, float v) {
  if (dst16) {
    dst16[i] = float_to_half(v);
  } else {
    dst[i] = v;
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// block_sum returns the sum of v over the block (blockDim.x a multiple of 32,
// at most 1024); every thread gets the result. red holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* red) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < nw ? red[lane] : 0.f;
  return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* red) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < nw ? red[lane] : -3.402823466e38f;
  return warp_max(v);
}

// The NF4 code table (bitsandbytes), index order.
__constant__ float NF4_CODE[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// NF4 is one quantized (rows, cols) weight: codes of the row-major flattened
// matrix, two per byte, the first element in the high nibble; per block of 64
// elements an 8-bit index into the signed dynamic map (dmap, 256 floats) of
// absmax-offset; per group of 256 blocks a float scale.
// absmax(b) = dmap[qabs[b]] * absmax2[b/256] + offset.
__device__ __forceinline__ float nf4_absmax(const u8* qabs, const float* absmax2, const float* dmap,
                                            float offset, long long b) {
  return dmap[qabs[b]] * absmax2[b >> 8] + offset;
}

// rot rotates the pair (a, b) by the angle whose cosine and sine are cs,
// sn: (a cs - b sn, b cs + a sn), each product rounded apart (no fused
// multiply-add, as the CPU backend computes it), the same in every kernel.
__device__ __forceinline__ float2 rot(float a, float b, float cs, float sn) {
  return make_float2(__fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn)), __fadd_rn(__fmul_rn(b, cs), __fmul_rn(a, sn)));
}
