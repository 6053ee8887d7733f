// Matrix products y = x @ wᵀ for the CUDA backend.
//
// x (n, in) float32 activations, y (n, out) float32. The weight w (out, in) is
// NF4 (see common.cuh), fp16 or fp32. Every kernel takes `mode`: bit 0 adds
// into y instead of overwriting it, bit 1 rounds the result to fp16.
//
//   *_gemv_T  (T = 1..4 tokens, in % 32 == 0): decode. One warp per two weight
//             rows; each lane streams 16-byte chunks (32 codes) of a row,
//             dequantizes them in registers and multiplies with x, which the
//             block keeps in shared memory in a lane-major swizzle.
//   *_mma_N   (in % 128 == 0, any n): batches and prefill on the tensor cores
//             (mma.sync m16n8k16, fp16 in, fp32 accumulate). The weight is the
//             A operand (16 rows per warp), N tokens the B operand. Each lane
//             owns 32 consecutive k of its rows; the sum over k is permuted
//             the same way for x, so both operands load in wide vectors.
//   *_generic (any shape): one warp per (token, row); slow, for tiny models.

#define GEMV_WARPS 8
#define GEMV_ROWS 2  // weight rows per warp

// xs_slot maps float4 index q of an x row to its shared-memory slot, so that
// lane l's i-th float4 of chunk-round `it` (elements it*1024 + l*32 + 4i..)
// sits at it*256 + i*32 + l: conflict-free 16-byte reads across the warp.
__device__ __forceinline__ int xs_slot(int q) {
  int it = q >> 8, rem = q & 255;
  return (it << 8) + ((rem & 7) << 5) + (rem >> 3);
}

// gemv_stage_x copies T rows of x (in floats each) into the swizzled xs.
// xsz is the padded per-token size in floats (a multiple of 1024).
template <int T>
__device__ __forceinline__ void gemv_stage_x(float* xs, const float* x, int in, int xsz) {
  int q4 = in >> 2;
  for (int q = threadIdx.x; q < T * q4; q += blockDim.x) {
    int t = q / q4, qq = q - t * q4;
    reinterpret_cast<float4*>(xs + t * xsz)[xs_slot(qq)] =
        reinterpret_cast<const float4*>(x + (long long)t * in)[qq];
  }
}

// silu_mul4 is the SwiGLU of four values: silu(v) * u, elementwise.
__device__ __forceinline__ float4 silu_mul4(float4 v, float4 u) {
  return make_float4(v.x / (1.f + expf(-v.x)) * u.x, v.y / (1.f + expf(-v.y)) * u.y,
                     v.z / (1.f + expf(-v.z)) * u.z, v.w / (1.f + expf(-v.w)) * u.w);
}

// gemv_stage_fused is gemv_stage_x with two optional fusions: with x2 the
// staged value is silu(x)*x2 (the SwiGLU before the down projection); with
// normw each token row is then RMS-normalized and scaled by normw (the
// RMSNorm before q/k/v or gate/up): x / sqrt(mean(x^2) + eps) * normw.
// Ends with a barrier. red holds 32 floats.
template <int T>
__device__ __forceinline__ void gemv_stage_fused(float* xs, const float* x, const float* x2, const float* normw,
                                                 float eps, int in, int xsz, float* red) {
  int q4 = in >> 2;
  float ss[T];
#pragma unroll
  for (int t = 0; t < T; t++) ss[t] = 0.f;
  for (int q = threadIdx.x; q < T * q4; q += blockDim.x) {
    int t = q / q4, qq = q - t * q4;
    float4 v = reinterpret_cast<const float4*>(x + (long long)t * in)[qq];
    if (x2) {
      v = silu_mul4(v, reinterpret_cast<const float4*>(x2 + (long long)t * in)[qq]);
    }
#pragma unroll
    for (int tt = 0; tt < T; tt++)
      if (tt == t) ss[tt] += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    reinterpret_cast<float4*>(xs + t * xsz)[xs_slot(qq)] = v;
  }
  if (normw) {
    float inv[T];
#pragma unroll
    for (int t = 0; t < T; t++) inv[t] = rsqrtf(block_sum(ss[t], red) / in + eps);
    for (int q = threadIdx.x; q < T * q4; q += blockDim.x) {
      int t = q / q4, qq = q - t * q4;
      float4* p = reinterpret_cast<float4*>(xs + t * xsz) + xs_slot(qq);
      float4 v = *p, w = reinterpret_cast<const float4*>(normw)[qq];
      float iv = inv[0];
#pragma unroll
      for (int tt = 1; tt < T; tt++)
        if (tt == t) iv = inv[tt];
      v.x *= iv * w.x, v.y *= iv * w.y, v.z *= iv * w.z, v.w *= iv * w.w;
      *p = v;
    }
  }
  __syncthreads();
}

// dot32_nf4 returns sum_e code[nibble e of w] * x[e] for the 32 codes of a
// 16-byte chunk w (byte order = element order, high nibble first) and the 32
// x values of token t held at xs4[i*32] (i = 0..7).
__device__ __forceinline__ float dot32_nf4(uint4 w, const float4* xs4, const float* tab) {
  u32 words[4] = {w.x, w.y, w.z, w.w};
  float acc = 0.f;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    u32 v = words[k];
    float4 xa = xs4[(2 * k) * 32];
    float4 xb = xs4[(2 * k + 1) * 32];
    // byte 0 (bits 0..7) holds elements 8k, 8k+1; byte 1 holds 8k+2, 8k+3...
    acc += tab[((v >> 4) & 15) << 5] * xa.x;
    acc += tab[((v >> 0) & 15) << 5] * xa.y;
    acc += tab[((v >> 12) & 15) << 5] * xa.z;
    acc += tab[((v >> 8) & 15) << 5] * xa.w;
    acc += tab[((v >> 20) & 15) << 5] * xb.x;
    acc += tab[((v >> 16) & 15) << 5] * xb.y;
    acc += tab[((v >> 28) & 15) << 5] * xb.z;
    acc += tab[((v >> 24) & 15) << 5] * xb.w;
  }
  return acc;
}

// dot32_nf4b is dot32_nf4 with a byte table: btab holds, for each code
// byte and each lane (bank), the pair (Code[hi], Code[lo]); one 8-byte
// shared load per two weights, conflict-free. lane8 = lane * 8.
__device__ __forceinline__ float dot32_nf4b(uint4 w, const float4* xs4, const char* btab, u32 lane8) {
  u32 words[4] = {w.x, w.y, w.z, w.w};
  float acc = 0.f;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    u32 v = words[k];
    float4 xa = xs4[(2 * k) * 32];
    float4 xb = xs4[(2 * k + 1) * 32];
    float2 c0 = *reinterpret_cast<const float2*>(btab + (((v << 8) & 0xff00) | lane8));
    float2 c1 = *reinterpret_cast<const float2*>(btab + ((v & 0xff00) | lane8));
    float2 c2 = *reinterpret_cast<const float2*>(btab + (((v >> 8) & 0xff00) | lane8));
    float2 c3 = *reinterpret_cast<const float2*>(btab + (((v >> 16) & 0xff00) | lane8));
    acc += c0.x * xa.x + c0.y * xa.y + c1.x * xa.z + c1.y * xa.w;
    acc += c2.x * xb.x + c2.y * xb.y + c3.x * xb.z + c3.y * xb.w;
  }
  return acc;
}

// Shared memory of nf4_gemv: the code table replicated once per bank
// (tab[c*32 + lane], 512 floats), the dynamic map (256), then T*xsz floats.
// The LoRA epilogue (lb non-null): y[t, row] += lscale * sum_j lb[row, j] *
// lt[t*lstride + j], j < lr: the expand of an adapter whose shrink (lt) a
// previous kernel computed.
// Every lane of the warp calls it; lanes split the rank.
__device__ __forceinline__ float lora_epilogue(const float* lb, const float* lt, int lr, int lstride, float lscale,
                                               int row, int t, int lane) {
  float s = 0.f;
  for (int j = lane; j < lr; j += 32) s += lb[(long long)row * lr + j] * lt[t * lstride + j];
  return lscale * warp_sum(s);
}

#define GEMV_GROUP 2  // chunk rounds whose codes are loaded together

// gemv_load issues the loads of chunk rounds g0 .. g0+GEMV_GROUP-1 of this
// lane's rows: the 16 code bytes, the absmax code and the group scale.
__device__ __forceinline__ void gemv_load(uint4 (&w)[GEMV_GROUP][GEMV_ROWS], u32 (&qa)[GEMV_GROUP][GEMV_ROWS],
                                          float (&sa)[GEMV_GROUP][GEMV_ROWS], const u8* packed, const u8* qabs,
                                          const float* absmax2, int row0, int out, int in, int nchunks, int g0,
                                          int lane) {
#pragma unroll
  for (int u = 0; u < GEMV_GROUP; u++) {
    int c = (g0 + u) * 32 + lane;
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
      w[u][r] = make_uint4(0, 0, 0, 0);
      qa[u][r] = 0;
      sa[u][r] = 0.f;
      if (c < nchunks) {
        long long j0 = (long long)min(row0 + r, out - 1) * in + (long long)c * 32;
        w[u][r] = __ldg(reinterpret_cast<const uint4*>(packed + (j0 >> 1)));
        qa[u][r] = __ldg(qabs + (j0 >> 6));
        sa[u][r] = __ldg(absmax2 + (j0 >> 14));
      }
    }
  }
}

// GemvDesc is one weight of a (multi-weight) gemv: several products of the
// same x (q, k, v; or gate, up) can run in one launch. blocks =
// ceil(out/16). Laid out as the Go type gemvDesc (8-byte fields first).
struct GemvDesc {
  const u8* packed;
  const u8* qabs;
  const float* absmax2;
  float* y;
  const float* lb;  // LoRA expand: b (out, lr), or null
  const float* lt;  // its shrink, stride lstride
  const float* la;  // LoRA shrink a (lr, in): nf4_gemvx computes lt itself (else null: lt given)
  float offset;
  int out;
  int lr;
  int lstride;
  float lscale;
  int blocks;
};

// GemvDescs passes up to GX_MAXDESC descriptors by value (a __grid_constant__
// kernel parameter): reading them costs no global round trip.
#define GX_MAXDESC 4  // weights of one multi-weight launch
struct GemvDescs {
  GemvDesc d[GX_MAXDESC];
};

// gemv_locate finds the weight d and its local row block of global block b.
__device__ __forceinline__ void gemv_locate(const GemvDesc* descs, int ndesc, int b, int& d, int& blk) {
  d = 0;
  blk = b;
  while (d + 1 < ndesc && blk >= descs[d].blocks) blk -= descs[d++].blocks;
}

// nf4_gemv: the products of one x (T tokens) with the weights of descs.
// A block stages the code table and x once, then walks row blocks b =
// blockIdx.x, +gridDim.x, ... (16 rows each: 8 warps x 2 rows). The codes of
// the first group are requested before x is staged, and each next group
// (the next row block's first one at the end of a block) before the current
// one is multiplied, so that the latency of HBM overlaps the staging and
// the arithmetic. BYTE selects the code table: true, 256 code bytes x 32
// lanes of (Code[hi], Code[lo]), 64 KB, one 8-byte lookup per two codes;
// false, 16 codes x 32 lanes, 2 KB, one lookup per code.
template <int T, bool BYTE>
__device__ void nf4_gemv(const GemvDesc* descs, int ndesc, int total, const float* x, const float* dmap_g, int in,
                         int mode, const float* x2, const float* normw, float eps) {
  extern __shared__ float4 smem4[];
  __shared__ float red[32];
  float* smem = reinterpret_cast<float*>(smem4);
  const int tabf = BYTE ? 16384 : 512;
  float* btab = smem;
  float* dmap = smem + tabf;
  float* xs = smem + tabf + 256;
  int xsz = ((in + 1023) >> 10) << 10;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int nchunks = in >> 5, rounds = (nchunks + 31) >> 5;
  uint4 w[GEMV_GROUP][GEMV_ROWS];
  u32 qa[GEMV_GROUP][GEMV_ROWS];
  float sa[GEMV_GROUP][GEMV_ROWS];
  int b = blockIdx.x, d, blk;
  gemv_locate(descs, ndesc, b, d, blk);
  int row0 = (blk * GEMV_WARPS + warp) * GEMV_ROWS;
  if (b < total && row0 < descs[d].out)
    gemv_load(w, qa, sa, descs[d].packed, descs[d].qabs, descs[d].absmax2, row0, descs[d].out, in, nchunks, 0, lane);
  if (BYTE) {
    for (int i = threadIdx.x; i < 8192; i += blockDim.x) {
      int c = i >> 5;
      reinterpret_cast<float2*>(btab)[i] = make_float2(NF4_CODE[c >> 4], NF4_CODE[c & 15]);
    }
  } else {
    for (int i = threadIdx.x; i < 512; i += blockDim.x) btab[i] = NF4_CODE[i >> 5];
  }
  for (int i = threadIdx.x; i < 256; i += blockDim.x) dmap[i] = dmap_g[i];
  pdl_start();  // x (and y) come from earlier kernels
  gemv_stage_fused<T>(xs, x, x2, normw, eps, in, xsz, red);

  const char* bt = reinterpret_cast<const char*>(btab);
  u32 lane8 = lane * 8;
  while (b < total) {
    const GemvDesc g = descs[d];
    int nb = b + gridDim.x, nd = 0, nblk = 0, nrow0 = 0;
    bool next = nb < total;
    if (next) {
      gemv_locate(descs, ndesc, nb, nd, nblk);
      nrow0 = (nblk * GEMV_WARPS + warp) * GEMV_ROWS;
      next = nrow0 < descs[nd].out;
    }
    if (row0 < g.out) {
      // the LoRA expand's operands (rank <= 32 here)
      float lbv[GEMV_ROWS], ltv[T];
#pragma unroll
      for (int r = 0; r < GEMV_ROWS; r++)
        lbv[r] = (g.lb && lane < g.lr) ? g.lb[(long long)min(row0 + r, g.out - 1) * g.lr + lane] : 0.f;
#pragma unroll
      for (int t = 0; t < T; t++) ltv[t] = (g.lb && lane < g.lr) ? g.lt[t * g.lstride + lane] : 0.f;
      float acc[GEMV_ROWS][T];
#pragma unroll
      for (int r = 0; r < GEMV_ROWS; r++)
#pragma unroll
        for (int t = 0; t < T; t++) acc[r][t] = 0.f;
      for (int g0 = 0; g0 < rounds; g0 += GEMV_GROUP) {
        uint4 wn[GEMV_GROUP][GEMV_ROWS];
        u32 qn[GEMV_GROUP][GEMV_ROWS];
        float sn[GEMV_GROUP][GEMV_ROWS];
        if (g0 + GEMV_GROUP < rounds)
          gemv_load(wn, qn, sn, g.packed, g.qabs, g.absmax2, row0, g.out, in, nchunks, g0 + GEMV_GROUP, lane);
        else if (next)
          gemv_load(wn, qn, sn, descs[nd].packed, descs[nd].qabs, descs[nd].absmax2, nrow0, descs[nd].out, in,
                    nchunks, 0, lane);
#pragma unroll
        for (int u = 0; u < GEMV_GROUP; u++) {
          int it = g0 + u;
          if (it * 32 + lane < nchunks) {
#pragma unroll
            for (int t = 0; t < T; t++) {
              const float4* xs4 = reinterpret_cast<const float4*>(xs + t * xsz) + (it << 8) + lane;
#pragma unroll
              for (int r = 0; r < GEMV_ROWS; r++)
                acc[r][t] += (dmap[qa[u][r]] * sa[u][r] + g.offset) *
                             (BYTE ? dot32_nf4b(w[u][r], xs4, bt, lane8) : dot32_nf4(w[u][r], xs4, btab + lane));
            }
          }
        }
#pragma unroll
        for (int u = 0; u < GEMV_GROUP; u++)
#pragma unroll
          for (int r = 0; r < GEMV_ROWS; r++) w[u][r] = wn[u][r], qa[u][r] = qn[u][r], sa[u][r] = sn[u][r];
      }
#pragma unroll
      for (int r = 0; r < GEMV_ROWS; r++)
#pragma unroll
        for (int t = 0; t < T; t++) {
          float v = warp_sum(acc[r][t]);
          if (g.lb) v += g.lscale * warp_sum(lbv[r] * ltv[t]);
          if (lane == 0 && row0 + r < g.out) {
            float* dst = g.y + (long long)t * g.out + row0 + r;
            if (mode & 1) v += *dst;
            *dst = maybe_round(v, mode & 2);
          }
        }
    } else if (next) {
      gemv_load(w, qa, sa, descs[nd].packed, descs[nd].qabs, descs[nd].absmax2, nrow0, descs[nd].out, in, nchunks,
                0, lane);
    }
    b = nb;
    d = nd;
    row0 = nrow0;
  }
}

