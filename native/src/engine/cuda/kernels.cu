// The CUDA engine's element-wise kernels (embedding, RMSNorm, bias + RoPE, SwiGLU, argmax, fill), then their
// launchers (kernels.h). Decode attention: decode_attention.cu; prefill attention: flash.cu.
#include <cfloat>
#include <type_traits>

#include "common/cuda_check.h"
#include "engine/cuda/common.cuh"

namespace swapserve::cuda {

namespace {

// ---------------------------------------------------------------------------------------------- kernels

template <typename TX>
__global__ void EmbeddingKernel(const int32_t* tokens, const void* emb, ET embT, int C, TX* x) {
  PdlTrigger();
  PdlWait();
  const int t = blockIdx.x;
  const size_t row = static_cast<size_t>(tokens[t]) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    x[static_cast<size_t>(t) * C + c] = FromF<TX>(LoadEt(emb, embT, row + c));
}

// One block per row: fp32 sum of squares; the normalised row is rounded before the weight multiplies it when
// hfRound (as transformers' LlamaRMSNorm does), else once at the end.
template <typename TX, typename TO>
__global__ void RmsNormKernel(const TX* x, const int32_t* rows, int C, const void* w, ET wT, float eps, TO* out,
                              bool hfRound) {
  PdlTrigger();
  PdlWait();
  const int r = blockIdx.x;
  const TX* xr = x + static_cast<size_t>(rows ? rows[r] : r) * C;
  float ss = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) { const float v = ToF(xr[c]); ss += v * v; }
  __shared__ float red[32];
  ss = BlockSum(ss, red);
  const float inv = rsqrtf(ss / C + eps);
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float n = ToF(xr[c]) * inv;
    out[static_cast<size_t>(r) * C + c] = FromF<TO>(LoadEt(w, wT, c) * (hfRound ? Rnd<TO>(n) : n));
  }
}

// The same for a 2-byte residual stream with C a multiple of 8 and C / 8 <= 1024: one 16-byte load per thread,
// kept in registers between the reduction and the output.
template <typename T>
__global__ void RmsNormVecKernel(const T* x, const int32_t* rows, int C, const void* w, ET wT, float eps, T* out,
                                 bool hfRound) {
  PdlTrigger();
  PdlWait();
  const int r = blockIdx.x;
  const int c0 = threadIdx.x * 8;
  const bool active = c0 < C;
  uint4 xv = make_uint4(0, 0, 0, 0);
  if (active) xv = *reinterpret_cast<const uint4*>(x + static_cast<size_t>(rows ? rows[r] : r) * C + c0);
  const T* xe = reinterpret_cast<const T*>(&xv);
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) { const float v = ToF(xe[i]); ss += v * v; }
  __shared__ float red[32];
  ss = BlockSum(ss, red);
  if (!active) return;
  const float inv = rsqrtf(ss / C + eps);
  uint4 ov;
  T* oe = reinterpret_cast<T*>(&ov);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float n = ToF(xe[i]) * inv;
    oe[i] = FromF<T>(LoadEt(w, wT, c0 + i) * (hfRound ? Rnd<T>(n) : n));
  }
  *reinterpret_cast<uint4*>(out + static_cast<size_t>(r) * C + c0) = ov;
}

