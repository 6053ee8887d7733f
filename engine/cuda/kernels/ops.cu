// The elementwise, normalization, rotary, attention, LoRA and sampling
// kernels of the CUDA backend. `round` (0/1) rounds outputs to fp16.

// rows_f32 / rows_f16: dst[i] = src[idx[i]], dst (n, d) float32.
extern "C" __global__ void rows_f32(float* dst, const float* src, const int* idx, int n, int d) {
  int i = blockIdx.y;
  const float* s = src + (long long)idx[i] * d;
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < d; c += gridDim.x * blockDim.x)
    dst[(long long)i * d + c] = s[c];
}
extern "C" __global__ void rows_f16(float* dst, const u16* src, const int* idx, int n, int d) {
  int i = blockIdx.y;
  const u16* s = src + (long long)idx[i] * d;
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < d; c += gridDim.x * blockDim.x)
    dst[(long long)i * d + c] = half_to_float(s[c]);
}

// rmsnorm: one block per row. dst[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w;
// w is float32 (w32) or fp16 (w16), whichever is non-null. dst may be x.
extern "C" __global__ void rmsnorm(float* dst, const float* x, const float* w32, const u16* w16, int d, float eps,
                                   int round) {
  __shared__ float red[32];
  const float* xr = x + (long long)blockIdx.x * d;
  float* yr = dst + (long long)blockIdx.x * d;
  float ss = 0.f;
  for (int c = threadIdx.x; c < d; c += blockDim.x) ss += xr[c] * xr[c];
  ss = block_sum(ss, red);
  float inv = rsqrtf(ss / d + eps);
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float w = w32 ? w32[c] : half_to_float(w16[c]);
    yr[c] = maybe_round(w * maybe_round(xr[c] * inv, round), round);  // the CPU backend's roundings
  }
}

// rmsnorm_zero is rmsnorm (float32 weight) that also zeroes row i of up to
// three outputs z0..z2 (widths w0..w2; null skipped): the products that
// follow add into them, so they need no memset of their own.
extern "C" __global__ void rmsnorm_zero(float* dst, const float* x, const float* w, int d, float eps, int round,
                                        float* z0, int w0, float* z1, int w1, float* z2, int w2) {
  __shared__ float red[32];
  long long i = blockIdx.x;
  const float* xr = x + i * d;
  float* yr = dst + i * d;
  float ss = 0.f;
  for (int c = threadIdx.x; c < d; c += blockDim.x) ss += xr[c] * xr[c];
  ss = block_sum(ss, red);
  float inv = rsqrtf(ss / d + eps);
  for (int c = threadIdx.x; c < d; c += blockDim.x) yr[c] = maybe_round(w[c] * maybe_round(xr[c] * inv, round), round);
  if (z0)
    for (int c = threadIdx.x; c < w0; c += blockDim.x) z0[i * w0 + c] = 0.f;
  if (z1)
    for (int c = threadIdx.x; c < w1; c += blockDim.x) z1[i * w1 + c] = 0.f;
  if (z2)
    for (int c = threadIdx.x; c < w2; c += blockDim.x) z2[i * w2 + c] = 0.f;
}

// rope rotates x (n, heads*hd) in place, rotate_half pairs (j, j+hd/2), by
// the angle (float)pos[i] * inv_freq[j], a float32 product; inv_freq (hd/2)
// holds theta^(-2j/hd) with the linear scaling folded in (made on the host).
extern "C" __global__ void rope(float* x, const int* pos, const float* inv_freq, int n, int heads, int hd,
                                int round) {
  int half = hd >> 1;
  long long total = (long long)n * heads * half;
  for (long long q = blockIdx.x * (long long)blockDim.x + threadIdx.x; q < total;
       q += (long long)gridDim.x * blockDim.x) {
    int j = q % half;
    long long th = q / half;  // token*heads + head
    int i = th / heads;
    float ang = (float)pos[i] * inv_freq[j];
    float s, c;
    sincosf(ang, &s, &c);
    float* p = x + th * hd;
    float a = p[j], b = p[j + half];
    p[j] = maybe_round(a * c - b * s, round);
    p[j + half] = maybe_round(b * c + a * s, round);
  }
}