#define NF4_GEMV(T)                                                                                      \
  extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32, 2)                                       \
      nf4_gemv_##T(float* y, const float* x, const u8* packed, const u8* qabs, const float* absmax2,      \
                   const float* dmap, float offset, int out, int in, int mode, const float* lb,          \
                   const float* lt, int lr, int lstride, float lscale, const float* x2,                  \
                   const float* normw, float eps) {                                                      \
    GemvDesc g = {packed, qabs, absmax2, y, lb, lt, nullptr, offset, out, lr, lstride, lscale, (out + 15) >> 4};  \
    nf4_gemv<T, true>(&g, 1, g.blocks, x, dmap, in, mode, x2, normw, eps);                               \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32, 2)                                       \
      nf4_gemvm_##T(const GemvDesc* descs, int ndesc, int total, const float* x, const float* dmap, int in, \
                    int mode, const float* x2, const float* normw, float eps) {                          \
    nf4_gemv<T, true>(descs, ndesc, total, x, dmap, in, mode, x2, normw, eps);                           \
  }
NF4_GEMV(1)
NF4_GEMV(2)
NF4_GEMV(3)
NF4_GEMV(4)

// f16_gemv: the same for an fp16 weight (the lm_head); a lane's chunk of 32
// elements is 64 bytes.
template <int T>
__device__ void f16_gemv(float* y, const float* x, const u16* w, int out, int in, int mode) {
  pdl_start();
  extern __shared__ float4 smem4[];
  float* xs = reinterpret_cast<float*>(smem4);
  int xsz = ((in + 1023) >> 10) << 10;
  gemv_stage_x<T>(xs, x, in, xsz);
  __syncthreads();
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int row0 = (blockIdx.x * GEMV_WARPS + warp) * GEMV_ROWS;
  if (row0 >= out) return;
  float acc[GEMV_ROWS][T];
#pragma unroll
  for (int r = 0; r < GEMV_ROWS; r++)
#pragma unroll
    for (int t = 0; t < T; t++) acc[r][t] = 0.f;
  int nchunks = in >> 5;
  for (int it = 0; it * 32 < nchunks; it++) {
    int c = it * 32 + lane;
    if (c >= nchunks) break;
    uint4 wv[GEMV_ROWS][4];
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
      int row = min(row0 + r, out - 1);
      const uint4* p = reinterpret_cast<const uint4*>(w + (long long)row * in + (long long)c * 32);
#pragma unroll
      for (int q = 0; q < 4; q++) wv[r][q] = __ldg(p + q);
    }
#pragma unroll
    for (int t = 0; t < T; t++) {
      const float4* xs4 = reinterpret_cast<const float4*>(xs + t * xsz) + (it << 8) + lane;
#pragma unroll
      for (int q = 0; q < 4; q++) {
        float4 xa = xs4[(2 * q) * 32], xb = xs4[(2 * q + 1) * 32];
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) {
          uint4 v = wv[r][q];
          float s = half_to_float(v.x & 0xffff) * xa.x + half_to_float(v.x >> 16) * xa.y +
                    half_to_float(v.y & 0xffff) * xa.z + half_to_float(v.y >> 16) * xa.w +
                    half_to_float(v.z & 0xffff) * xb.x + half_to_float(v.z >> 16) * xb.y +
                    half_to_float(v.w & 0xffff) * xb.z + half_to_float(v.w >> 16) * xb.w;
          acc[r][t] += s;
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < GEMV_ROWS; r++)
#pragma unroll
    for (int t = 0; t < T; t++) {
      float v = warp_sum(acc[r][t]);
      if (lane == 0 && row0 + r < out) {
        float* dst = y + (long long)t * out + row0 + r;
        if (mode & 1) v += *dst;
        *dst = maybe_round(v, mode & 2);
      }
    }
}

#define F16_GEMV(T)                                                                            \
  extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32)                                \
      f16_gemv_##T(float* y, const float* x, const u16* w, int out, int in, int mode) {        \
    f16_gemv<T>(y, x, w, out, in, mode);                                                       \
  }
F16_GEMV(1)
F16_GEMV(2)
F16_GEMV(3)
F16_GEMV(4)

// ---- one token, x in registers (nf4_gemvx) ------------------------------------
//
// The decode product at batch 1. nf4_gemv above keeps x in shared memory and
// reads 8 float4 of it for every 16 code bytes: shared-memory bandwidth, not
// HBM, bounds it (about 1 TB/s measured). Here x lives in registers:
//
// A block is KW = ceil(in/1024) warps times RG row groups. Warp kw of a row
// group owns the k-slice [1024 kw, 1024 kw + 1024): lane l holds the 32 x
// values of chunk c = 32 kw + l, staged (gated by x2 or RMS-normalized by
// normw, as gemv_stage_fused) once per block. A row group walks row blocks of
// GX_ROWS rows (block b: rows 8b.. of the weight it falls in, descs as in
// nf4_gemv but with 8-row blocks), b = (it * gridDim.x + blockIdx.x) * RG +
// rg. For each, every warp loads one 16-byte code chunk per row, dots it
// with its x through the byte table and scales by the block's absmax; a
// butterfly (warp_sum8) leaves row r's warp sum in lane 4r; the KW partial
// sums meet in shared memory, and after the barrier lane r of the row
// group's first warp adds them in kw order, adds row r's LoRA expand (rank
// <= 32) and stores. One barrier per row block, after the first round the
// row group's own (the partial sums are double-buffered).
//
// ROUNDW (fp16 compute) rounds each dequantized weight Code*absmax to half
// precision before the product, as the tensor-core paths and the CPU backend
// do; the rounding is Veltkamp's split to 11 significant bits (three float
// operations instead of two conversions), which differs from cvt.rn only
// on exact ties and below half's normal range (2^-14).

#define GX_ROWS 8
#define GX_MAXTHREADS 384  // 12 warps: in <= 12288; registers for the prefetch
#define GX_DMAP_REGS 2  // dmap entries a thread requests before building a byte table
#define GX_TAB 16  // nf4_mmax_16's byte-table replicas: one per bank pair of a half warp
#define GX_TAB32 32  // nf4_gemvx's: one per lane, so that one byte_perm makes a lookup's address

// round_h11 rounds v to 11 significant bits (half's precision).
__device__ __forceinline__ float round_h11(float v) {
  float c = __fmul_rn(v, 8193.f);
  return __fsub_rn(c, __fsub_rn(c, v));
}

// dot32x returns sum_e Code[nibble e of w] * scale_e * x[e] over the 32 codes
// of the chunk w: scale_e = 1 (the caller multiplies by absmax), or with
// ROUNDW round_h11(Code * am). The byte table of build_btab<GX_TAB32> sits at a
// shared-memory address that is a multiple of 64 KB (entry b of lane l at
// byte 256 b + 8 l of it); tabw holds that address with 8 * lane in its low
// byte, so one byte_perm (code byte k into bits 8-15) makes a lookup's whole
// address.
__device__ __forceinline__ float2 lds_f2(u32 addr) {
  float2 v;
  asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(addr));
  return v;
}
// Without ALIGNED (a table at any address: tab) the byte_perm makes the
// offset next to tabw = 8 * lane, and the base is added.
template <bool ROUNDW, bool ALIGNED>
__device__ __forceinline__ float dot32x(uint4 w, const float (&xr)[32], const char* tab, u32 tabw, float am) {
  u32 words[4] = {w.x, w.y, w.z, w.w};
  float a[4] = {0.f, 0.f, 0.f, 0.f};  // four chains of dependent FMAs, not two
#pragma unroll
  for (int k = 0; k < 4; k++) {
    u32 v = words[k];
    float2 p[4];
#pragma unroll
    for (int i = 0; i < 4; i++)
      p[i] = ALIGNED ? lds_f2(__byte_perm(v, tabw, 0x7604 | (i << 4)))
                     : *reinterpret_cast<const float2*>(tab + __byte_perm(v, tabw, 0x5504 | (i << 4)));
#pragma unroll
    for (int i = 0; i < 4; i++) {
      float c0 = p[i].x, c1 = p[i].y;
      if (ROUNDW) c0 = round_h11(__fmul_rn(c0, am)), c1 = round_h11(__fmul_rn(c1, am));
      a[2 * (i & 1)] = fmaf(c0, xr[8 * k + 2 * i], a[2 * (i & 1)]);
      a[2 * (i & 1) + 1] = fmaf(c1, xr[8 * k + 2 * i + 1], a[2 * (i & 1) + 1]);
    }
  }
  float sum = (a[0] + a[2]) + (a[1] + a[3]);
  return ROUNDW ? sum : sum * am;
}

// warp_sum8 sums each of v[0..7] over the warp with 9 shuffles instead of 40:
// lane l ends with the sum of v[(l >> 2) & 7].
__device__ __forceinline__ float warp_sum8(const float (&v)[8], int lane) {
  bool h16 = lane & 16, h8 = lane & 8, h4 = lane & 4;
  float a[4], b[2];
#pragma unroll
  for (int i = 0; i < 4; i++)
    a[i] = (h16 ? v[i + 4] : v[i]) + __shfl_xor_sync(0xffffffffu, h16 ? v[i] : v[i + 4], 16);
#pragma unroll
  for (int i = 0; i < 2; i++)
    b[i] = (h8 ? a[i + 2] : a[i]) + __shfl_xor_sync(0xffffffffu, h8 ? a[i] : a[i + 2], 8);
  float c = (h4 ? b[1] : b[0]) + __shfl_xor_sync(0xffffffffu, h4 ? b[0] : b[1], 4);
  c += __shfl_xor_sync(0xffffffffu, c, 2);
  c += __shfl_xor_sync(0xffffffffu, c, 1);
  return c;
}

// warp_sum4 is warp_sum8 for v[0..3] (6 shuffles): lane l ends with the
// sum of v[(l >> 3) & 3].
__device__ __forceinline__ float warp_sum4(const float (&v)[4], int lane) {
  bool h16 = lane & 16, h8 = lane & 8;
  float a[2];
#pragma unroll
  for (int i = 0; i < 2; i++)
    a[i] = (h16 ? v[i + 2] : v[i]) + __shfl_xor_sync(0xffffffffu, h16 ? v[i] : v[i + 2], 16);
  float b = (h8 ? a[1] : a[0]) + __shfl_xor_sync(0xffffffffu, h8 ? a[0] : a[1], 8);
  b += __shfl_xor_sync(0xffffffffu, b, 4);
  b += __shfl_xor_sync(0xffffffffu, b, 2);
  return b + __shfl_xor_sync(0xffffffffu, b, 1);
}
__device__ __forceinline__ float warp_sum_rows(const float (&v)[8], int lane) { return warp_sum8(v, lane); }
__device__ __forceinline__ float warp_sum_rows(const float (&v)[4], int lane) { return warp_sum4(v, lane); }

// nf4_code_imm is NF4_CODE[i] from immediates: a prologue that builds a
// byte table then waits for no constant-cache miss (a global round trip
// under load).
__device__ __forceinline__ float nf4_code_imm(int i) {
  float v = -1.0f;
  v = i == 1 ? -0.6961928009986877f : v;
  v = i == 2 ? -0.5250730514526367f : v;
  v = i == 3 ? -0.39491748809814453f : v;
  v = i == 4 ? -0.28444138169288635f : v;
  v = i == 5 ? -0.18477343022823334f : v;
  v = i == 6 ? -0.09105003625154495f : v;
  v = i == 7 ? 0.0f : v;
  v = i == 8 ? 0.07958029955625534f : v;
  v = i == 9 ? 0.16093020141124725f : v;
  v = i == 10 ? 0.24611230194568634f : v;
  v = i == 11 ? 0.33791524171829224f : v;
  v = i == 12 ? 0.44070982933044434f : v;
  v = i == 13 ? 0.5626170039176941f : v;
  v = i == 14 ? 0.7229568362236023f : v;
  return i == 15 ? 1.0f : v;
}

// build_btab fills a byte table of REPL replicas (entry REPL b + r, r a
// replica, is (Code[b >> 4], Code[b & 15]): the codes of byte b) in shared
// memory. nf4_gemvx's has 32 (one per lane, 64 KB), nf4_mmax_16's 16 (one
// per bank pair of a half warp). A warp writes 32 / REPL entries' replicas
// a step; the codes come from registers by shuffles (lane l holds
// Code[l & 15], from immediates), so that no memory round trip sits in the
// loop.
//
// SPREAD (REPL = 16): entry b starts at 32 b, as with 32 replicas, and
// replica r of it is at 32 b + r: a 64 KB span of which half is written, so
// that one byte permute still makes a lookup's offset (nf4_mmax_8) with half
// the stores of a 32-replica table.
template <int REPL, bool SPREAD = false>
__device__ __forceinline__ void build_btab(float2* tab) {
  int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  float code = nf4_code_imm(lane & 15);
#pragma unroll 4
  for (int k = threadIdx.x >> 5; k < 8 * REPL; k += nw) {
    int b = k * (32 / REPL) + lane / REPL;
    tab[SPREAD ? 32 * b + lane % REPL : 32 * k + lane] =
        make_float2(__shfl_sync(0xffffffffu, code, b >> 4), __shfl_sync(0xffffffffu, code, b & 15));
  }
}

// build_htab fills nf4_mmaxp's half table: entry b (the codes of byte b,
// (Code[b >> 4], Code[b & 15]) rounded to half, as one half2) in 32
// replicas, replica r of entry b at byte 256 b + 4 r, so that one byte
// permute of the code word and 4 lane makes a lookup's offset and a warp's
// 32 lookups fall in 32 banks. A warp writes one entry's replicas a step.
__device__ __forceinline__ void build_htab(u32* tab) {
  int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  float code = nf4_code_imm(lane & 15);
#pragma unroll 4
  for (int b = threadIdx.x >> 5; b < 256; b += nw)
    tab[64 * b + lane] = pack_half2(__shfl_sync(0xffffffffu, code, b >> 4), __shfl_sync(0xffffffffu, code, b & 15));
}

// dmap_req requests the dmap entries threadIdx.x + k * blockDim.x that
// store_dmap stores (none without dmap); store_dmap copies dmap (256
// floats) into shared memory, the rest of it (fewer than 128 threads) after
// the requested part.
__device__ __forceinline__ void dmap_req(float (&dv)[GX_DMAP_REGS], const float* dmap, const float* dmap_g) {
#pragma unroll
  for (int k = 0; k < GX_DMAP_REGS; k++) {
    int e = threadIdx.x + k * blockDim.x;
    dv[k] = dmap && e < 256 ? __ldg(dmap_g + e) : 0.f;
  }
}
__device__ __forceinline__ void store_dmap(float* dmap, const float* dmap_g, const float (&dv)[GX_DMAP_REGS]) {
#pragma unroll
  for (int k = 0; k < GX_DMAP_REGS; k++) {
    int e = threadIdx.x + k * blockDim.x;
    if (e < 256) dmap[e] = dv[k];
  }
  for (int e = threadIdx.x + GX_DMAP_REGS * blockDim.x; e < 256; e += blockDim.x) dmap[e] = dmap_g[e];  // < 128 threads
}

// ---- staged codes (nf4_gemvxt): the bulk copy engine fills a ring of
// shared-memory stages per row group, GX_STAGES row blocks ahead at most,
// so that HBM keeps several rounds of requests in flight without holding
// them in registers.
#define GX_STAGES 4
#define GX_LATE 8  // nf4_gemvxt with an adapter: rounds it combines after the last (more: as it goes)