// Block (token t, 8 heads): one warp per head, q heads, then k heads, then v heads of the row.
constexpr int kQkvHeadsPerBlock = 8;
template <typename T>
__global__ void QkvPostKernel(T* qkv, int H, int KVH, int D, const void* bq, const void* bk, const void* bv, ET biasT,
                              const int32_t* pos, const uint64_t* kvBase, int layer, int cap, const float* invFreq,
                              const float* cosSin, bool interleaved, bool hfRound, const int32_t* slot) {
  PdlTrigger();
  PdlWait();
  const int t = blockIdx.x, hh = blockIdx.y * kQkvHeadsPerBlock + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (hh >= H + 2 * KVH) return;
  const int stride = (H + 2 * KVH) * D;
  T* head = qkv + static_cast<size_t>(t) * stride + static_cast<size_t>(hh) * D;
  const int p = pos[t];
  T* cache = reinterpret_cast<T*>(kvBase[t]);
  const size_t plane = static_cast<size_t>(cap) * KVH * D;  // one (cap, KVH, D) slice
  T* kc = cache + (2 * static_cast<size_t>(layer)) * plane + static_cast<size_t>(slot ? slot[t] : p) * KVH * D;
  const int half = D / 2;
  const void* bias = hh < H ? bq : hh < H + KVH ? bk : bv;
  const int bcol = (hh < H ? hh : hh < H + KVH ? hh - H : hh - H - KVH) * D;
  if (hh >= H + KVH) {  // v: bias, then into the cache
    T* vc = kc + plane + (hh - H - KVH) * D;
    for (int d = lane; d < D; d += 32) {
      float x = ToF(head[d]);
      if (bias) x = Rnd<T>(x + LoadEt(bias, biasT, bcol + d));
      vc[d] = FromF<T>(x);
    }
    return;
  }
  T* dst = hh < H ? head : kc + (hh - H) * D;  // q in place, k into the cache
  for (int i = lane; i < half; i += 32) {
    const int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
    float xa = ToF(head[a]), xb = ToF(head[b]);
    if (bias) {
      xa = Rnd<T>(xa + LoadEt(bias, biasT, bcol + a));
      xb = Rnd<T>(xb + LoadEt(bias, biasT, bcol + b));
    }
    float sn, cs;
    if (cosSin) {
      const float2 v = reinterpret_cast<const float2*>(cosSin)[static_cast<size_t>(t) * half + i];
      cs = v.x;
      sn = v.y;
    } else {
      sincosf(static_cast<float>(p) * invFreq[i], &sn, &cs);
    }
    float ya, yb;
    RopeRotate<T>(xa, xb, cs, sn, hfRound, ya, yb);
    dst[a] = FromF<T>(ya);
    dst[b] = FromF<T>(yb);
  }
}

__global__ void RopeTableKernel(const int32_t* pos, int T, const float* invFreq, int half, float2* cosSin) {
  PdlTrigger();
  PdlWait();
  const size_t n = static_cast<size_t>(T) * half;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float sn, cs;
    sincosf(static_cast<float>(pos[i / half]) * invFreq[i % half], &sn, &cs);  // as HF: fp32 angle, fp32 cos/sin
    cosSin[i] = make_float2(cs, sn);
  }
}

// Block row t, threads over f: act(gate) * up, silu rounded first when hfRound (as transformers' LlamaMLP).
// VEC: 8 elements per thread with 16-byte loads and stores (F a multiple of 8, 2-byte types).
template <typename T, bool VEC>
__global__ void SwiGluKernel(const T* gu, int F, T* out, bool hfRound) {
  PdlTrigger();
  PdlWait();
  const size_t t = blockIdx.y;
  const T* g = gu + t * 2 * F;
  if constexpr (VEC) {
    const int f = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (f >= F) return;
    const uint4 gw = *reinterpret_cast<const uint4*>(g + f), uw = *reinterpret_cast<const uint4*>(g + F + f);
    const T* ge = reinterpret_cast<const T*>(&gw);
    const T* ue = reinterpret_cast<const T*>(&uw);
    uint4 ow;
    T* oe = reinterpret_cast<T*>(&ow);
#pragma unroll
    for (int i = 0; i < 8; ++i) oe[i] = FromF<T>(SwiGlu1<T>(ToF(ge[i]), ToF(ue[i]), hfRound));
    *reinterpret_cast<uint4*>(out + t * F + f) = ow;
  } else {
    for (int f = blockIdx.x * blockDim.x + threadIdx.x; f < F; f += gridDim.x * blockDim.x)
      out[t * F + f] = FromF<T>(SwiGlu1<T>(ToF(g[f]), ToF(g[F + f]), hfRound));
  }
}