// kv_store_{f32,f16}: cache[seq[i], pos[i], :] = src[i, :] for k and v;
// caches (slots, max_len, kvd).
extern "C" __global__ void kv_store_f32(float* kc, float* vc, const float* k, const float* v, const int* seq,
                                        const int* pos, int n, int kvd, int max_len) {
  int i = blockIdx.y;
  if (pos[i] < 0 || pos[i] >= max_len) return;  // outside the cache: the caller's error, never a stray write
  long long base = ((long long)seq[i] * max_len + pos[i]) * kvd;
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < kvd; c += gridDim.x * blockDim.x) {
    kc[base + c] = k[(long long)i * kvd + c];
    vc[base + c] = v[(long long)i * kvd + c];
  }
}
extern "C" __global__ void kv_store_f16(u16* kc, u16* vc, const float* k, const float* v, const int* seq,
                                        const int* pos, int n, int kvd, int max_len) {
  int i = blockIdx.y;
  if (pos[i] < 0 || pos[i] >= max_len) return;
  long long base = ((long long)seq[i] * max_len + pos[i]) * kvd;
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < kvd; c += gridDim.x * blockDim.x) {
    kc[base + c] = float_to_half(k[(long long)i * kvd + c]);
    vc[base + c] = float_to_half(v[(long long)i * kvd + c]);
  }
}

// load4 reads 4 consecutive cache values (8 bytes of fp16 or 16 of fp32).
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const u16* p) {
  uint2 v = *reinterpret_cast<const uint2*>(p);
  return make_float4(half_to_float(v.x & 0xffff), half_to_float(v.x >> 16), half_to_float(v.y & 0xffff),
                     half_to_float(v.y >> 16));
}

#define ATT_WARPS 16
#define ATT_UNROLL 8

// attention: block (token i, query head h) of ATT_WARPS warps; causal over
// positions 0..pos[i] of slot seq[i]; GQA head g = h / (heads/kv_heads).
// hd % 4 == 0, hd <= 256: lane l owns dims 4l..4l+3 (and 128+4l.. when
// hd > 128). Warp w takes keys w, w+8, ..., several loads in flight.
// Dynamic shared memory: max_len scores, then ATT_WARPS*hd partial outputs.
template <typename KV>
__device__ void attention(float* dst, const float* q, const KV* kc, const KV* vc, const int* seq,
                          const int* pos, int heads, int kv_heads, int hd, int max_len, int round) {
  extern __shared__ float4 smem4[];
  float* sc = reinterpret_cast<float*>(smem4);
  float* part = sc + max_len;
  __shared__ float red[32];
  int i = blockIdx.x, h = blockIdx.y, g = h / (heads / kv_heads);
  int L = min(max(pos[i] + 1, 1), max_len);  // clamped: a bad position must not overrun shared memory
  int kvd = kv_heads * hd;
  const KV* kb = kc + (long long)seq[i] * max_len * kvd + g * hd;
  const KV* vb = vc + (long long)seq[i] * max_len * kvd + g * hd;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float scale = rsqrtf((float)hd);
  // this lane's dims: chunk c covers 128c + 4*lane .. +3
  bool has[2] = {4 * lane < hd, 128 + 4 * lane < hd};
  float4 qv[2];
#pragma unroll
  for (int c = 0; c < 2; c++) {
    qv[c] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (has[c]) {
      qv[c] = *reinterpret_cast<const float4*>(q + ((long long)i * heads + h) * hd + 128 * c + 4 * lane);
      qv[c].x *= scale, qv[c].y *= scale, qv[c].z *= scale, qv[c].w *= scale;
    }
  }
  for (int j0 = warp; j0 < L; j0 += ATT_WARPS * ATT_UNROLL) {
    float s[ATT_UNROLL];
#pragma unroll
    for (int u = 0; u < ATT_UNROLL; u++) {
      int j = j0 + u * ATT_WARPS;
      s[u] = 0.f;
      if (j < L) {
#pragma unroll
        for (int c = 0; c < 2; c++)
          if (has[c]) {
            float4 k = load4(kb + (long long)j * kvd + 128 * c + 4 * lane);
            s[u] += qv[c].x * k.x + qv[c].y * k.y + qv[c].z * k.z + qv[c].w * k.w;
          }
      }
    }
#pragma unroll
    for (int u = 0; u < ATT_UNROLL; u++) {
      float v = warp_sum(s[u]);
      int j = j0 + u * ATT_WARPS;
      if (lane == 0 && j < L) sc[j] = v;
    }
  }
  __syncthreads();
  float m = -3.402823466e38f;
  for (int j = threadIdx.x; j < L; j += blockDim.x) m = fmaxf(m, sc[j]);
  m = block_max(m, red);
  float sum = 0.f;
  for (int j = threadIdx.x; j < L; j += blockDim.x) {
    float e = expf(sc[j] - m);
    sc[j] = e;
    sum += e;
  }
  sum = block_sum(sum, red);  // its barriers also publish sc
  float4 o[2] = {make_float4(0.f, 0.f, 0.f, 0.f), make_float4(0.f, 0.f, 0.f, 0.f)};
  for (int j0 = warp; j0 < L; j0 += ATT_WARPS * ATT_UNROLL) {
#pragma unroll
    for (int u = 0; u < ATT_UNROLL; u++) {
      int j = j0 + u * ATT_WARPS;
      if (j < L) {
        float p = sc[j];
#pragma unroll
        for (int c = 0; c < 2; c++)
          if (has[c]) {
            float4 v = load4(vb + (long long)j * kvd + 128 * c + 4 * lane);
            o[c].x += p * v.x, o[c].y += p * v.y, o[c].z += p * v.z, o[c].w += p * v.w;
          }
      }
    }
  }
#pragma unroll
  for (int c = 0; c < 2; c++)
    if (has[c]) *reinterpret_cast<float4*>(part + warp * hd + 128 * c + 4 * lane) = o[c];
  __syncthreads();
  float inv = 1.f / sum;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.f;
#pragma unroll
    for (int w = 0; w < ATT_WARPS; w++) acc += part[w * hd + d];
    dst[((long long)i * heads + h) * hd + d] = maybe_round(acc * inv, round);
  }
}
extern "C" __global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_f32(float* dst, const float* q, const float* kc, const float* vc, const int* seq, const int* pos,
                  int heads, int kv_heads, int hd, int max_len, int round) {
  attention<float>(dst, q, kc, vc, seq, pos, heads, kv_heads, hd, max_len, round);
}
extern "C" __global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_f16(float* dst, const float* q, const u16* kc, const u16* vc, const int* seq, const int* pos,
                  int heads, int kv_heads, int hd, int max_len, int round) {
  attention<u16>(dst, q, kc, vc, seq, pos, heads, kv_heads, hd, max_len, round);
}