__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
// mbar_expect arrives on bar and tells it to expect bytes more of async copies.
__device__ __forceinline__ void mbar_expect(u32 bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
// mbar_wait spins until the phase of bar with this parity has completed.
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
  u32 done;
  do {
    asm volatile(
        "{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}
// bulk_copy copies bytes (a multiple of 16; both addresses 16-byte aligned)
// from global src to shared dst with the bulk copy engine; bar counts them.
__device__ __forceinline__ void bulk_copy(u32 dst, const void* src, u32 bytes, u32 bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}
__device__ __forceinline__ u32 lds_u8(u32 addr) {
  u32 v;
  asm volatile("ld.shared.u8 %0, [%1];" : "=r"(v) : "r"(addr));
  return v;
}
__device__ __forceinline__ float lds_f32(u32 addr) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(addr));
  return v;
}
__device__ __forceinline__ uint4 lds128(u32 addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
  return v;
}

// GxStages is the shared-memory layout of a row group's stages: stage k
// (k = rg * ns + s) at pre + k * sb while it fits before the byte table,
// then after it. A stage holds a row block's codes (cb bytes), the 16-byte
// aligned window of its absmax codes (qb bytes) and of its group scales.
struct GxStages {
  u32 pre, post, sb, cb, qb;
  int npre, ns;
  __device__ __forceinline__ u32 at(int rg, int s) const {
    int k = rg * ns + s;
    return k < npre ? pre + k * sb : post + (k - npre) * sb;
  }
};

// GxWin is where a row block's absmax codes and group scales start in
// global memory, aligned down to 16 bytes (the copy's source alignment).
struct GxWin {
  u32 q0, s0;
};
template <int ROWS>
__device__ __forceinline__ GxWin gx_win(u32 row0, int in) {
  u32 j0 = row0 * (u32)in;
  return GxWin{(j0 >> 6) & ~15u, ((j0 >> 14) * 4) & ~15u};
}

// gx_issue starts the copy of row block blk of g into stage st (layout L).
// The NF4 upload pads qabs and absmax2 so that the aligned-up windows stay
// inside their allocations.
template <int ROWS>
__device__ __forceinline__ void gx_issue(const GemvDesc& g, int blk, int in, u32 st, const GxStages& L, u32 bar) {
  u32 row0 = (u32)blk * ROWS;
  u32 rows = min((u32)ROWS, (u32)g.out - row0);
  u32 j0 = row0 * (u32)in, j1 = (row0 + rows) * (u32)in;
  GxWin w = gx_win<ROWS>(row0, in);
  u32 q1 = (((j1 - 1) >> 6) + 16) & ~15u;
  u32 s1 = (((j1 - 1) >> 14) * 4 + 4 + 15) & ~15u;
  u32 codes = rows * (u32)in / 2;
  mbar_expect(bar, codes + (q1 - w.q0) + (s1 - w.s0));
  bulk_copy(st, g.packed + j0 / 2, codes, bar);
  bulk_copy(st + L.cb, g.qabs + w.q0, q1 - w.q0, bar);
  bulk_copy(st + L.cb + L.qb, reinterpret_cast<const char*>(g.absmax2) + w.s0, s1 - w.s0, bar);
}

// gemvx_locate finds the weight d and its local ROWS-row block of global block b.
template <int ROWS>
__device__ __forceinline__ void gemvx_locate(const GemvDesc* descs, int ndesc, int b, int& d, int& blk) {
  d = 0;
  blk = b;
  while (d + 1 < ndesc && blk >= (descs[d].out + ROWS - 1) / ROWS) blk -= (descs[d++].out + ROWS - 1) / ROWS;
}

// RopeArgs are what ROPE products need for RoPE and the KV-cache store in
// their epilogue (rope_kv_f16's operands; one token).
struct RopeArgs {
  u16 *kc, *vc;           // the caches (slots, max_len, kvd), fp16
  const int *seq, *pos;   // the token's slot and position
  const float* inv_freq;  // (hd/2)
  int hd, max_len, kvd;
};

// gx_rope_row is row r of row block blk of q or k under ROPE: rows
// j0 + (r & 3) and the same + hd/2 of one head (j0 = 4 (blk % (hd/8))), so
// that lane r < 4 of the combining warp holds both halves of a rotation.
// hd is a power of two (runRope checks): shifts, not divisions, in the
// loads' addresses.
__device__ __forceinline__ int gx_rope_row(int blk, int r, int hd) {
  int sh = __ffs(hd) - 4;  // log2(hd / 8)
  return ((blk >> sh) << (sh + 3)) + ((blk & ((hd >> 3) - 1)) << 2) + (r & 3) + (r >> 2) * (hd >> 1);
}

// Paired row blocks (PAIR): row r of row block blk is row
// blk * ROWS/2 + r % (ROWS/2) of weight r / (ROWS/2) (gate's rows, then the
// same rows of up), so that the combining warp holds both operands of each
// SwiGLU. Unpaired: row blk * ROWS + r of the block's weight.
template <int ROWS, bool PAIR>
__device__ __forceinline__ int gx_row(int blk, int r) {
  return PAIR ? blk * (ROWS / 2) + r % (ROWS / 2) : blk * ROWS + r;
}

// gemvx_load requests the codes, absmax codes and group scales of this
// lane's chunk c in the 8 rows of row block blk of weight g, or (PAIR) of
// the paired weights pr[0] and pr[1] (gx_row) (ok[r]: row r exists; none
// when !live). Offsets are 32-bit: a weight has fewer than 2^31 elements
// (the Go side checks).
// (ROPE, rope >= 0: q's or k's row block, head dim rope: gx_rope_row.)
template <int ROWS, bool PAIR = false, bool ROPE = false>
__device__ __forceinline__ void gemvx_load(uint4 (&w)[ROWS], u32 (&qa)[ROWS], float (&sa)[ROWS], bool (&ok)[ROWS],
                                           const GemvDesc& g, int blk, int in, int c, bool live,
                                           const GemvDesc* pr = nullptr, int rope = -1) {
  int row0 = blk * ROWS;
  u32 j = (u32)row0 * (u32)in + (u32)c * 32;
#pragma unroll
  for (int r = 0; r < ROWS; r++, j += in) {
    const GemvDesc& gr = PAIR ? pr[r / (ROWS / 2)] : g;
    int row = ROPE && rope > 0 ? gx_rope_row(blk, r, rope) : gx_row<ROWS, PAIR>(blk, r);
    if (PAIR || (ROPE && rope > 0)) j = (u32)row * (u32)in + (u32)c * 32;
    ok[r] = live && row < gr.out;
    w[r] = make_uint4(0, 0, 0, 0);
    qa[r] = 0;
    sa[r] = 0.f;
    if (ok[r]) {
      w[r] = __ldg(reinterpret_cast<const uint4*>(gr.packed + (j >> 1)));
      qa[r] = __ldg(gr.qabs + (j >> 6));
      sa[r] = __ldg(gr.absmax2 + (j >> 14));
    }
  }
}

// gemvx_job finds the LoRA shrink row of job s: the rows of the descs'
// `la` in order. Sets the desc d and rank j; false past the last job.
__device__ __forceinline__ bool gemvx_job(const GemvDesc* descs, int ndesc, int s, int& d, int& j) {
  for (d = 0; d < ndesc; d++) {
    if (!descs[d].la) continue;
    if (s < descs[d].lr) {
      j = s;
      return true;
    }
    s -= descs[d].lr;
  }
  return false;
}

// gemvx_lb_fetch starts copying the LoRA b rows of row block blk of weight
// g (rank lr, 32 lr bytes a row block, contiguous) into dst with cp.async,
// 16 bytes a lane-step, and commits the copy group; with !live or no expand
// it copies nothing (the group is still committed, so that the waits count
// groups the same way).
template <int ROWS>
__device__ __forceinline__ void gemvx_lb_copy(float* dst, const GemvDesc& g, int blk, bool live, int lane) {
  if (live && g.lb) {
    long long row0 = (long long)blk * ROWS;
    int bytes = (int)(min((long long)ROWS, g.out - row0) * g.lr * 4);
    const char* src = reinterpret_cast<const char*>(g.lb + row0 * g.lr);
    for (int ch = lane; ch < ROWS * g.lr / 4; ch += 32) {
      int n = max(0, min(16, bytes - 16 * ch));
      u32 sdst = (u32)__cvta_generic_to_shared(dst + 4 * ch);
      asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;" ::"r"(sdst), "l"(src + 16 * ch), "r"(n) : "memory");
    }
  }
}
// PAIR: the b rows of gate's half of the row block at dst, up's at
// dst + ROWS/2 * 32 (row r of a half at r * lr of it).
template <int ROWS, bool PAIR = false>
__device__ __forceinline__ void gemvx_lb_fetch(float* dst, const GemvDesc* descs, int d, int blk, bool live,
                                               int lane) {
  if (PAIR) {
    gemvx_lb_copy<ROWS / 2>(dst, descs[0], blk, live, lane);
    gemvx_lb_copy<ROWS / 2>(dst + ROWS / 2 * 32, descs[1], blk, live, lane);
  } else {
    gemvx_lb_copy<ROWS>(dst, descs[d], blk, live, lane);
  }
  asm volatile("cp.async.commit_group;" ::: "memory");
}

// gemvx_lora_ready waits until the launch's shrink jobs (a shrink row of
// each k split) have published their lt (lsync[0] counts them); a no-op
// without in-kernel shrinks.
__device__ __forceinline__ void gemvx_lora_ready(const u32* lsync, const GemvDesc* descs, int ndesc,
                                                 int ksplits = 1) {
  if (!lsync) return;
  int jobs = 0;
  for (int d = 0; d < ndesc; d++) jobs += descs[d].la ? descs[d].lr : 0;
  jobs *= ksplits;
  // acquire, not a fence: a fence would also wait for the prefetched codes
  for (u32 v = 0;;) {
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(lsync) : "memory");
    if (v >= (u32)jobs) break;
  }
}