__global__ void ArgmaxKernel(const float* logits, int V, int32_t* next) {
  PdlTrigger();
  PdlWait();
  const float* row = logits + static_cast<size_t>(blockIdx.x) * V;
  float best = -INFINITY;
  int bi = 0x7fffffff;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float v = row[i];
    if (v > best || (v == best && i < bi)) { best = v; bi = i; }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
  }
  __shared__ float sv[32];
  __shared__ int si[32];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) { sv[warp] = best; si[warp] = bi; }
  __syncthreads();
  if (warp == 0) {
    const int nw = blockDim.x >> 5;
    best = lane < nw ? sv[lane] : -INFINITY;
    bi = lane < nw ? si[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
    }
    if (lane == 0) next[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;  // all-NaN row: 0
  }
}

__device__ __forceinline__ uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

template <typename T>
__global__ void FillUniformKernel(T* p, size_t n, uint64_t seed, float lo, float hi) {
  PdlTrigger();
  PdlWait();
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float u = static_cast<float>(Mix64(seed * 0x9e3779b97f4a7c15ull + i) >> 40) * (1.f / 16777216.f);
    p[i] = FromF<T>(lo + (hi - lo) * u);
  }
}

int GridFor(size_t n, int threads) {
  const size_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65536 ? (b ? b : 1) : 65536);
}

}  // namespace

// ---------------------------------------------------------------------------------------------- launchers

bool& PdlFlag() {
  thread_local bool on = false;
  return on;
}
void SetPdl(bool on) { PdlFlag() = on; }

void LaunchEmbedding(const int32_t* tokens, int T, const void* emb, ET embT, int C, void* x, ET xT, cudaStream_t s) {
  SS_REQUIRE(T > 0 && C > 0, "embedding: empty shape");
  SS_DISPATCH_ET(xT, TX, LaunchK(EmbeddingKernel<TX>, T, 256, 0, s, tokens, emb, embT, C, static_cast<TX*>(x)));
  SS_CUDA_CHECK_LAUNCH("embedding");
}

void LaunchRmsNorm(const void* x, ET xT, const int32_t* rows, int R, int C, const void* w, ET wT, float eps, void* out,
                   ET outT, bool hfRound, cudaStream_t s) {
  SS_REQUIRE(R > 0 && C > 0, "rmsnorm: empty shape");
  if (xT == outT && xT != ET::kF32 && C % 8 == 0 && C / 8 <= 1024) {
    const int threads = (C / 8 + 31) / 32 * 32;
    if (xT == ET::kBF16)
      LaunchK(RmsNormVecKernel<__nv_bfloat16>, R, threads, 0, s, static_cast<const __nv_bfloat16*>(x), rows, C, w, wT, eps,
                                                            static_cast<__nv_bfloat16*>(out), hfRound);
    else
      LaunchK(RmsNormVecKernel<__half>, R, threads, 0, s, static_cast<const __half*>(x), rows, C, w, wT, eps,
                                                     static_cast<__half*>(out), hfRound);
    SS_CUDA_CHECK_LAUNCH("rmsnorm");
    return;
  }
  const int threads = C >= 4096 ? 512 : C >= 1024 ? 256 : 128;
  SS_DISPATCH_ET(xT, TX, SS_DISPATCH_ET(outT, TO, LaunchK(RmsNormKernel<TX, TO>, R, threads, 0, s, 
                                                      static_cast<const TX*>(x), rows, C, w, wT, eps,
                                                      static_cast<TO*>(out), hfRound)));
  SS_CUDA_CHECK_LAUNCH("rmsnorm");
}