// silu_mul: dst = gate/(1+exp(-gate)) * up.
extern "C" __global__ void silu_mul(float* dst, const float* gate, const float* up, long long count, int round) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
       i += (long long)gridDim.x * blockDim.x) {
    float gv = gate[i];
    float sg = maybe_round(gv / (1.f + expf(-gv)), round);  // rounded twice, as the CPU backend
    dst[i] = maybe_round(sg * up[i], round);
  }
}

// add: dst = a + b.
extern "C" __global__ void add(float* dst, const float* a, const float* b, long long count, int round) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
       i += (long long)gridDim.x * blockDim.x)
    dst[i] = maybe_round(a[i] + b[i], round);
}

// lora_shrink: t[i, j] = x[rows[i]] . a[j] (rows null: row i); one block
// per (i, j), so that the long dot product has many loads in flight.
// t (k, r), x (n, in), a (r, in).
extern "C" __global__ void lora_shrink(float* t, const float* x, const float* a, const int* rows, int k, int r,
                                       int in, int round) {
  __shared__ float red[32];
  int i = blockIdx.x / r, j = blockIdx.x % r;
  int row = rows ? rows[i] : i;
  const float* xr = x + (long long)row * in;
  const float* ar = a + (long long)j * in;
  float s = 0.f;
  for (int c = threadIdx.x; c < in; c += blockDim.x) s += xr[c] * ar[c];
  s = block_sum(s, red);
  if (threadIdx.x == 0) t[blockIdx.x] = maybe_round(s, round);  // fp16 compute: as the CPU backend
}