// gx_trace: with mode bit 4 (the profile's probe), thread 0 of the first
// and of the last block record the global timer (ns) at phase ends.
__device__ u64 gx_trace[2][24];
__device__ u32 gx_layout[4];  // with the trace, nf4_gemvxt's stages a row group, before and after the table, bytes each
__device__ u64 gx_ptrace[2][12];  // the prologue's finer phases, the same way
__device__ __forceinline__ u64 gx_now() {
  u64 t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ bool gx_traced(int mode) {
  return (mode & 16) && threadIdx.x == 0 && (blockIdx.x == 0 || blockIdx.x == gridDim.x - 1);
}
__device__ __forceinline__ void gx_pmark(int mode, int k) {
  if (gx_traced(mode)) gx_ptrace[blockIdx.x == 0 ? 0 : 1][k] = gx_now();
}
__device__ __forceinline__ void gx_mark(int mode, int k) {
  if (gx_traced(mode) && k < 24) gx_trace[blockIdx.x == 0 ? 0 : 1][k] = gx_now();
}

// Shared memory: up to 64 KB of padding, the byte table (256 x GX_TAB32
// float2, 64 KB, 64 KB-aligned), dmap (256 floats), the partial sums (2 x RG x KW x GX_ROWS floats), then the LoRA b
// rows (2 x RG x GX_ROWS x 32 floats).
//
// In-kernel LoRA shrinks (lsync non-null; descs with `la`): every block
// holds all of x, so row group slot s = blockIdx.x * rgn + rg < jobs
// computes shrink row s (gemvx_job) in its prologue, publishes it into the
// desc's lt and counts it in lsync[0]; the expands wait for the count after
// their first products (all blocks of the grid are resident, so the wait
// ends). The last block to finish resets lsync for the next launch. This
// replaces a separate shrink launch before the product.
//
// STAGED (nf4_gemvxt, 8-row blocks): the codes, absmax codes and scales of
// each row group's next row blocks come by bulk copies into a ring of
// stages (GxStages) in the shared memory around the byte table, up to
// GX_STAGES row blocks ahead, instead of one row block ahead in registers.
// The first warp's lane 0 of a row group issues them (the first ones before
// the prologue); a stage is refilled after the row group's barrier that
// follows its products. The launch gives the kernel all the dynamic shared
// memory it can have.
//
// PAIR (two weights of one height, gate's and up's, not STAGED, no residual):
// each row block holds ROWS/2 rows of each (gx_row), and besides both
// outputs the combine stores hout = silu(gate) * up, SwiGLU, for the down
// product, which then stages half the bytes and computes no SiLU.
//
// ROPE (q, k, v of one token, no adapter, no residual): q's and k's row
// blocks pair rows j and j + hd/2 of a head (gx_rope_row), and the
// epilogue does rope_kv_f16's work: q rotated in place, k rotated and v
// stored into the fp16 caches at the token's position (ra); k's and v's own
// outputs are not written.
template <bool ROUNDW, int ROWS, bool STAGED, bool PAIR = false, bool ROPE = false>
__device__ void nf4_gemvx(const GemvDesc* pdescs, int ndesc, int total, const float* x, const float* dmap_g, int in,
                          int mode, const float* x2, const float* normw, float eps, int rgn, u32* lsync,
                          const float2* gtab, float* hout, const RopeArgs& ra) {
  static_assert(!(PAIR && STAGED), "paired rows come by registers");
  static_assert(!(ROPE && (PAIR || STAGED)), "RoPE rows come by registers, unpaired");
  extern __shared__ float4 smem4[];
  __shared__ float ssq[32];
  __shared__ float sshr[GX_MAXTHREADS / 32];  // the warps' partial shrinks
  __shared__ float slt[GX_MAXDESC * 32];      // the expands' lt, from the first barrier on
  __shared__ GemvDesc sdesc[GX_MAXDESC];  // the descriptors, so that locating a row block costs no global load
  __shared__ float2 srot[ROPE ? 128 : 1];  // ROPE: (cos, sin) of the token's angle for each j < hd/2
  __shared__ __align__(8) u64 sbar[STAGED ? GX_MAXTHREADS / 32 * GX_STAGES : 1];  // row group rg's stage s: rg * GX_STAGES + s
  __shared__ __align__(8) u64 sdbar;  // the bulk copies of the table and dmap (ctab)
  // 8 rows (one block a SM): the byte table at the first 64 KB boundary of
  // the shared window in the dynamic shared memory (the launch asks for what
  // reaches 128 KB, or all it may have when STAGED); 4 rows (two blocks a
  // SM): at its start
  const bool aligned = ROWS == 8;
  u32 s0 = (u32)__cvta_generic_to_shared(smem4);
  float2* tab = reinterpret_cast<float2*>(reinterpret_cast<char*>(smem4) +
                                          (aligned ? ((0x10000u - (s0 & 0xffffu)) & 0xffffu) : 0));
  // 8 rows: dmap, the partial sums and the b rows before the table, in the
  // alignment gap, so that the block asks for no more than 132 KB of shared
  // memory and the L1 keeps 124 KB for the codes in flight (with 164 KB it
  // kept 92 KB, with 228 KB 28 KB: every row block's loads then wait for L1
  // room). 4 rows: after the table.
  float* dmap = aligned ? reinterpret_cast<float*>(smem4) : reinterpret_cast<float*>(tab + 256 * GX_TAB32);
  float* red = dmap + 256;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  u32 barb = (u32)__cvta_generic_to_shared(sbar), db = (u32)__cvta_generic_to_shared(&sdbar);
  // ctab (STAGED, or mode bit 8): the byte table and dmap come by one bulk
  // copy from gtab and dmap_g instead of being built from registers
  const bool ctab = STAGED || (mode & 256);
  if (aligned && !STAGED) {  // gemvxPlan sizes the request from the static shared memory (gxWindow)
    u32 dyn;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(dyn));
    if ((u32)__cvta_generic_to_shared(tab) + 0x10000u > s0 + dyn ||
        (u32)__cvta_generic_to_shared(red + 2 * rgn * ((in + 1023) >> 10) * ROWS + 2 * rgn * ROWS * 32) >
            (u32)__cvta_generic_to_shared(tab))
      __trap();
  }
  if (ctab && threadIdx.x == 0) {
    // every barrier a block may use, before anything else: the fence that
    // lets the async proxy see them then has no earlier stores to wait for
    if (STAGED)
      for (int i = 0; i < GX_MAXTHREADS / 32 * GX_STAGES; i++) mbar_init(barb + 8 * i, 1);
    mbar_init(db, 1);
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    if (!STAGED) {  // (STAGED: after its first stages)
      mbar_expect(db, 1024 + 256 * GX_TAB32 * 8);
      bulk_copy((u32)__cvta_generic_to_shared(dmap), dmap_g, 1024, db);
      bulk_copy((u32)__cvta_generic_to_shared(tab), gtab, 256 * GX_TAB32 * 8, db);
    }
  }
  // dmap first: the table's build waits for it, and requested after the
  // first codes it would queue behind them
  float dv[GX_DMAP_REGS];
  dmap_req(dv, ctab ? nullptr : dmap, dmap_g);
  gx_pmark(mode, 0);
  // the descriptors into shared memory, a word a thread (STAGED: before
  // anything reads them, so that the kernel parameters' constant-cache
  // misses are one round trip)
  for (int i = threadIdx.x; i < ndesc * (int)(sizeof(GemvDesc) / 4); i += blockDim.x)
    reinterpret_cast<u32*>(sdesc)[i] = reinterpret_cast<const u32*>(pdescs)[i];
  if (STAGED) __syncthreads();
  const GemvDesc* descs = STAGED ? sdesc : pdescs;
  int kwn = (in + 1023) >> 10;
  int slots = gridDim.x * rgn;
  int iters = (total + slots - 1) / slots;
  bool anylora = false;
  for (int d = 0; d < ndesc; d++) anylora |= descs[d].lb != nullptr;
  // with an adapter, the staged kernel combines every row block after its
  // last round, once the shrinks (published by other blocks' prologues) are
  // surely there: a buffer a round for the partial sums, b rows and residuals
  const bool late = STAGED && anylora && iters <= GX_LATE;
  int nbuf = late ? iters : 2;
  float* slb = red + nbuf * rgn * kwn * ROWS;  // [nbuf][rgn][ROWS * 32]: b rows of a row group's row block
  float* syv = slb + nbuf * rgn * ROWS * 32;   // late: [iters][rgn][ROWS] residuals
  GxStages L{};
  if constexpr (STAGED) {
    u32 dyn;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(dyn));
    u32 t0 = (u32)__cvta_generic_to_shared(tab), end = s0 + dyn;
    L.cb = ROWS * in / 2;
    L.qb = (ROWS * in / 64 + 32 + 15) & ~15;
    L.sb = (L.cb + L.qb + 64 + 15) & ~15u;  // 16-byte aligned: the copies and the 16-byte code loads
    L.pre = ((u32)__cvta_generic_to_shared(syv + (late ? iters * rgn * ROWS : 0)) + 127) & ~127u;
    L.npre = L.pre < t0 ? (t0 - L.pre) / L.sb : 0;
    L.post = t0 + 0x10000u;
    int npost = end > L.post ? (end - L.post) / L.sb : 0;
    L.ns = min(mode & 128 ? 2 : GX_STAGES, (L.npre + npost) / rgn);  // mode bit 7: at most 2
    if (L.ns < 1) __trap();  // the launch gave too little shared memory
    if ((mode & 16) && blockIdx.x == 0 && threadIdx.x == 0)
      gx_layout[0] = L.ns, gx_layout[1] = L.npre, gx_layout[2] = npost, gx_layout[3] = L.sb;
  }
  int kw = warp % kwn, rg = warp / kwn;
  int nchunks = in >> 5;
  int c = kw * 32 + lane;
  bool live = c < nchunks;
  gx_mark(mode, 0);
  // the first row block's codes (and LoRA b rows) are requested before the
  // tables and x are staged, so that HBM latency overlaps the prologue
  uint4 w[ROWS];
  u32 qa[ROWS];
  float sa[ROWS];
  bool ok[ROWS];
  int rb = blockIdx.x * rgn + rg, d = 0, blk = rb;  // this iteration's row block
  if (rb < total && !PAIR) gemvx_locate<ROWS>(descs, ndesc, rb, d, blk);
  gx_pmark(mode, 1);
  // the shrink's and the norm's operands first: a LoRA shrink publishes
  // what every block's expands wait for
  int jd = 0, jj = 0;
  bool job = lsync && gemvx_job(descs, ndesc, rb, jd, jj);
  float4 av[8];  // this lane's 32 inputs of the shrink row
  if (job) {
    const float4* ap = reinterpret_cast<const float4*>(descs[jd].la + (long long)jj * in + (long long)c * 32);
#pragma unroll
    for (int q = 0; q < 8; q++) av[q] = live ? __ldg(ap + q) : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  // this lane's 32 norm weights (ptxas spills two of the eight at once, and
  // a spill store waits for its load: NOTES.md, v10)
  float4 nw[8];
  if (normw) {
#pragma unroll
    for (int q = 0; q < 8; q++)
      nw[q] = live ? __ldg(reinterpret_cast<const float4*>(normw + (long long)c * 32) + q) : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  // the first stage before x is requested, the others after it (mode bit 6:
  // all before; their requests would delay x's)
  int early = mode & 64 ? L.ns : 1;
  if constexpr (STAGED) {
    if (kw == 0 && lane == 0) {  // the ring's first row blocks
      gx_pmark(mode, 2);
      if (rg == 0) {  // dmap (1 KB) and the byte table (64 KB) the same way, off the prologue's critical path
        mbar_expect(db, 1024 + 256 * GX_TAB32 * 8);
        bulk_copy((u32)__cvta_generic_to_shared(dmap), dmap_g, 1024, db);
        bulk_copy((u32)__cvta_generic_to_shared(tab), gtab, 256 * GX_TAB32 * 8, db);
      }
      for (int s = 0; s < early; s++) {
        int r = rb + s * slots, ds, bs;
        if (r >= total) break;
        gemvx_locate<ROWS>(descs, ndesc, r, ds, bs);
        gx_issue<ROWS>(descs[ds], bs, in, L.at(rg, s), L, barb + 8 * (rg * GX_STAGES + s));
      }
      gx_pmark(mode, 3);
    }
  } else {
    gemvx_load<ROWS, PAIR, ROPE>(w, qa, sa, ok, descs[d], blk, in, c, live && rb < total, descs,
                                 ROPE && d < 2 ? ra.hd : -1);
    gx_pmark(mode, 2);
  }
  if (anylora && kw == 0) gemvx_lb_fetch<ROWS, PAIR>(slb + rg * ROWS * 32, descs, d, blk, rb < total, lane);
  gx_mark(mode, 1);
  if (!STAGED) gx_pmark(mode, 3);
  if (!ctab) build_btab<GX_TAB32>(tab), store_dmap(dmap, dmap_g, dv);
  gx_pmark(mode, 4);
  pdl_start();  // x, y and the LoRA shrinks' outputs come from earlier kernels
  gx_pmark(mode, 5);
  int P = 0, S = 0;  // ROPE: the token's position and slot; thread j < hd/2 inv_freq[j], with x
  float ifq = 0.f;
  if (ROPE) P = ra.pos[0], S = ra.seq[0], ifq = (int)threadIdx.x < ra.hd / 2 ? __ldg(ra.inv_freq + threadIdx.x) : 0.f;
  // STAGED: this lane's 32 x values (and x2's) are all requested at once: a
  // block that starts after the previous kernel has ended has nothing else
  // on its path to the first products, and a global round trip costs 1-1.5
  // us while the other SMs stream weights (without STAGED the registers
  // would spill)
  auto ld4 = [&](const float* p, int q) {
    return live ? reinterpret_cast<const float4*>(p + (long long)c * 32)[q] : make_float4(0.f, 0.f, 0.f, 0.f);
  };
  float4 xv[8], x2v[8];
  if (STAGED) {
#pragma unroll
    for (int q = 0; q < 8; q++) xv[q] = ld4(x, q), x2v[q] = x2 ? ld4(x2, q) : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  gx_pmark(mode, 6);
  gx_mark(mode, 2);
  gx_pmark(mode, 7);

  float xr[32];
  float ss = 0.f;
#pragma unroll
  for (int q = 0; q < 8; q++) {
    float4 v = STAGED ? xv[q] : ld4(x, q);
    if (x2) v = silu_mul4(v, STAGED ? x2v[q] : ld4(x2, q));
    ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    xr[4 * q] = v.x, xr[4 * q + 1] = v.y, xr[4 * q + 2] = v.z, xr[4 * q + 3] = v.w;
  }
  gx_pmark(mode, 8);
  if (ROPE && (int)threadIdx.x < ra.hd / 2) {  // rope_kv_f16's angle, once a block (the barrier below publishes it)
    float sn, cs;
    sincosf((float)P * ifq, &sn, &cs);
    srot[threadIdx.x] = make_float2(cs, sn);
  }
  if (normw) {
    ss = warp_sum(ss);
    if (lane == 0 && rg == 0) ssq[kw] = ss;
    __syncthreads();
    gx_pmark(mode, 9);
    float tot = 0.f;
    for (int k = 0; k < kwn; k++) tot += ssq[k];
    float inv = rsqrtf(tot / in + eps);
#pragma unroll
    for (int q = 0; q < 8; q++) {
      xr[4 * q] *= inv * nw[q].x, xr[4 * q + 1] *= inv * nw[q].y;
      xr[4 * q + 2] *= inv * nw[q].z, xr[4 * q + 3] *= inv * nw[q].w;
    }
  }
  if (mode & 2) {  // fp16 compute: the staged operand is an op's output
#pragma unroll
    for (int i = 0; i < 32; i++) xr[i] = round_half(xr[i]);
  }
  if (job) {
    float s = 0.f;
#pragma unroll
    for (int q = 0; q < 8; q++)
      s += av[q].x * xr[4 * q] + av[q].y * xr[4 * q + 1] + av[q].z * xr[4 * q + 2] + av[q].w * xr[4 * q + 3];
    s = warp_sum(s);
    if (lane == 0) sshr[warp] = s;
  }
  gx_mark(mode, 3);
  __syncthreads();  // tables, partial shrinks
  if (ctab) mbar_wait(db, 0);
  gx_mark(mode, 4);
  if constexpr (STAGED) {  // the ring's other first row blocks (mode bit 6)
    if (kw == 0 && lane == 0) {
      for (int s = early; s < L.ns; s++) {
        int r = rb + s * slots, ds, bs;
        if (r >= total) break;
        gemvx_locate<ROWS>(descs, ndesc, r, ds, bs);
        gx_issue<ROWS>(descs[ds], bs, in, L.at(rg, s), L, barb + 8 * (rg * GX_STAGES + s));
      }
    }
  }
  // publish the shrink row (k-slices in order) from the row group's last
  // warp (the staged kernel's first warp issues the bulk copies), with one
  // release reduction where a fence and an atomic were two
  if (job && kw == kwn - 1 && lane == 0) {
    float s = 0.f;
    for (int k = 0; k < kwn; k++) s += sshr[rg * kwn + k];
    const_cast<float*>(descs[jd].lt)[jj] = s;
    asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(lsync) : "memory");
    if ((mode & 16) && blockIdx.x == 0 && rg == 0) gx_ptrace[0][10] = gx_now();
  }

  // from here the descriptors are read from shared memory (a pointer of its
  // own: one that could point to either space would make every read generic)
  const GemvDesc* sd = sdesc;
  // sum: lane's row of buffer buf, its k-warps' partial sums in kw order;
  // expand: the LoRA expand of weight g (desc dd) for b rows lb.
  auto sum = [&](int buf) {
    float v = 0.f;
    for (int k = 0; k < kwn; k++) v += red[((buf * rgn + rg) * kwn + k) * ROWS + lane];
    return v;
  };
  auto expand = [&](const GemvDesc& g, int dd, const float* lb) {
    float lo = 0.f;
    for (int j = 0; j < g.lr; j++) lo += lb[j] * slt[dd * 32 + j];
    return g.lscale * lo;
  };
  // lane r of a row group's first warp combines row r of a row block (its
  // partial sums in buffer buf): the sums in kw order, its LoRA expand, the
  // residual yv.
  // PAIR: the whole warp calls it (a shuffle gives lane r < ROWS/2 up's
  // output of its row from lane r + ROWS/2), with row0 the row block's index.
  // ROPE: the whole warp calls it too (lane r < ROWS/2 takes row r + ROWS/2,
  // its rotation partner), with row0 the row block's index.
  auto combine = [&](bool comb, int buf, int row0, int d, float yv) {
    if (ROPE) {
      const GemvDesc& g = sd[d];
      float v = comb ? sum(buf) : 0.f;
      bool store = P >= 0 && P < ra.max_len;
      long long cb = ((long long)S * ra.max_len + P) * ra.kvd;
      if (d < 2) {
        float u = __shfl_down_sync(0xffffffffu, v, ROWS / 2);
        if (comb && lane < ROWS / 2) {
          int row = gx_rope_row(row0, lane, ra.hd), half = ra.hd / 2;
          float2 t = srot[row & (ra.hd - 1)];
          float2 r = rot(v, u, t.x, t.y);
          if (d == 0) {
            g.y[row] = r.x, g.y[row + half] = r.y;
          } else if (store) {
            ra.kc[cb + row] = float_to_half(r.x), ra.kc[cb + row + half] = float_to_half(r.y);
          }
        }
      } else if (comb && store) {
        ra.vc[cb + row0 * ROWS + lane] = float_to_half(v);
      }
      return;
    }
    if (PAIR) {
      int h = lane / (ROWS / 2), row = gx_row<ROWS, true>(row0, lane);
      float v = 0.f;
      if (comb) {
        const GemvDesc& g = sd[h];
        v = sum(buf);
        if (g.lb)
          v += expand(g, h, slb + (buf * rgn + rg) * ROWS * 32 + h * (ROWS / 2) * 32 + (lane % (ROWS / 2)) * g.lr);
        v = maybe_round(v, mode & 2);
        g.y[row] = v;
      }
      float u = __shfl_down_sync(0xffffffffu, v, ROWS / 2);
      if (comb && h == 0) hout[row] = v / (1.f + expf(-v)) * u;  // silu_mul4's arithmetic
      return;
    }
    if (!comb) return;
    const GemvDesc& g = sd[d];
    float v = sum(buf);
    if (g.lb) v += expand(g, d, slb + (buf * rgn + rg) * ROWS * 32 + lane * g.lr);
    g.y[row0 + lane] = maybe_round(v + yv, mode & 2);
  };
  auto lora_lt = [&]() {  // every desc's lt into slt (warp 0)
    gemvx_lora_ready(lsync, sd, ndesc);
    gx_pmark(mode, 11);
    for (int i = lane; i < ndesc * 32; i += 32) {
      const GemvDesc& gd = sd[i >> 5];
      slt[i] = gd.lb && (i & 31) < gd.lr ? __ldcg(gd.lt + (i & 31)) : 0.f;
    }
  };
  u32 tabw = (aligned ? (u32)__cvta_generic_to_shared(tab) : 0u) | (lane * 8);
  const char* tb = reinterpret_cast<const char*>(tab);
  for (int it = 0; it < iters; it++, rb += slots) {
    const GemvDesc& g = sd[d];
    int row0 = blk * ROWS;
    // the next row block's codes (and b rows) are requested before this one
    // is multiplied
    int rbn = rb + slots, dn = d, blkn = PAIR ? rbn : blk;
    if (rbn < total && !PAIR) gemvx_locate<ROWS>(sd, ndesc, rbn, dn, blkn);
    uint4 wn[ROWS];
    u32 qan[ROWS];
    float san[ROWS];
    bool okn[ROWS];
    if (!STAGED)
      gemvx_load<ROWS, PAIR, ROPE>(wn, qan, san, okn, sd[dn], blkn, in, c, live && rbn < total, sd,
                                   ROPE && dn < 2 ? ra.hd : -1);
    if (anylora && kw == 0)
      gemvx_lb_fetch<ROWS, PAIR>(slb + (((it + 1) % nbuf) * rgn + rg) * ROWS * 32, sd, dn, blkn, rbn < total, lane);
    // lane r of the row group's first warp combines row r below: its
    // residual, when adding, is requested now
    bool comb = kw == 0 && lane < ROWS && rb < total &&
                (PAIR            ? gx_row<ROWS, true>(blk, lane) < sd[lane / (ROWS / 2) % 2].out
                 : ROPE && d < 2 ? gx_rope_row(blk, lane, ra.hd) < g.out
                                 : row0 + lane < g.out);
    float yv = comb && (mode & 1) ? g.y[row0 + lane] : 0.f;
    if constexpr (STAGED) {  // this row block from its stage
      int stg = it % L.ns;
      u32 st = L.at(rg, stg);
      if (rb < total) mbar_wait(barb + 8 * (rg * GX_STAGES + stg), (it / L.ns) & 1);
      GxWin win = gx_win<ROWS>(row0, in);
#pragma unroll
      for (int r = 0; r < ROWS; r++) {
        u32 j = (u32)(row0 + r) * (u32)in + (u32)c * 32;
        ok[r] = live && rb < total && row0 + r < g.out;
        w[r] = ok[r] ? lds128(st + r * (in / 2) + c * 16) : make_uint4(0, 0, 0, 0);
        qa[r] = ok[r] ? lds_u8(st + L.cb + (j >> 6) - win.q0) : 0;
        sa[r] = ok[r] ? lds_f32(st + L.cb + L.qb + (j >> 14) * 4 - win.s0) : 0.f;
      }
    }
    float acc[ROWS];
    float goff = g.offset;
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
      float am = ok[r] ? dmap[qa[r]] * sa[r] + (PAIR ? sd[r / (ROWS / 2)].offset : goff) : 0.f;
      acc[r] = dot32x<ROUNDW, ROWS == 8>(w[r], xr, tb, tabw, am);
    }
    if (anylora && !late && it == 0 && warp == 0) lora_lt();
    if (!STAGED) {
#pragma unroll
      for (int r = 0; r < ROWS; r++) w[r] = wn[r], qa[r] = qan[r], sa[r] = san[r], ok[r] = okn[r];
    }
    gx_mark(mode, 5 + 4 * it);  // products done (this row block's codes had arrived)
    float s = warp_sum_rows(acc, lane);  // row r's sum in lane r * 32 / ROWS
    int buf = it % nbuf;
    if (late && comb) syv[(it * rgn + rg) * ROWS + lane] = yv;
    if ((lane & (32 / ROWS - 1)) == 0) red[((buf * rgn + rg) * kwn + kw) * ROWS + lane / (32 / ROWS)] = s;
    gx_mark(mode, 6 + 4 * it);
    if (!(mode & 32) && it > 0) {
      // a barrier of the row group only (id 1 + rg), so that row groups need
      // not wait for each other (0.994x a batch-1 step against the block's,
      // which mode bit 5 keeps); the first round's is the block's (the LoRA
      // lt in slt are shared)
      asm volatile("bar.sync %0, %1;" ::"r"(1 + rg), "r"(kwn * 32) : "memory");
    } else {
      __syncthreads();
    }
    gx_mark(mode, 7 + 4 * it);
    if (STAGED && kw == 0 && lane == 0) {  // the row group has read this stage: refill it
      int rbi = rb + L.ns * slots, di, bi;
      if (rbi < total) {
        gemvx_locate<ROWS>(sd, ndesc, rbi, di, bi);
        int stg = it % L.ns;
        gx_issue<ROWS>(sd[di], bi, in, L.at(rg, stg), L, barb + 8 * (rg * GX_STAGES + stg));
      }
    }
    if (kw == 0 && !late) {
      if (anylora) {
        asm volatile("cp.async.wait_group 1;" ::: "memory");  // this row block's b rows
        __syncwarp();
      }
      combine(comb, buf, PAIR || ROPE ? blk : row0, d, yv);
    }
    gx_mark(mode, 8 + 4 * it);
    d = dn, blk = blkn;
  }
  if (late) {  // every row block's combine, with its expand
    if (warp == 0) lora_lt();
    asm volatile("cp.async.wait_group 0;" ::: "memory");
    __syncthreads();
    if (kw == 0) {
      for (int i = 0, r = blockIdx.x * rgn + rg; i < iters && r < total; i++, r += slots) {
        int di, bi;
        gemvx_locate<ROWS>(sd, ndesc, r, di, bi);
        bool comb = lane < ROWS && bi * ROWS + lane < sd[di].out;
        combine(comb, i, bi * ROWS, di, comb ? syv[(i * rgn + rg) * ROWS + lane] : 0.f);
      }
    }
  }
  gx_mark(mode, 23);
  if (lsync) {  // the last block out resets the counters
    __syncthreads();
    if (threadIdx.x == 0 && atomicAdd(lsync + 1, 1u) == gridDim.x - 1) lsync[0] = 0, lsync[1] = 0;
  }
}