void LaunchQkvPost(void* qkv, ET t, int T, int H, int KVH, int D, const void* bq, const void* bk, const void* bv,
                   ET biasT, const int32_t* pos, const uint64_t* kvBase, int layer, int cap, RopeParams rope,
                   cudaStream_t s, const int32_t* slot) {
  SS_REQUIRE(T > 0 && H > 0 && KVH > 0 && H % KVH == 0 && D % 2 == 0, "qkv post: bad shape");
  SS_REQUIRE(rope.invFreq != nullptr, "qkv post: no RoPE frequencies");
  SS_REQUIRE((bq == nullptr) == (bk == nullptr) && (bq == nullptr) == (bv == nullptr), "qkv post: all or no biases");
  const dim3 grid(T, (H + 2 * KVH + kQkvHeadsPerBlock - 1) / kQkvHeadsPerBlock);
  const int threads = 32 * kQkvHeadsPerBlock;
  SS_DISPATCH_ET(t, TT, LaunchK(QkvPostKernel<TT>, grid, threads, 0, s, static_cast<TT*>(qkv), H, KVH, D, bq, bk, bv, biasT,
                                                                    pos, kvBase, layer, cap, rope.invFreq,
                                                                    rope.cosSin, rope.interleaved, rope.hfRound, slot));
  SS_CUDA_CHECK_LAUNCH("qkv post");
}

void LaunchSwiGlu(const void* gu, int T, int F, void* out, ET t, bool hfRound, cudaStream_t s) {
  SS_REQUIRE(T > 0 && T < 65536 && F > 0, "swiglu: bad shape");
  if (t != ET::kF32 && F % 8 == 0) {
    const dim3 grid((F / 8 + 127) / 128, T);
    if (t == ET::kBF16)
      LaunchK(SwiGluKernel<__nv_bfloat16, true>, grid, 128, 0, s, static_cast<const __nv_bfloat16*>(gu), F,
                                                             static_cast<__nv_bfloat16*>(out), hfRound);
    else
      LaunchK(SwiGluKernel<__half, true>, grid, 128, 0, s, static_cast<const __half*>(gu), F, static_cast<__half*>(out),
                                                      hfRound);
  } else {
    const dim3 grid((F + 255) / 256, T);
    SS_DISPATCH_ET(t, TT, LaunchK(SwiGluKernel<TT, false>, grid, 256, 0, s, static_cast<const TT*>(gu), F,
                                                                        static_cast<TT*>(out), hfRound));
  }
  SS_CUDA_CHECK_LAUNCH("swiglu");
}

void LaunchRopeTable(const int32_t* pos, int T, const float* invFreq, int half, float* cosSin, cudaStream_t s) {
  SS_REQUIRE(T > 0 && half > 0, "rope table: empty shape");
  RopeTableKernel<<<GridFor(static_cast<size_t>(T) * half, 256), 256, 0, s>>>(pos, T, invFreq, half,
                                                                            reinterpret_cast<float2*>(cosSin));
  SS_CUDA_CHECK_LAUNCH("rope table");
}

// A genuine sticky device error for the health wire's test hook: the kernel aborts, the context is lost.
__global__ void TrapKernel() { __trap(); }

void LaunchTrap(cudaStream_t s) {
  TrapKernel<<<1, 1, 0, s>>>();
  SS_CUDA_CHECK_LAUNCH("trap");
}

void LaunchArgmax(const float* logits, int B, int V, int32_t* next, cudaStream_t s) {
  SS_REQUIRE(B > 0 && V > 0, "argmax: empty shape");
  LaunchK(ArgmaxKernel, B, 1024, 0, s, logits, V, next);
  SS_CUDA_CHECK_LAUNCH("argmax");
}

void LaunchFillUniform(void* p, ET t, size_t n, uint64_t seed, float lo, float hi, cudaStream_t s) {
  if (n == 0) return;
  SS_DISPATCH_ET(t, TT, LaunchK(FillUniformKernel<TT>, GridFor(n, 256), 256, 0, s, static_cast<TT*>(p), n, seed, lo, hi));
  SS_CUDA_CHECK_LAUNCH("fill uniform");
}

}  // namespace swapserve::cuda