// lora_shrink2: the shrinks of two adapters on the same x in one launch:
// t[i, j] = x[i] . a[j] for j < r, x[i] . a2[j-r] for r <= j < 2r. t (k, 2r).
extern "C" __global__ void lora_shrink2(float* t, const float* x, const float* a, const float* a2, int k, int r,
                                        int in) {
  __shared__ float red[32];
  int i = blockIdx.x / (2 * r), j = blockIdx.x % (2 * r);
  const float* xr = x + (long long)i * in;
  const float* ar = j < r ? a + (long long)j * in : a2 + (long long)(j - r) * in;
  float s = 0.f;
  for (int c = threadIdx.x; c < in; c += blockDim.x) s += xr[c] * ar[c];
  s = block_sum(s, red);
  if (threadIdx.x == 0) t[blockIdx.x] = s;
}

// lora_expand: dst[rows[i], o] += scale * sum_j b[o, j] * t[i*tstride + j].
// dst (n, out), b (out, r), t (k, tstride >= r).
extern "C" __global__ void lora_expand(float* dst, const float* t, const float* b, const int* rows, int k, int r,
                                       int tstride, int out, float scale, int round) {
  long long q = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (q >= (long long)k * out) return;
  int i = q / out, o = q % out;
  int row = rows ? rows[i] : i;
  const float* br = b + (long long)o * r;
  const float* tr = t + (long long)i * tstride;
  float s = 0.f;
  for (int j = 0; j < r; j++) s += br[j] * tr[j];
  float* p = dst + (long long)row * out + o;
  *p = maybe_round(*p + maybe_round(scale * s, round), round);
}

// argmax: one block per row of logits (n, vocab); ties go to the lowest index.
extern "C" __global__ void argmax(int* dst, const float* logits, int vocab) {
  __shared__ float bv[32];
  __shared__ int bi[32];
  const float* l = logits + (long long)blockIdx.x * vocab;
  float best = -3.402823466e38f;
  int idx = 0x7fffffff;
  for (int c = threadIdx.x; c < vocab; c += blockDim.x) {
    float v = l[c];
    if (v > best || (v == best && c < idx)) best = v, idx = c;  // NaN never wins
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    float ov = __shfl_xor_sync(0xffffffffu, best, o);
    int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (ov > best || (ov == best && oi < idx)) best = ov, idx = oi;
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (lane == 0) bv[warp] = best, bi[warp] = idx;
  __syncthreads();
  if (warp == 0) {
    best = lane < nw ? bv[lane] : -3.402823466e38f;
    idx = lane < nw ? bi[lane] : 0x7fffffff;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, best, o);
      int oi = __shfl_xor_sync(0xffffffffu, idx, o);
      if (ov > best || (ov == best && oi < idx)) best = ov, idx = oi;
    }
    if (lane == 0) dst[blockIdx.x] = idx == 0x7fffffff ? 0 : idx;
  }
}

// sample: one block (blockDim 256) per row; draws from softmax(logits/temp)
// with the uniform number u[row] in [0, 1): the first token whose cumulative
// probability exceeds u. Each thread owns a contiguous range of the vocab.
extern "C" __global__ void sample(int* dst, const float* logits, const float* u, int vocab, float temp) {
  __shared__ float red[32];
  __shared__ float part[256];
  const float* l = logits + (long long)blockIdx.x * vocab;
  int per = (vocab + blockDim.x - 1) / blockDim.x;
  int lo = threadIdx.x * per, hi = min(lo + per, vocab);
  float m = -3.402823466e38f;
  for (int c = lo; c < hi; c++) m = fmaxf(m, l[c]);
  m = block_max(m, red);
  float s = 0.f;
  for (int c = lo; c < hi; c++) s += expf((l[c] - m) / temp);
  part[threadIdx.x] = s;
  float total = block_sum(s, red);
  if (threadIdx.x == 0) {
    float target = u[blockIdx.x] * total, run = 0.f;
    int th = 0;
    while (th < (int)blockDim.x - 1 && run + part[th] <= target) run += part[th++];
    int c = th * per, end = min(c + per, vocab), pick = end - 1;
    for (; c < end; c++) {
      run += expf((l[c] - m) / temp);
      if (run > target) {
        pick = c;
        break;
      }
    }
    dst[blockIdx.x] = max(pick, 0);
  }
}

// ---- random weights for the benchmark (no checkpoint) -------------------------