// nf4_gemvxm_1 (ndesc weights, their descriptors by value): 8-row blocks,
// one block a SM; nf4_gemvxmt_1: the same with staged codes;
// nf4_gemvxmp_1: paired gate/up rows with SwiGLU into hout (PAIR);
// nf4_gemvxmq_1: q, k, v with RoPE and the KV-cache store (ROPE, ra);
// nf4_gemvxm4_1: 4-row blocks, two blocks a SM (in <= 8192). Suffix r:
// fp16 compute (ROUNDW). Only the PAIR kernels write hout, and only ROPE
// reads ra.
#define NF4_GEMVX(NAME, SUFFIX, ROUNDW, ROWS, STAGED, PAIR, ROPE, THREADS, PERSM)                             \
  extern "C" __global__ void __launch_bounds__(THREADS, PERSM)                                               \
      nf4_gemvxm##NAME##_1##SUFFIX(const __grid_constant__ GemvDescs descs, int ndesc, int total,            \
                                   const float* x, const float* dmap, int in, int mode, const float* x2,      \
                                   const float* normw, float eps, int rgn, u32* lsync, const float2* gtab,    \
                                   float* hout, const __grid_constant__ RopeArgs ra) {                        \
    nf4_gemvx<ROUNDW, ROWS, STAGED, PAIR, ROPE>(descs.d, ndesc, total, x, dmap, in, mode, x2, normw, eps, rgn, \
                                                lsync, gtab, hout, ra);                                       \
  }
NF4_GEMVX(, , false, 8, false, false, false, GX_MAXTHREADS, 1)
NF4_GEMVX(, r, true, 8, false, false, false, GX_MAXTHREADS, 1)
NF4_GEMVX(t, , false, 8, true, false, false, GX_MAXTHREADS, 1)
NF4_GEMVX(t, r, true, 8, true, false, false, GX_MAXTHREADS, 1)
NF4_GEMVX(p, , false, 8, false, true, false, GX_MAXTHREADS, 1)
NF4_GEMVX(p, r, true, 8, false, true, false, GX_MAXTHREADS, 1)
NF4_GEMVX(q, , false, 8, false, false, true, GX_MAXTHREADS, 1)
NF4_GEMVX(4, , false, 4, false, false, false, 256, 2)
NF4_GEMVX(4, r, true, 4, false, false, false, 256, 2)

// ---- tensor-core path -------------------------------------------------------

#define MMA_WARPS 4
#define MMA_ROWS (16 * MMA_WARPS)  // weight rows per block
// x tile in shared memory: 4 planes (one per lane-in-group t, i.e. k offset
// t*32 within the 128-wide k step), each N token rows of 32 halves (64 B)
// padded to 80 B, planes padded to 8 words mod 32: conflict-free 16-byte reads.
#define XROW 40  // halves per token row in a plane (32 + 8 pad)
template <int N>
struct XTile {
  static const int plane = N * XROW + 16;  // halves; N*20 words + 8 words
  static const int halves = 4 * plane;
};

__device__ __forceinline__ void mma16816(float* d, const u32* a, u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// stage_x_tile converts x[tok0 .. tok0+N) x [k0, k0+128) to fp16 in the
// plane layout; tokens past n are zero.
template <int N>
__device__ __forceinline__ void stage_x_tile(u16* xs, const float* x, int n, int in, int tok0, int k0) {
  for (int q = threadIdx.x; q < N * 32; q += blockDim.x) {
    int tok = q >> 5, f4 = q & 31;  // 32 float4 per token row of 128
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (tok0 + tok < n) v = *reinterpret_cast<const float4*>(x + (long long)(tok0 + tok) * in + k0 + f4 * 4);
    int t = f4 >> 3, e = (f4 & 7) * 4;  // plane, element within the 32
    uint2 h = make_uint2(pack_half2(v.x, v.y), pack_half2(v.z, v.w));
    *reinterpret_cast<uint2*>(xs + t * XTile<N>::plane + tok * XROW + e) = h;
  }
}

// nf4_a_frags dequantizes a lane's two 16-byte chunks (rows g and g+8, 32
// consecutive k each) into the A fragments of 8 k-steps: step s uses
// elements 4s..4s+3 of the chunk (logical k t*2, t*2+1 and t*2+8, t*2+9).
__device__ __forceinline__ void nf4_a_frags(u32 a[8][4], uint4 w0, uint4 w1, float am0, float am1,
                                            const float* tab) {
  u32 r0[4] = {w0.x, w0.y, w0.z, w0.w};
  u32 r1[4] = {w1.x, w1.y, w1.z, w1.w};
#pragma unroll
  for (int s = 0; s < 8; s++) {
    // byte 2s and 2s+1 of each chunk: word s/2, bytes (s&1)*2 and (s&1)*2+1
    u32 v0 = r0[s >> 1] >> ((s & 1) * 16);
    u32 v1 = r1[s >> 1] >> ((s & 1) * 16);
    a[s][0] = pack_half2(tab[((v0 >> 4) & 15) << 5] * am0, tab[(v0 & 15) << 5] * am0);
    a[s][2] = pack_half2(tab[((v0 >> 12) & 15) << 5] * am0, tab[((v0 >> 8) & 15) << 5] * am0);
    a[s][1] = pack_half2(tab[((v1 >> 4) & 15) << 5] * am1, tab[(v1 & 15) << 5] * am1);
    a[s][3] = pack_half2(tab[((v1 >> 12) & 15) << 5] * am1, tab[((v1 >> 8) & 15) << 5] * am1);
  }
}

// mma_tile multiplies the A fragments of one 128-wide k step with the x
// tile and accumulates into acc[j] (token block j of 8).
template <int N>
__device__ __forceinline__ void mma_tile(float acc[N / 8][4], u32 a[8][4], const u16* xs, int g, int t) {
  const u16* plane = xs + t * XTile<N>::plane;
#pragma unroll
  for (int j = 0; j < N / 8; j++) {
    const uint4* p = reinterpret_cast<const uint4*>(plane + (j * 8 + g) * XROW);
#pragma unroll
    for (int s2 = 0; s2 < 4; s2++) {
      uint4 b = p[s2];  // halves 8*s2 .. 8*s2+7: k-steps 2*s2 and 2*s2+1
      mma16816(acc[j], a[2 * s2], b.x, b.y);
      mma16816(acc[j], a[2 * s2 + 1], b.z, b.w);
    }
  }
}

// mma_store writes the accumulators: acc[j] = {(row g, tok 2t), (g, 2t+1),
// (g+8, 2t), (g+8, 2t+1)} of token block j. With split k it adds atomically.
template <int N>
__device__ __forceinline__ void mma_store(float* y, float acc[N / 8][4], int n, int out, int row0, int tok0,
                                          int g, int t, int mode, int split) {
#pragma unroll
  for (int j = 0; j < N / 8; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      int row = row0 + g + (e >> 1) * 8, tok = tok0 + j * 8 + 2 * t + (e & 1);
      if (row < out && tok < n) {
        float* dst = y + (long long)tok * out + row;
        if (split) atomicAdd(dst, acc[j][e]);
        else {
          float v = acc[j][e];
          if (mode & 1) v += *dst;
          *dst = maybe_round(v, mode & 2);
        }
      }
    }
}

// nf4_mma: grid (ceil(out/64), ceil(n/N), splits). Block z handles k steps
// z, z+splits, ... of 128; with splits > 1 the caller has zeroed y (or holds
// the addend there) and rounding is left to the caller.
template <int N>
__device__ void nf4_mma(float* y, const float* x, const u8* packed, const u8* qabs, const float* absmax2,
                        const float* dmap_g, float offset, int n, int out, int in, int mode) {
  pdl_start();
  __shared__ __align__(16) u16 xs[XTile<N>::halves];
  __shared__ float tab[512];
  __shared__ float dmap[256];
  for (int i = threadIdx.x; i < 512; i += blockDim.x) tab[i] = NF4_CODE[i >> 5];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) dmap[i] = dmap_g[i];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  int row0 = blockIdx.x * MMA_ROWS + warp * 16, tok0 = blockIdx.y * N;
  int splits = gridDim.z;
  int ra = min(row0 + g, out - 1), rb = min(row0 + g + 8, out - 1);
  float acc[N / 8][4];
#pragma unroll
  for (int j = 0; j < N / 8; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
  int steps = in >> 7;
  // the codes of the next k step are loaded before this one's tensor-core work
  uint4 w0 = make_uint4(0, 0, 0, 0), w1 = w0;
  long long rowa = (long long)ra * in + t * 32, rowb = (long long)rb * in + t * 32;
  if ((int)blockIdx.z < steps) {
    w0 = __ldg(reinterpret_cast<const uint4*>(packed + ((rowa + ((int)blockIdx.z << 7)) >> 1)));
    w1 = __ldg(reinterpret_cast<const uint4*>(packed + ((rowb + ((int)blockIdx.z << 7)) >> 1)));
  }
  for (int ks = blockIdx.z; ks < steps; ks += splits) {
    int k0 = ks << 7;
    __syncthreads();
    stage_x_tile<N>(xs, x, n, in, tok0, k0);
    uint4 n0 = w0, n1 = w1;
    if (ks + splits < steps) {
      int kn = (ks + splits) << 7;
      n0 = __ldg(reinterpret_cast<const uint4*>(packed + ((rowa + kn) >> 1)));
      n1 = __ldg(reinterpret_cast<const uint4*>(packed + ((rowb + kn) >> 1)));
    }
    __syncthreads();
    float am0 = nf4_absmax(qabs, absmax2, dmap, offset, (rowa + k0) >> 6);
    float am1 = nf4_absmax(qabs, absmax2, dmap, offset, (rowb + k0) >> 6);
    u32 a[8][4];
    nf4_a_frags(a, w0, w1, am0, am1, tab + lane);
    mma_tile<N>(acc, a, xs, g, t);
    w0 = n0;
    w1 = n1;
  }
  mma_store<N>(y, acc, n, out, row0, tok0, g, t, mode, splits > 1);
}

template <int N>
__device__ void f16_mma(float* y, const float* x, const u16* w, int n, int out, int in, int mode) {
  pdl_start();
  __shared__ __align__(16) u16 xs[XTile<N>::halves];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  int row0 = blockIdx.x * MMA_ROWS + warp * 16, tok0 = blockIdx.y * N;
  int splits = gridDim.z;
  int ra = min(row0 + g, out - 1), rb = min(row0 + g + 8, out - 1);
  float acc[N / 8][4];
#pragma unroll
  for (int j = 0; j < N / 8; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
  int steps = in >> 7;
  for (int ks = blockIdx.z; ks < steps; ks += splits) {
    int k0 = ks << 7;
    __syncthreads();
    stage_x_tile<N>(xs, x, n, in, tok0, k0);
    const uint4* pa = reinterpret_cast<const uint4*>(w + (long long)ra * in + k0 + t * 32);
    const uint4* pb = reinterpret_cast<const uint4*>(w + (long long)rb * in + k0 + t * 32);
    uint4 va[4], vb[4];
#pragma unroll
    for (int q = 0; q < 4; q++) {
      va[q] = __ldg(pa + q);
      vb[q] = __ldg(pb + q);
    }
    __syncthreads();
    // k-step s uses halves 4s..4s+3 of the chunk: words 2s, 2s+1.
    u32 a[8][4];
#pragma unroll
    for (int s = 0; s < 8; s++) {
      uint4 A = va[s >> 1], B = vb[s >> 1];
      a[s][0] = (s & 1) ? A.z : A.x;
      a[s][2] = (s & 1) ? A.w : A.y;
      a[s][1] = (s & 1) ? B.z : B.x;
      a[s][3] = (s & 1) ? B.w : B.y;
    }
    mma_tile<N>(acc, a, xs, g, t);
  }
  mma_store<N>(y, acc, n, out, row0, tok0, g, t, mode, splits > 1);
}

// nf4_mmad_N: the tensor-core product for few tokens (N = 8 or 16 per
// block), with no shared-memory staging of x: each lane loads its B
// fragments straight from x (float32, converted in registers; x is small
// and stays in L1/L2) and each warp owns 32 weight rows (two m16 tiles), so
// a block needs no barrier after its start. grid (ceil(out/128), 1, splits).
template <int N>
__device__ void nf4_mmad(float* y, const float* x, const u8* packed, const u8* qabs, const float* absmax2,
                         const float* dmap_g, float offset, int n, int out, int in, int mode) {
  pdl_start();
  __shared__ float tab[512];
  __shared__ float dmap[256];
  for (int i = threadIdx.x; i < 512; i += blockDim.x) tab[i] = NF4_CODE[i >> 5];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) dmap[i] = dmap_g[i];
  __syncthreads();
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  int row0 = blockIdx.x * 128 + warp * 32;
  int splits = gridDim.z, steps = in >> 7;
  float acc[2][N / 8][4];
#pragma unroll
  for (int mt = 0; mt < 2; mt++)
#pragma unroll
    for (int j = 0; j < N / 8; j++) acc[mt][j][0] = acc[mt][j][1] = acc[mt][j][2] = acc[mt][j][3] = 0.f;
  for (int ks = blockIdx.z; ks < steps; ks += splits) {
    int k0 = ks << 7;
    uint4 w0[2], w1[2];
    long long ja[2], jb[2];
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
      ja[mt] = (long long)min(row0 + mt * 16 + g, out - 1) * in + k0 + t * 32;
      jb[mt] = (long long)min(row0 + mt * 16 + g + 8, out - 1) * in + k0 + t * 32;
      w0[mt] = __ldg(reinterpret_cast<const uint4*>(packed + (ja[mt] >> 1)));
      w1[mt] = __ldg(reinterpret_cast<const uint4*>(packed + (jb[mt] >> 1)));
    }
    u32 xb[N / 8][16];  // token j*8+g, elements t*32 + 2q, 2q+1 as half2
#pragma unroll
    for (int j = 0; j < N / 8; j++) {
      int tok = j * 8 + g;
#pragma unroll
      for (int q = 0; q < 8; q++) {
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (tok < n) v = __ldg(reinterpret_cast<const float4*>(x + (long long)tok * in + k0 + t * 32) + q);
        xb[j][2 * q] = pack_half2(v.x, v.y);
        xb[j][2 * q + 1] = pack_half2(v.z, v.w);
      }
    }
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
      float am0 = nf4_absmax(qabs, absmax2, dmap, offset, ja[mt] >> 6);
      float am1 = nf4_absmax(qabs, absmax2, dmap, offset, jb[mt] >> 6);
      u32 a[8][4];
      nf4_a_frags(a, w0[mt], w1[mt], am0, am1, tab + lane);
#pragma unroll
      for (int j = 0; j < N / 8; j++)
#pragma unroll
        for (int s = 0; s < 8; s++) mma16816(acc[mt][j], a[s], xb[j][2 * s], xb[j][2 * s + 1]);
    }
  }
#pragma unroll
  for (int mt = 0; mt < 2; mt++)
    mma_store<N>(y, acc[mt], n, out, row0 + mt * 16, 0, g, t, mode, splits > 1);
}

extern "C" __global__ void __launch_bounds__(128)
    nf4_mmad_8(float* y, const float* x, const u8* packed, const u8* qabs, const float* absmax2, const float* dmap,
               float offset, int n, int out, int in, int mode) {
  nf4_mmad<8>(y, x, packed, qabs, absmax2, dmap, offset, n, out, in, mode);
}
extern "C" __global__ void __launch_bounds__(128)
    nf4_mmad_16(float* y, const float* x, const u8* packed, const u8* qabs, const float* absmax2, const float* dmap,
                float offset, int n, int out, int in, int mode) {
  nf4_mmad<16>(y, x, packed, qabs, absmax2, dmap, offset, n, out, in, mode);
}

#define MMA_KERNELS(N)                                                                                  \
  extern "C" __global__ void __launch_bounds__(MMA_WARPS * 32)                                          \
      nf4_mma_##N(float* y, const float* x, const u8* packed, const u8* qabs, const float* absmax2,      \
                  const float* dmap, float offset, int n, int out, int in, int mode) {                  \
    nf4_mma<N>(y, x, packed, qabs, absmax2, dmap, offset, n, out, in, mode);                            \
  }                                                                                                     \
  extern "C" __global__ void __launch_bounds__(MMA_WARPS * 32)                                          \
      f16_mma_##N(float* y, const float* x, const u16* w, int n, int out, int in, int mode) {           \
    f16_mma<N>(y, x, w, n, out, in, mode);                                                              \
  }
MMA_KERNELS(16)
MMA_KERNELS(64)

// round_rows rounds y (count floats) to fp16 in place: the epilogue of a
// split-k product under fp16 compute.
extern "C" __global__ void round_f16(float* y, long long count) {
  pdl_start();
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
       i += (long long)gridDim.x * blockDim.x)
    y[i] = round_half(y[i]);
}

// ---- generic fallbacks: one warp per (token, row) ------------------------------

// generic_product is the body of the *_generic kernels: one warp per (token,
// row), y[tok, row] (+)= sum_c wf(row, c) * x[tok, c], then the mode's add
// and rounding.
template <typename Wf>
__device__ __forceinline__ void generic_product(float* y, const float* x, int n, int out, int in, int mode, Wf wf) {
  pdl_start();
  int lane = threadIdx.x & 31;
  long long wid = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
  if (wid >= (long long)n * out) return;
  int tok = wid / out, row = wid % out;
  const float* xr = x + (long long)tok * in;
  float acc = 0.f;
  for (int c = lane; c < in; c += 32) acc += wf(row, c) * xr[c];
  acc = warp_sum(acc);
  if (lane == 0) {
    float* dst = y + (long long)tok * out + row;
    if (mode & 1) acc += *dst;
    *dst = maybe_round(acc, mode & 2);
  }
}

extern "C" __global__ void nf4_generic(float* y, const float* x, const u8* packed, const u8* qabs,
                                       const float* absmax2, const float* dmap, float offset, int n, int out,
                                       int in, int mode) {
  generic_product(y, x, n, out, in, mode, [&](int row, int c) {
    long long j = (long long)row * in + c;
    u8 b = packed[j >> 1];
    int idx = (j & 1) ? (b & 15) : (b >> 4);
    float w = NF4_CODE[idx] * nf4_absmax(qabs, absmax2, dmap, offset, j >> 6);
    return maybe_round(w, mode & 2);  // fp16 compute: the weight in half
  });
}

extern "C" __global__ void f16_generic(float* y, const float* x, const u16* w, int n, int out, int in, int mode) {
  generic_product(y, x, n, out, in, mode, [&](int row, int c) { return half_to_float(w[(long long)row * in + c]); });
}

extern "C" __global__ void f32_generic(float* y, const float* x, const float* w, int n, int out, int in, int mode) {
  generic_product(y, x, n, out, in, mode, [&](int row, int c) { return w[(long long)row * in + c]; });
}

// ---- dequantize-then-cuBLAS path (prefill) ------------------------------------

// nf4_dequant_f16 writes rows [row0, row0+rows) of an NF4 weight as fp16:
// w16 (rows, in), each value Code[idx] * absmax in float32, then rounded.
// One thread per code byte (two elements); rows*in and row0*in even.
extern "C" __global__ void nf4_dequant_f16(u32* w16, const u8* packed, const u8* qabs, const float* absmax2,
                                           const float* dmap, float offset, long long row0, int rows, int in) {
  pdl_start();
  __shared__ float code[16];
  if (threadIdx.x < 16) code[threadIdx.x] = NF4_CODE[threadIdx.x];
  __syncthreads();
  long long nbytes = (long long)rows * in / 2, base = row0 * in / 2;
  for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < nbytes;
       b += (long long)gridDim.x * blockDim.x) {
    u8 v = packed[base + b];
    float am = nf4_absmax(qabs, absmax2, dmap, offset, (2 * (base + b)) >> 6);
    w16[b] = pack_half2(code[v >> 4] * am, code[v & 15] * am);
  }
}

// f32_to_f16: dst[i] = half(src[i]), count even.
extern "C" __global__ void f32_to_f16(u32* dst, const float2* src, long long pairs) {
  pdl_start();
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < pairs;
       i += (long long)gridDim.x * blockDim.x) {
    float2 v = src[i];
    dst[i] = pack_half2(v.x, v.y);
  }
}

// ---- 2 to 16 tokens, x fragments in registers (nf4_mmax_16) -------------------
//
// Decode of a batch: the weight is the mma A operand, dequantized in
// registers (Code*absmax in float32, rounded to half as every tensor-core
// path does), the tokens the B operand. nf4_mma_16 re-stages x through
// shared memory for every tile and reads about 0.6 TB/s; here each lane's B
// fragments stay in registers for the whole launch, as x does in nf4_gemvx.
//
// A block is MX_WARPS warps; k split ks (blockIdx.y) covers inputs
// [4096 ks, 4096 ks + 4096), warp w the 256 of them from 4096 ks + 256 w, and
// lane (g = lane/4, t = lane%4) the 64 from col0 = 4096 ks + 256 w + 64 t:
// 32 code bytes of row g and 32 of row g+8 of each 16-row tile. Step s (0..15)
// of the k16 products takes bytes 2s (the mma's k 2t, 2t+1) and 2s+1 (k 2t+8,
// 2t+9) of each row, i.e. inputs col0 + 4s .. +3; the B fragments hold x at
// the same inputs, so the sum over k is only permuted. Tiles are walked
// with a prefetch of the next one's codes; the warps' partial sums meet in
// shared memory (double-buffered, one barrier a tile) and 256 threads store
// (row, token) pairs: directly with one k split, atomically with several
// (y zeroed or accumulated into by the caller, rounded afterwards).
//
// NT is the number of token octets: 2 (nf4_mmax_16, up to 16 tokens) or 1
// (nf4_mmax_8, up to 8: the second mma of every step, which only tokens
// 8-15 need, is not issued). With NT = 1:
//   - the byte table's entries are 256 bytes apart (entry b of lane l at
//     256 b + 8 (l % 16), build_btab's SPREAD), so that one byte permute of
//     the code word and 8 (l % 16) makes a lookup's offset (128 bytes an
//     entry take a shift and two logic ops);
//   - the 16 steps' products go to two accumulators (even and odd steps),
//     summed at the end: half the chain of dependent mma. So nf4_mmax_8's
//     sums differ from nf4_mmax_16's in the order of their terms.
//
// POST (NT = 1; nf4_mmaxp_8, nf4_mmaxfp_8: the benchmark's batch-1 step)
// post-scales: lane t takes inputs 16 t .. 16 t + 15 of each of the warp's
// four 64-input absmax blocks, so that the 16 k of an mma step (its quad)
// share one absmax a row; the A fragments are the codes in half, unscaled
// (build_htab's table), and each block's four products are summed into a
// fresh accumulator that is then multiplied by the block's absmax. A weight
// is half(Code) * absmax, the product not rounded to half.
//
// FUSE (nf4_mmaxf_8 and its post-scaled and adapter kernels, the one-token
// step on the tensor cores) adds two fusions of the kernels around the
// product, each bit for bit what they store:
//   normw: x is float32 and the B fragments are rmsnorm's half output
//          (its 256-thread sum of squares, then w * (x * inv));
//   h16:   gate and up paired (descs 0 and 1, equal out): a 16-row tile
//          holds rows 8j..8j+7 of gate as its rows 0-7 and the same rows
//          of up as 8-15, and the store writes silu_mul's half output h
//          beside g and u. Down then reads h; no norm or SwiGLU launches.
#define MX_WARPS 16
#define MX_MAXITERS 64     // the adapter's kernels: the most tiles a block walks (its expand table, the chain's h rows)
#define MX_MAXPARTS 256    // chained shrinks: the most producer blocks (partials a shrink)

// MmaxFuse holds FUSE's operands (null: that fusion off); see above.
// ra.hd > 0 (one token; descs q, k, v): RoPE and the KV-cache store in the
// epilogue, rope_kv_f16's work, with q's and k's tiles pairing rows j and
// j + hd/2 of a head (mmax_row).
//
// lsync non-null (one token, no RoPE): the adapters of descs with lb. Block
// (j, ks) with j < the descs' total rank computes shrink row j (gemvx_job)
// over k split ks of the operand as the B fragments hold it (half), and
// publishes it to lt[ks * lstride + row] with one release count in
// lsync[0]. The prologue stages the b rows of all of a block's tiles in
// shared memory (mmax_lb_stage; the launch sizes it), and warp it % 16 adds
// tile it's expands, lscale * (b row . the shrinks summed over the k
// splits), to its partial sums (k split 0 only), warp 0 on the first tile
// once every job is counted; the last of k split 0's blocks past that
// wait resets lsync[0..1] for the next launch.
//
// Chained shrinks (one token): the paired gate/up launch with nla also
// computes the next product's shrinks of its h, nla (out, nlr) being that
// product's shrink matrix transposed: block b stores its tiles' share, the
// sum over its rows i of nla[i] * h[i] (h in half, as stored; its tiles in
// order), to nlt[j MX_MAXPARTS + b] for shrink j. The next launch (down: one desc, no la; the
// same nlt and nlr) takes nparts = the producer's blocks and sums those
// partials in its prologue: no shrink jobs, no wait.
struct MmaxFuse {
  const float* normw;
  u16* h16;  // (n, out) half
  float eps;
  RopeArgs ra;
  u32* lsync;
  const float* nla;  // the next product's shrink matrix, transposed (out, nlr), or null
  float* nlt;        // the chain's per-block partial shrinks (nlr, MX_MAXPARTS): the producer's out, the next launch's in
  int nlr;           // the chain's rank (a multiple of 4, <= 32)
  int nparts;        // > 0: this launch's shrinks are the nparts partials at nlt (one desc), not shrink jobs
};

// mmax_lb_stage starts copying (cp.async, every thread of the block) the
// b rows of all of this block's tiles (tile0, + gridDim.x, ... below total;
// iters of them) into dst: tile i's 16 local rows at dst + 16 i (lr + 4),
// lr + 4 floats a row (padded: rows in other banks; paired: weight 0's
// rows 8 lt .. 8 lt + 7, then weight 1's; else rows 16 lt .. of the tile's
// weight). Ranks lr are a multiple of 4 and equal across descs.
__device__ __forceinline__ void mmax_lb_stage(float* dst, const GemvDesc* descs, int ndesc, bool pair, int tile0,
                                              int iters, int total) {
  int cpr = descs[0].lr >> 2;  // 16-byte chunks a row
  for (int c = threadIdx.x; c < iters * 16 * cpr; c += blockDim.x) {
    int i = c / (16 * cpr), r = (c / cpr) & 15, ch = c % cpr;
    int ti = tile0 + i * gridDim.x, d = 0, lt = ti;
    if (ti >= total) continue;
    if (!pair) gemv_locate(descs, ndesc, ti, d, lt);
    const GemvDesc& g = pair ? descs[r >> 3] : descs[d];
    int row = pair ? lt * 8 + (r & 7) : lt * 16 + r;
    if (!g.lb || row >= g.out) continue;
    u32 sdst = (u32)__cvta_generic_to_shared(dst + (i * 16 + r) * (4 * cpr + 4) + 4 * ch);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sdst), "l"(g.lb + (long long)row * g.lr + 4 * ch)
                 : "memory");
  }
}

// mmax_na_stage starts copying (cp.async, every thread of the block) the
// rows of nla (the next product's shrink matrix transposed, nlr floats a
// row) that this block's h rows take: tile i's rows 8 lt .. 8 lt + 7 (lt =
// tile0 + i gridDim.x) at dst + 8 i nlr. Rows past out, and tiles past
// total, are zeros.
__device__ __forceinline__ void mmax_na_stage(float* dst, const float* nla, int nlr, int out, int tile0, int iters,
                                              int total) {
  int cpr = nlr >> 2;  // 16-byte chunks a row
  for (int c = threadIdx.x; c < iters * 8 * cpr; c += blockDim.x) {
    int i = c / (8 * cpr), r = (c / cpr) & 7, ch = c % cpr;
    int ti = tile0 + i * gridDim.x, row = ti * 8 + r;
    float* d = dst + (i * 8 + r) * nlr + 4 * ch;
    if (ti >= total || row >= out) {
      *reinterpret_cast<float4*>(d) = make_float4(0.f, 0.f, 0.f, 0.f);
      continue;
    }
    u32 sdst = (u32)__cvta_generic_to_shared(d);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sdst), "l"(nla + (long long)row * nlr + 4 * ch)
                 : "memory");
  }
}

// mmax_parts_req loads lane's share of the chained shrink j's partials
// (nparts of them at nlt + j MX_MAXPARTS: a warp's loads coalesce):
// partial lane + 32 q into pv[q], zeros past nparts or for j >= nlr.
__device__ __forceinline__ void mmax_parts_req(float (&pv)[8], const MmaxFuse& f, int j, int lane) {
#pragma unroll
  for (int q = 0; q < 8; q++) {
    int p = lane + 32 * q;
    pv[q] = j < f.nlr && p < f.nparts ? __ldcg(f.nlt + j * MX_MAXPARTS + p) : 0.f;
  }
}

// mmax_expand_table writes the expands of every tile i of this block (tile
// blockIdx.x + i gridDim.x, i < iters) to se[16 i + r] for local row r:
// lscale * (b row . the shrinks slt), from the b rows that mmax_lb_stage
// staged at slb; zero for rows past out or without an expand. Warp w takes
// local row w of every tile, lane l tiles l, l + 32, ...
__device__ __forceinline__ void mmax_expand_table(float* se, const float* slb, const float* slt, const GemvDesc* descs,
                                                  int ndesc, const GemvDesc* pair, int iters, int total, int warp,
                                                  int lane) {
  for (int i = lane; i < iters; i += 32) {
    int ti = blockIdx.x + i * gridDim.x, d = 0, lt = ti;
    float e = 0.f;
    if (ti < total) {
      if (!pair) gemv_locate(descs, ndesc, ti, d, lt);
      const GemvDesc& g = pair ? pair[warp >> 3] : descs[d];
      int row = pair ? lt * 8 + (warp & 7) : lt * 16 + warp;
      if (g.lb && row < g.out) {
        const float4* b4 = reinterpret_cast<const float4*>(slb + (i * 16 + warp) * (g.lr + 4));
        const float4* t4 = reinterpret_cast<const float4*>(slt + (pair ? warp >> 3 : d) * 32);
        for (int q = 0; q < (g.lr >> 2); q++) {
          float4 b = b4[q], tv = t4[q];
          e += (b.x * tv.x + b.y * tv.y) + (b.z * tv.z + b.w * tv.w);
        }
        e *= g.lscale;
      }
    }
    se[i * 16 + warp] = e;
  }
}