__device__ __forceinline__ u64 mix64(u64 z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// fill_bytes fills p (count bytes, count % 8 == 0) with hashed random bytes.
extern "C" __global__ void fill_bytes(u64* p, long long words, u64 seed) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < words;
       i += (long long)gridDim.x * blockDim.x)
    p[i] = mix64(seed + (u64)i * 0x9e3779b97f4a7c15ULL);
}

// fill_uniform fills p (count floats) with lo + (hi-lo)*U[0,1); as fp16 if half.
extern "C" __global__ void fill_uniform(void* p, long long count, float lo, float hi, u64 seed, int half) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
       i += (long long)gridDim.x * blockDim.x) {
    float u = (float)(mix64(seed + (u64)i * 0x9e3779b97f4a7c15ULL) >> 40) * (1.0f / 16777216.0f);
    float v = lo + (hi - lo) * u;
    if (half) reinterpret_cast<u16*>(p)[i] = float_to_half(v);
    else reinterpret_cast<float*>(p)[i] = v;
  }
}

// inc_i32: p[i] += 1 (the positions of the next decode step, inside a graph).
extern "C" __global__ void inc_i32(int* p, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] += 1;
}

// rope_kv: the decode-side fusion of RoPE on q and k and the KV-cache store:
// q (n, heads*hd) rotated in place; k rotated and stored with v at
// (seq[i], pos[i]) of the caches (slots, max_len, kv_heads*hd), fp16.
extern "C" __global__ void rope_kv_f16(float* q, const float* k, const float* v, u16* kc, u16* vc, const int* seq,
                                       const int* pos, const float* inv_freq, int n, int heads, int kv_heads, int hd,
                                       int max_len) {
  int half = hd >> 1, kvd = kv_heads * hd;
  long long nq = (long long)n * heads * half, nk = (long long)n * kv_heads * half;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < nq + nk;
       e += (long long)gridDim.x * blockDim.x) {
    bool isq = e < nq;
    long long f = isq ? e : e - nq;
    int j = f % half;
    long long th = f / half;
    int hs = isq ? heads : kv_heads;
    int i = th / hs, h = th % hs;
    float ang = (float)pos[i] * inv_freq[j];
    float sn, cs;
    sincosf(ang, &sn, &cs);
    if (isq) {
      float* p = q + ((long long)i * heads + h) * hd;
      float a = p[j], b = p[j + half];
      p[j] = a * cs - b * sn;
      p[j + half] = b * cs + a * sn;
    } else {
      if (pos[i] < 0 || pos[i] >= max_len) continue;
      const float* p = k + (long long)i * kvd + h * hd;
      float a = p[j], b = p[j + half];
      long long base = ((long long)seq[i] * max_len + pos[i]) * kvd + h * hd;
      kc[base + j] = float_to_half(a * cs - b * sn);
      kc[base + j + half] = float_to_half(b * cs + a * sn);
      const float* pv = v + (long long)i * kvd + h * hd;
      vc[base + j] = float_to_half(pv[j]);
      vc[base + j + half] = float_to_half(pv[j + half]);
    }
  }
}

// lora_shrink_f: the shrink of the fused decode path, whose x is not
// materialized: the value used is silu(x)*x2 (x2 non-null) or
// rmsnorm(x)*normw (normw non-null) or x. One block per (i, j); j < r uses
// a, r <= j < 2r uses a2 (when non-null). t (k, r or 2r).
extern "C" __global__ void lora_shrink_f(float* t, const float* x, const float* x2, const float* normw, float eps,
                                         const float* a, const float* a2, int k, int r, int in) {
  __shared__ float red[32];
  int rr = a2 ? 2 * r : r;
  int i = blockIdx.x / rr, j = blockIdx.x % rr;
  const float* xr = x + (long long)i * in;
  const float* ar = j < r ? a + (long long)j * in : a2 + (long long)(j - r) * in;
  float s = 0.f, ss = 0.f;
  for (int c = threadIdx.x; c < in; c += blockDim.x) {
    float v = xr[c];
    if (x2) v = v / (1.f + expf(-v)) * x2[(long long)i * in + c];
    ss += v * v;
    if (normw) v *= normw[c];
    s += v * ar[c];
  }
  s = block_sum(s, red);
  if (normw) s *= rsqrtf(block_sum(ss, red) / in + eps);
  if (threadIdx.x == 0) t[blockIdx.x] = s;
}