// mmax_chain_sum stores, for lane l < nlr of the calling warp, shrink l's
// share of a block's h rows: the sum over its iters x 8 rows i (in order,
// eight running sums) of na[i nlr + l] * hs[i], to dst[l MX_MAXPARTS].
__device__ __forceinline__ void mmax_chain_sum(const float* na, const float* hs, float* dst, int nlr, int iters, int lane) {
  __syncwarp();  // (the h rows' writers are warp 0's lanes 0-7)
  if (lane >= nlr) return;
  float v[8] = {};
  for (int i = 0; i < iters * 8; i += 8) {
#pragma unroll
    for (int r = 0; r < 8; r++) v[r] += na[(i + r) * nlr + lane] * hs[i + r];
  }
  dst[lane * MX_MAXPARTS] = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

// mmax_row is local row r (0-15) of tile lt of weight d: 16 lt + r, or
// under RoPE (rhd > 0, q and k: d < 2) rows j and j + rhd/2 of a head as
// rows r and r + 8 (j = 8 (lt % (rhd/16)) + r % 8).
__device__ __forceinline__ int mmax_row(int lt, int r, int d, int rhd) {
  if (rhd > 0 && d < 2) {
    int tph = rhd >> 4, h = lt / tph;
    return h * rhd + (lt - h * tph) * 8 + (r & 7) + (r >> 3) * (rhd >> 1);
  }
  return lt * 16 + r;
}

// mmax_load requests this lane's 32 code bytes, absmax code and scale of
// rows 16 tile + g (h = 0) and + 8 (h = 1) of d (weight di; under RoPE,
// rhd > 0, mmax_row's); paired (pair: descs 0 and 1), of row 8 tile + g of
// each. ok[h]: the row exists.
//
// POST: the lane's 16 inputs col0 .. col0+15 of each of the warp's four
// 64-input absmax blocks (col0 = the warp's first input + 16 t; block b at
// col0 + 64 b): 8 code bytes a block, blocks 2i and 2i+1 of row h in
// w[2 h + i], and the four blocks' absmax codes as the bytes of qa[h].
template <bool POST = false>
__device__ __forceinline__ void mmax_load(uint4 (&w)[4], u32 (&qa)[2], float (&sa)[2], bool (&ok)[2],
                                          const GemvDesc* pair, const GemvDesc& d, int tile, int g, int in, int col0,
                                          bool live, int di = 0, int rhd = 0) {
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const GemvDesc& dd = pair ? pair[h] : d;
    int row = pair ? tile * 8 + g : mmax_row(tile, g + 8 * h, di, rhd);
    w[2 * h] = w[2 * h + 1] = make_uint4(0, 0, 0, 0);
    qa[h] = 0, sa[h] = 0.f;
    ok[h] = live && row < dd.out;
    if (ok[h]) {
      long long j0 = (long long)row * in + col0;
      if (POST) {
        const uint2* p = reinterpret_cast<const uint2*>(dd.packed + (j0 >> 1));
        uint2 b0 = __ldg(p), b1 = __ldg(p + 4), b2 = __ldg(p + 8), b3 = __ldg(p + 12);
        w[2 * h] = make_uint4(b0.x, b0.y, b1.x, b1.y);
        w[2 * h + 1] = make_uint4(b2.x, b2.y, b3.x, b3.y);
        qa[h] = __ldg(reinterpret_cast<const u32*>(dd.qabs + (j0 >> 6)));
      } else {
        const uint4* p = reinterpret_cast<const uint4*>(dd.packed + (j0 >> 1));
        w[2 * h] = __ldg(p);
        w[2 * h + 1] = __ldg(p + 1);
        qa[h] = __ldg(dd.qabs + (j0 >> 6));
      }
      sa[h] = __ldg(dd.absmax2 + (j0 >> 14));
    }
  }
}

// mmax_a returns the half2 A register of byte b (two codes) scaled by am.
__device__ __forceinline__ u32 mmax_a(const char* tb, u32 b, float am) {
  float2 p = *reinterpret_cast<const float2*>(tb + (b << 7));
  return pack_half2(p.x * am, p.y * am);
}

// mmax_ap is mmax_a for byte k of the code word v, from the spread table
// at tab: sel = 0x5504 | k << 4 puts the byte above lane8 = 8 (lane % 16).
__device__ __forceinline__ u32 mmax_ap(const char* tab, u32 v, u32 lane8, u32 sel, float am) {
  float2 p = *reinterpret_cast<const float2*>(tab + __byte_perm(v, lane8, sel));
  return pack_half2(p.x * am, p.y * am);
}

// mmax_hp is nf4_mmaxp's A register for byte k of the code word v: the two
// codes in half, unscaled, from build_htab's table at tab (sel as mmax_ap's,
// lane4 = 4 lane).
__device__ __forceinline__ u32 mmax_hp(const char* tab, u32 v, u32 lane4, u32 sel) {
  return *reinterpret_cast<const u32*>(tab + __byte_perm(v, lane4, sel));
}

// mmax_norm_stage writes rmsnorm's half output for the n <= 4 tokens of x
// (in <= 4096 inputs) to xs (n x in halves): threads c < 256 hold x[c +
// 256 k] and their norm weights nw[k] (requested before the previous kernel
// ended), sum the squares in rmsnorm's order (then block_sum's: a warp
// butterfly, and for the 8 warp sums in sred the tree below, which is that
// butterfly with zeros past lane 8), and store w * (x * inv). One global
// round trip (x) instead of two (x for the sums, then x and the weights
// for the fragments). Block-wide; ends with a barrier.
__device__ __forceinline__ void mmax_norm_stage(u16* xs, const float* x, const float (&nw)[16], int n, int in,
                                                float eps, int r, float* sred) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, c = threadIdx.x, kn = in >> 8;
  for (int tt = 0; tt < n; tt++) {
    float xv[16], ss = 0.f;
    if (c < 256) {
      const float* xr = x + (long long)tt * in + c;
#pragma unroll
      for (int k = 0; k < 16; k++) xv[k] = k < kn ? xr[256 * k] : 0.f;
#pragma unroll
      for (int k = 0; k < 16; k++)
        if (k < kn) ss += xv[k] * xv[k];
    }
    ss = warp_sum(ss);
    if (lane == 0 && warp < 8) sred[8 * tt + warp] = ss;
    __syncthreads();
    if (c < 256) {
      const float* rs = sred + 8 * tt;
      float v = ((rs[0] + rs[4]) + (rs[2] + rs[6])) + ((rs[1] + rs[5]) + (rs[3] + rs[7]));
      float inv = rsqrtf(v / in + eps);
#pragma unroll
      for (int k = 0; k < 16; k++)
        if (k < kn) xs[tt * in + c + 256 * k] = float_to_half(maybe_round(nw[k] * maybe_round(xv[k] * inv, r), r));
    }
  }
  __syncthreads();
}

// nf4_mmax: the products of x with the weights of descs (several weights of
// one x in one launch, as nf4_gemvx; 16-row tiles, desc.blocks of them a
// weight, total in all; paired (FUSE, f.h16): tiles of 8 rows of both
// weights, total = ceil(out / 8)). x is float32 (rounded to half here, or
// normalized with FUSE's f.normw) or, when x16 is non-null, already half
// (x16, the same layout; x unused): 16-byte loads straight into the
// fragments, half the bytes that every block reads. n <= 8 NT.
template <int NT, bool FUSE, bool POST = false, bool LORA = false, int CHAIN = 0>
__device__ void nf4_mmax(const GemvDesc* descs, int ndesc, int total, const float* x, const u16* x16,
                         const float* dmap_g, int n, int in, int mode, int ksplits, MmaxFuse f) {
  // NT = 1: the spread 16-replica table (build_btab's SPREAD), 256 bytes an
  // entry, so that one byte permute of the code word and 8 (lane % 16) makes
  // a lookup's offset
  constexpr int REPL = GX_TAB, SPAN = NT == 1 ? 32 : GX_TAB;
  // NT = 1: the partial sums token-major, so that at one token the 16 pairs
  // of a tile are stored by warp 0's first 16 lanes (not 2 lanes of each of
  // 8 warps)
  constexpr bool TM = NT == 1;
  static_assert(!POST || NT == 1, "post-scaled products are nf4_mmax_8's");
  static_assert(!CHAIN || LORA, "chained shrinks are the adapter kernels'");
  // CHAIN 1: the producer (paired gate/up computing the next product's
  // shrinks); 2: the consumer (down taking them: one desc, no norm)
  constexpr bool PROD = CHAIN == 1, CONS = CHAIN == 2;
  extern __shared__ float4 smem4[];
  __shared__ GemvDesc sdesc[GX_MAXDESC];
  float2* tab = reinterpret_cast<float2*>(smem4);
  float* dmap = reinterpret_cast<float*>(tab + 256 * SPAN);
  float* red = dmap + 256;  // [2][MX_WARPS][256]
  // lora: the shrink job's a row over this k split (4096 floats), in the
  // partial sums' buffers beyond the norm's half x (free until the first
  // tile's sums: the job reads it before the prologue's barrier); the b rows
  // of this block's tiles after the buffers ([iters][16][lr + 4])
  float* sar = red + 2048;
  float* slb = red + 2 * MX_WARPS * 256;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int g = lane >> 2, t = lane & 3;
  int col0 = blockIdx.y * 4096 + warp * 256 + t * (POST ? 16 : 64);
  bool live = blockIdx.y * 4096 + warp * 256 < in;  // in % 256 == 0: whole warps
  // CHAIN: what the producer (the paired gate/up of one token; runTC
  // checks) and the consumer never take folds away: RoPE, the producer's k
  // splits and residual, the consumer's pairing (and below, its norm and
  // shrink jobs)
  const GemvDesc* pair = FUSE && !CONS && (PROD || f.h16) ? descs : nullptr;
  const int rhd = FUSE && !CHAIN ? f.ra.hd : 0;  // RoPE's head dim (0: none)
  if (PROD) ksplits = 1, mode &= ~1;
  int iters = (total + gridDim.x - 1) / gridDim.x;
  if (threadIdx.x < ndesc) sdesc[threadIdx.x] = descs[threadIdx.x];
  uint4 w[4], wn[4];
  u32 qa[2], qan[2];
  float sa[2], san[2];
  bool ok[2], okn[2];
  // the first tile's codes are requested before the prologue
  int tile = blockIdx.x, d = 0, lt = tile;  // this iteration's tile: weight d, its tile lt
  if (tile < total && !pair) gemv_locate(descs, ndesc, tile, d, lt);
  mmax_load<POST>(w, qa, sa, ok, pair, descs[d], lt, g, in, col0, live && tile < total, d, rhd);
  // lora: this block's shrink job (its a row's inputs k0 .. k0+7 for this
  // thread, copied to sar, so that no registers hold them through the
  // prologue)
  const bool lora = LORA && (CONS || f.lsync);
  int jd = 0, jj = 0, k0 = blockIdx.y * 4096 + threadIdx.x * 8;
  bool job = lora && !CONS && !(mode & 2048) && gemvx_job(descs, ndesc, blockIdx.x, jd, jj);  // (mode bit 11: no shrinks, a probe)
  if (job && k0 < in) {
    const float* ap = descs[jd].la + (long long)jj * in + k0;
    u32 sdst = (u32)__cvta_generic_to_shared(sar + threadIdx.x * 8);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sdst), "l"(ap) : "memory");
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sdst + 16), "l"(ap + 4) : "memory");
  }
  // lora: every b row this block's expands take, staged once (the
  // prologue's barrier publishes them)
  if (lora && !(mode & 4096)) mmax_lb_stage(slb, descs, ndesc, pair, tile, iters, total);  // (mode bit 12: no staging, a probe)
  // chained (pair only): this block's rows of the next product's shrink
  // matrix after the b rows (iters x 8 x nlr floats), and its h rows as
  // stored in shh (zeros where none), which the block sums after its last
  // tile (so that the loop holds nothing more: with a running sum in it,
  // ptxas spilled ten of its values)
  __shared__ float shh[PROD ? 8 * MX_MAXITERS : 1];
  float* sna = slb + (f.lsync ? iters * 16 * (descs[0].lr + 4) : 0);
  if (PROD && f.nla && !(mode & 4096)) {
    mmax_na_stage(sna, f.nla, f.nlr, descs[0].out, tile, iters, total);
    for (int i = threadIdx.x; i < iters * 8; i += blockDim.x) shh[i] = 0.f;
  }
  float dv[GX_DMAP_REGS];
  dmap_req(dv, dmap, dmap_g);
  bool norm = FUSE && !CONS && f.normw;
  float nw[16];  // norm: the weights of inputs threadIdx.x + 256 k (threads < 256)
  if (norm) {
#pragma unroll
    for (int k = 0; k < 16; k++) nw[k] = threadIdx.x < 256 && k < (in >> 8) ? __ldg(f.normw + threadIdx.x + 256 * k) : 0.f;
  }
  if (POST)
    build_htab(reinterpret_cast<u32*>(tab));
  else
    build_btab<REPL, NT == 1>(tab);
  store_dmap(dmap, dmap_g, dv);
  pdl_start();  // x and y come from earlier kernels
  // chained (one desc): warp w's shrink's partials, requested now so that
  // they arrive with the B fragments (one round trip, not a second one
  // before the prologue's barrier: that cost 1.8 us a launch)
  const bool psum = CONS && !(mode & 2048);  // (mode bit 11: no shrinks, a probe)
  float pv[8];
  if (psum) mmax_parts_req(pv, f, warp, lane);
  // norm: x normalized to half in red (free until the first partial sums),
  // then read as x16 from there
  __shared__ float sred[32];
  // RoPE: rope_kv_f16's (cos, sin) for each j < hd/2 of the token's angle
  // (the barrier after the B fragments publishes them), its slot and position
  __shared__ float2 srot[FUSE ? 128 : 1];
  int rS = 0, rP = 0;
  if (rhd > 0) {
    rS = *f.ra.seq, rP = *f.ra.pos;
    if ((int)threadIdx.x < rhd / 2) {
      float sn, cs;
      sincosf((float)rP * f.ra.inv_freq[threadIdx.x], &sn, &cs);
      srot[threadIdx.x] = make_float2(cs, sn);
    }
  }
  if (norm) {
    mmax_norm_stage(reinterpret_cast<u16*>(red), x, nw, n, in, f.eps, mode & 2, sred);
    x16 = reinterpret_cast<const u16*>(red);
  }
  // B fragments: tokens g (and 8+g) at this lane's 64 inputs
  u32 bf[16][2 * NT];
  // (POST: steps 4b .. 4b+3 take inputs col0 + 64 b + 4 j .. +3, j = 0..3)
  if (x16) {  // 8 halves a load: inputs 8q..8q+7 are steps 2q (k 0-3) and 2q+1 (k 4-7)
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
      int tok = 8 * nt + g;
      const uint4* p = reinterpret_cast<const uint4*>(x16 + (long long)tok * in + col0);
#pragma unroll
      for (int q = 0; q < 8; q++) {
        uint4 v = live && tok < n ? p[POST ? 8 * (q >> 1) + (q & 1) : q] : make_uint4(0, 0, 0, 0);
        bf[2 * q][2 * nt] = v.x, bf[2 * q][2 * nt + 1] = v.y;
        bf[2 * q + 1][2 * nt] = v.z, bf[2 * q + 1][2 * nt + 1] = v.w;
      }
    }
  } else {
#pragma unroll
    for (int s = 0; s < 16; s++)
#pragma unroll
      for (int nt = 0; nt < NT; nt++) {
        int tok = 8 * nt + g;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (live && tok < n)
          v = *reinterpret_cast<const float4*>(x + (long long)tok * in + col0 + (POST ? 64 * (s >> 2) + 4 * (s & 3) : 4 * s));
        bf[s][2 * nt] = pack_half2(v.x, v.y);
        bf[s][2 * nt + 1] = pack_half2(v.z, v.w);
      }
  }
  __shared__ float sshr[MX_WARPS];  // lora: the warps' partial shrinks
  __shared__ __align__(16) float slt[FUSE ? GX_MAXDESC * 32 : 4];  // lora: the shrinks, summed over k splits
  if (lora || (PROD && f.nla)) asm volatile("cp.async.wait_all;" ::: "memory");  // its a inputs, b rows and nla rows (the barrier below: everyone's)
  if (psum) {  // chained: warp w sums shrink w's partials (then w + 16's, requested now), in a fixed order
    for (int j = warp; j < f.nlr; j += MX_WARPS) {
      if (j != warp) mmax_parts_req(pv, f, j, lane);
      float v = ((pv[0] + pv[1]) + (pv[2] + pv[3])) + ((pv[4] + pv[5]) + (pv[6] + pv[7]));
      v = warp_sum(v);
      if (lane == 0) slt[j] = v;
    }
  }
  if (job) {  // token 0's operand in half, as the B fragments hold it
    float sj = 0.f;
    if (k0 < in) {
      float xv[8];
#pragma unroll
      for (int k = 0; k < 8; k++) xv[k] = x16 ? half_to_float(x16[k0 + k]) : round_half(x[k0 + k]);
      float4 a0 = *reinterpret_cast<const float4*>(sar + threadIdx.x * 8), a1 = *reinterpret_cast<const float4*>(sar + threadIdx.x * 8 + 4);
      sj = ((a0.x * xv[0] + a0.y * xv[1]) + (a0.z * xv[2] + a0.w * xv[3])) +
           ((a1.x * xv[4] + a1.y * xv[5]) + (a1.z * xv[6] + a1.w * xv[7]));
    }
    sj = warp_sum(sj);
    if (lane == 0) sshr[warp] = sj;
  }
  __syncthreads();
  descs = sdesc;
  if (pair) pair = sdesc;
  if (job && threadIdx.x == 0) {  // publish (the warps' sums in order) and count it
    float sj = 0.f;
    for (int k = 0; k < MX_WARPS; k++) sj += sshr[k];
    const_cast<float*>(descs[jd].lt)[blockIdx.y * descs[jd].lstride + jj] = sj;
    asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(f.lsync) : "memory");
  }

  const char* tb = reinterpret_cast<const char*>(tab) + (lane & 15) * 8;  // 16 replicas
  u32 lane8 = POST ? lane * 4 : (lane & 15) * 8;                           // spread (NT = 1)
  // lora, the chain's consumer (its shrinks in slt before the loop): the
  // expands of every tile (se, a row each), which the store adds (the first
  // tile's barrier publishes them). With shrink jobs (ei = iters), warp it
  // % 16 adds tile it's expands to its partial sums instead, warp 0 on the
  // first tile once it has waited for them. (The producer's table computed
  // after its first tile, inside the loop, made ptxas spill; waiting for
  // its jobs in the prologue instead cost as much as the table saved.)
  __shared__ float se[CONS ? 16 * MX_MAXITERS : 1];
  const int ei = CONS ? 0 : iters;
  if (CONS && blockIdx.y == 0 && !(mode & 1024))  // (mode bit 10: no expands, a probe)
    mmax_expand_table(se, slb, slt, descs, ndesc, pair, iters, total, warp, lane);
  for (int it = 0; it < iters; it++, tile += gridDim.x) {
    const GemvDesc& gw = descs[d];
    int tilen = tile + gridDim.x, dn = d, ltn = pair ? tilen : lt;
    if (tilen < total && !pair) gemv_locate(descs, ndesc, tilen, dn, ltn);
    mmax_load<POST>(wn, qan, san, okn, pair, descs[dn], ltn, g, in, col0, live && tilen < total, dn, rhd);
    // threads < 256 store (row, token) pair threadIdx.x of this tile below;
    // a residual they add to is requested now. Paired: rows 0-7 are
    // weight 0's, 8-15 weight 1's, of rows 8 lt + 0..7.
    int rl = TM ? threadIdx.x & 15 : threadIdx.x >> 4, tok = TM ? threadIdx.x >> 4 : threadIdx.x & 15;
    const GemvDesc& gd = pair ? pair[rl >> 3] : gw;
    int row = pair ? lt * 8 + (rl & 7) : mmax_row(lt, rl, d, rhd);
    bool store = threadIdx.x < 256 && tile < total && row < gd.out && tok < n;
    float* dst = gd.y + (long long)tok * gd.out + row;
    float yv = store && ksplits == 1 && (mode & 1) ? *dst : 0.f;
    // am[h]: row h's absmax; POST: amb[h][b], of its block b
    float am[2], amb[2][POST ? 4 : 1];
#pragma unroll
    for (int h = 0; h < 2; h++) {
      float off = (pair ? pair[h] : gw).offset;
      if (POST) {
#pragma unroll
        for (int b = 0; b < 4; b++) amb[h][b] = ok[h] ? dmap[(qa[h] >> 8 * b) & 0xff] * sa[h] + off : 0.f;
      } else {
        am[h] = ok[h] ? dmap[qa[h]] * sa[h] + off : 0.f;
      }
    }
    float acc[NT][4] = {}, acc1[4] = {};  // acc1: NT = 1's odd steps
    if (live) {
      u32 wg[8] = {w[0].x, w[0].y, w[0].z, w[0].w, w[1].x, w[1].y, w[1].z, w[1].w};
      u32 wh[8] = {w[2].x, w[2].y, w[2].z, w[2].w, w[3].x, w[3].y, w[3].z, w[3].w};
      if (POST) {  // each block's four products on the unscaled codes, then times its absmax
        const char* ht = reinterpret_cast<const char*>(tab);
#pragma unroll
        for (int b = 0; b < 4; b++) {
          float tp[4] = {};
#pragma unroll
          for (int s = 4 * b; s < 4 * b + 4; s++) {
            u32 sel = 0x5504u | (2 * (s & 1)) << 4, a[4];
            a[0] = mmax_hp(ht, wg[s >> 1], lane8, sel);
            a[1] = mmax_hp(ht, wh[s >> 1], lane8, sel);
            a[2] = mmax_hp(ht, wg[s >> 1], lane8, sel + 0x10);
            a[3] = mmax_hp(ht, wh[s >> 1], lane8, sel + 0x10);
            mma16816(tp, a, bf[s][0], bf[s][1]);
          }
          acc[0][0] += amb[0][b] * tp[0], acc[0][1] += amb[0][b] * tp[1];
          acc[0][2] += amb[1][b] * tp[2], acc[0][3] += amb[1][b] * tp[3];
        }
      }
#pragma unroll
      for (int s = 0; s < (POST ? 0 : 16); s++) {
        u32 a[4];  // rows g, g+8 at byte 2s (a[0], a[1]) and 2s+1 (a[2], a[3])
        if (NT == 1) {
          u32 sel = 0x5504u | (2 * (s & 1)) << 4;
          a[0] = mmax_ap(reinterpret_cast<const char*>(tab), wg[s >> 1], lane8, sel, am[0]);
          a[1] = mmax_ap(reinterpret_cast<const char*>(tab), wh[s >> 1], lane8, sel, am[1]);
          a[2] = mmax_ap(reinterpret_cast<const char*>(tab), wg[s >> 1], lane8, sel + 0x10, am[0]);
          a[3] = mmax_ap(reinterpret_cast<const char*>(tab), wh[s >> 1], lane8, sel + 0x10, am[1]);
        } else {
          u32 hg = (wg[s >> 1] >> ((s & 1) * 16)) & 0xffff, hh = (wh[s >> 1] >> ((s & 1) * 16)) & 0xffff;
          a[0] = mmax_a(tb, hg & 0xff, am[0]);
          a[1] = mmax_a(tb, hh & 0xff, am[1]);
          a[2] = mmax_a(tb, hg >> 8, am[0]);
          a[3] = mmax_a(tb, hh >> 8, am[1]);
        }
#pragma unroll
        for (int nt = 0; nt < NT; nt++) mma16816(NT == 1 && (s & 1) ? acc1 : acc[nt], a, bf[s][2 * nt], bf[s][2 * nt + 1]);
      }
      if (NT == 1) {
#pragma unroll
        for (int i = 0; i < 4; i++) acc[0][i] += acc1[i];
      }
    }
    // lora: warp it % MX_WARPS adds this tile's expands (token 0, k split
    // 0) to its partial sums: lane l takes local row l / 2 and half of the
    // ranks, a shuffle sums the halves and brings rows g and g + 8 to the
    // lanes that hold them (t = 0). On the first tile it is warp 0, which
    // waits for its b rows and every shrink job and stages the shrinks
    // (slt, seen by the other warps after this tile's barrier).
    if (lora && it < ei && warp == it % MX_WARPS) {
      if (it == 0) {
        if (blockIdx.y == 0 && !(mode & 512))  // (mode bit 9: no wait, the benchmark's probe of its cost)
          gemvx_lora_ready(f.lsync, descs, ndesc, gridDim.y);
        // the last block of k split 0 past its wait resets the counters for
        // the next launch (every job is counted and every waiter is past)
        if (f.lsync && blockIdx.y == 0 && lane == 0 && atomicAdd(f.lsync + 1, 1u) == gridDim.x - 1)
          f.lsync[0] = 0, f.lsync[1] = 0;
        // lane l: shrink l of each desc, over the k splits. PROD (gate/up):
        // the first four (desc, split) loads in flight at once, one round
        // trip, not one a desc (in the other kernels the registers that
        // takes made ptxas spill)
        int ns = PROD ? ndesc * gridDim.y : 0;
        float v[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
          int k = j / gridDim.y;
          const GemvDesc& gd = descs[k < ndesc ? k : 0];
          v[j] = j < ns && gd.lb && lane < gd.lr ? __ldcg(gd.lt + (j - k * gridDim.y) * gd.lstride + lane) : 0.f;
        }
        for (int k = 0; k < ndesc; k++) slt[32 * k + lane] = 0.f;
#pragma unroll
        for (int j = 0; j < 4; j++)
          if (j < ns) slt[32 * (j / gridDim.y) + lane] += v[j];
        for (int j = PROD ? 4 : 0; j < ndesc * (int)gridDim.y; j++) {
          int k = j / gridDim.y;
          const GemvDesc& gd = descs[k];
          if (gd.lb && lane < gd.lr) slt[32 * k + lane] += __ldcg(gd.lt + (j - k * gridDim.y) * gd.lstride + lane);
        }
        __syncwarp();
      }
      int r = lane >> 1;
      const GemvDesc& ge = pair ? pair[r >> 3] : gw;
      float e = 0.f;
      if (ge.lb && blockIdx.y == 0 && !(mode & 1024)) {  // (mode bit 10: no expands, a probe)
        const float4* b4 = reinterpret_cast<const float4*>(slb + (it * 16 + r) * (ge.lr + 4));
        const float4* t4 = reinterpret_cast<const float4*>(slt + (pair ? r >> 3 : d) * 32);
#pragma unroll
        for (int q = lane & 1; q < 8; q += 2) {
          if (4 * q < ge.lr) {
            float4 b = b4[q], tv = t4[q];
            e += (b.x * tv.x + b.y * tv.y) + (b.z * tv.z + b.w * tv.w);
          }
        }
        e *= ge.lscale;
      }
      e += __shfl_xor_sync(0xffffffffu, e, 1);
      float e0 = __shfl_sync(0xffffffffu, e, 2 * g), e8 = __shfl_sync(0xffffffffu, e, 2 * g + 16);
      if (t == 0) acc[0][0] += e0, acc[0][2] += e8;
    }
    // partial sums: red[buf][warp][row_local * 16 + token] (TM: token * 16
    // + row_local), the index of the thread that stores the pair
    float* rw = red + ((it & 1) * MX_WARPS + warp) * 256;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
      int tk = 8 * nt + 2 * t;
      auto at = [&](int row, int token) -> float& { return TM ? rw[token * 16 + row] : rw[row * 16 + token]; };
      at(g, tk) = acc[nt][0];
      at(g, tk + 1) = acc[nt][1];
      at(g + 8, tk) = acc[nt][2];
      at(g + 8, tk + 1) = acc[nt][3];
    }
    __syncthreads();
    if (store) {
      const float* rb = red + (it & 1) * MX_WARPS * 256 + threadIdx.x;
      // the warps' partial sums of this thread's pair (off 0) or of its
      // partner row rl + 8 under RoPE and pairing (one token: no residual)
      auto sum = [&](int off) {
        float s = 0.f;
#pragma unroll
        for (int k = 0; k < MX_WARPS; k++) s += rb[k * 256 + off];
        return s;
      };
      // lora (tiles from ei on): the expand of this thread's row (ro 0) or
      // of its partner (ro 8)
      auto ex = [&](int ro) {
        return lora && it >= ei && tok == 0 && blockIdx.y == 0 && !(mode & 1024) ? se[it * 16 + rl + ro] : 0.f;
      };
      auto partner = [&] { return maybe_round(sum(TM ? 8 : 128) + ex(8), mode & 2); };  // its output as stored
      float v = sum(0) + ex(0);
      if (ksplits > 1) {
        atomicAdd(dst, v);
      } else if (rhd > 0) {  // RoPE (one token): rope_kv_f16's stores
        int r = mode & 2, half = rhd >> 1;
        v = maybe_round(v + yv, r);
        if (d > 0) *dst = v;  // k and v as stored without RoPE; q only rotated
        bool cache = rP >= 0 && rP < f.ra.max_len;
        long long cb = ((long long)rS * f.ra.max_len + rP) * f.ra.kvd;
        if (d == 2 && cache) f.ra.vc[cb + row] = float_to_half(v);
        if (d < 2 && rl < 8) {  // rows row and row + hd/2 (local rl + 8)
          float2 t = srot[row & (half - 1)];
          float2 rr = rot(v, partner(), t.x, t.y);
          if (d == 0) {
            dst[0] = rr.x, dst[half] = rr.y;
          } else if (cache) {
            f.ra.kc[cb + row] = float_to_half(rr.x), f.ra.kc[cb + row + half] = float_to_half(rr.y);
          }
        }
      } else {
        v = maybe_round(v + yv, mode & 2);
        *dst = v;
        if (FUSE && pair && rl < 8) {  // silu_mul of weight 0's v and weight 1's (row rl + 8)
          int r = mode & 2;
          float sg = maybe_round(v / (1.f + expf(-v)), r);
          u16 hh = float_to_half(maybe_round(sg * partner(), r));
          f.h16[(long long)tok * gd.out + row] = hh;
          if (PROD && f.nla) shh[it * 8 + rl] = half_to_float(hh);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < 4; i++) w[i] = wn[i];
#pragma unroll
    for (int h = 0; h < 2; h++) qa[h] = qan[h], sa[h] = san[h], ok[h] = okn[h];
    d = dn, lt = ltn;
  }
  if (PROD && f.nla && warp == 0)
    mmax_chain_sum(sna, shh, f.nlt + blockIdx.x, f.nlr, iters, lane);
}

// nf4_mmax_<8 NT>: one weight, k splits blockIdx.y.
#define NF4_MMAX(NAME, NT, POST)                                                                                  \
  extern "C" __global__ void __launch_bounds__(MX_WARPS * 32, 1)                                                 \
      NAME(float* y, const float* x, const u16* x16, const u8* packed, const u8* qabs, const float* absmax2,      \
           const float* dmap_g, float offset, int n, int out, int in, int mode, int ksplits) {                    \
    GemvDesc g = {packed, qabs, absmax2, y, nullptr, nullptr, nullptr, offset, out, 0, 0, 0.f, (out + 15) >> 4}; \
    nf4_mmax<NT, false, POST>(&g, 1, g.blocks, x, x16, dmap_g, n, in, mode, ksplits, MmaxFuse{});                \
  }
// nf4_mmaxm_*: the multi-weight launch (no k splits: in <= 4096).
#define NF4_MMAXM(NAME, NT)                                                                                      \
  extern "C" __global__ void __launch_bounds__(MX_WARPS * 32, 1)                                                \
      NAME(const GemvDesc* descs, int ndesc, int total, const float* x, const u16* x16, const float* dmap_g,     \
           int n, int in, int mode) {                                                                            \
    nf4_mmax<NT, false>(descs, ndesc, total, x, x16, dmap_g, n, in, mode, 1, MmaxFuse{});                        \
  }
NF4_MMAX(nf4_mmax_16, 2, false)
NF4_MMAX(nf4_mmax_8, 1, false)
NF4_MMAX(nf4_mmaxp_8, 1, true)
NF4_MMAXM(nf4_mmaxm_16, 2)
NF4_MMAXM(nf4_mmaxm_8, 1)

// nf4_mmaxf_8: nf4_mmaxm_8 with FUSE's fusions (k splits blockIdx.y);
// nf4_mmaxfp_8 the same post-scaled; *l_8 with the adapter (f.lsync), a
// kernel of its own so that the plain ones keep their registers; *lc_8
// the chain's producer (f.nla: paired gate/up computing down's shrinks)
// and *ld_8 its consumer (down, f.nparts), kernels of their own for the
// same reason, in which what those launches never take folds away. (A
// first try with the chain's running sums in the loop of *l_8 spilled ten
// of its values, and gate/up with the adapter took 46% longer than
// without, against 18%: the weights' stream evicts the spills from L1, so
// each costs an L2 round trip a tile.)
#define NF4_MMAXF(NAME, POST, LORA, CHAIN)                                                                       \
  extern "C" __global__ void __launch_bounds__(MX_WARPS * 32, 1)                                                \
      NAME(const GemvDesc* descs, int ndesc, int total, const float* x, const u16* x16, const float* dmap_g,     \
           int n, int in, int mode, MmaxFuse f) {                                                                \
    nf4_mmax<1, true, POST, LORA, CHAIN>(descs, ndesc, total, x, x16, dmap_g, n, in, mode, gridDim.y, f);         \
  }
NF4_MMAXF(nf4_mmaxf_8, false, false, 0)
NF4_MMAXF(nf4_mmaxfp_8, true, false, 0)
NF4_MMAXF(nf4_mmaxfl_8, false, true, 0)
NF4_MMAXF(nf4_mmaxfpl_8, true, true, 0)
NF4_MMAXF(nf4_mmaxflc_8, false, true, 1)
NF4_MMAXF(nf4_mmaxfplc_8, true, true, 1)
NF4_MMAXF(nf4_mmaxfld_8, false, true, 2)
NF4_MMAXF(nf4_mmaxfpld_8, true, true, 2)
