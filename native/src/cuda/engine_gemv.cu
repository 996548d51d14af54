// Matrix x few-vectors products for decode steps (T <= 8 rows of activations): memory-bound on the weights, so
// each warp streams R weight rows with 16-byte loads (evict-first, several in flight per lane), multiplies them
// with all T activation rows (small, cached) in fp32, and reduces across the warp. One pass over the weights
// serves every sequence of the batch.
#include <algorithm>

#include "cuda/engine_check.h"
#include "cuda/engine_common.cuh"

namespace swapserve::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kRows = 2;  // weight rows per warp

template <typename T> __device__ __forceinline__ void Unpack8(const uint4& u, float* f);
template <> __device__ __forceinline__ void Unpack8<__nv_bfloat16>(const uint4& u, float* f) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) { const float2 v = __bfloat1622float2(h[i]); f[2 * i] = v.x; f[2 * i + 1] = v.y; }
}
template <> __device__ __forceinline__ void Unpack8<__half>(const uint4& u, float* f) {
  const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) { const float2 v = __half22float2(h[i]); f[2 * i] = v.x; f[2 * i + 1] = v.y; }
}

// X rows from global memory (read-only path) or, when SMEM, from the block's shared copy.
template <typename TW, int NT, bool SMEM>
__device__ __forceinline__ void Fma8(const uint4 (&wv)[kRows], const TW* __restrict__ X, int ldx, int c,
                                     float (&acc)[kRows][NT]) {
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    float xf[8];
    const uint4* xp = reinterpret_cast<const uint4*>(X + static_cast<size_t>(t) * ldx) + c;
    Unpack8<TW>(SMEM ? *xp : __ldg(xp), xf);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float wf[8];
      Unpack8<TW>(wv[r], wf);
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[r][t] = fmaf(wf[j], xf[j], acc[r][t]);
    }
  }
}

// NORM (T = 1 only): X is RMSNorm(x) of one row, computed by every block into shared memory after the weight
// prefetch, with the rounding of the separate norm kernel (so a step needs no norm launch of its own).
struct NormArgs {
  const void* w = nullptr;  // (K) norm weight
  ET wT = ET::kF32;
  float eps = 0.f;
  bool hfRound = false;
};

enum : int { kPlain = 0, kNorm = 1, kSwiGlu = 2 };

// MODE kSwiGlu (T = 1 only): X is silu(gate) * up of one row gu = (gate | up), each K long, rounded as the SwiGLU
// kernel rounds it.
template <typename TW, typename TY, int NT, int MODE>
__global__ void __launch_bounds__(kWarps * 32)
GemvKernel(const TW* __restrict__ W, int N, int K, const TW* __restrict__ X, int ldx, TY* Y, int ldy, float beta,
           NormArgs na) {
  extern __shared__ __align__(16) unsigned char gemvSmem[];
  PdlTrigger();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int K8 = K >> 3;
  const int nBlocks = (N + kWarps * kRows - 1) / (kWarps * kRows);
  constexpr int kU = 4;
  constexpr bool NORM = MODE != kPlain;  // a prologue computes X into shared memory
  // These launch a persistent grid (the prologue is paid once per block, not once per row group): block b
  // takes row groups b, b + gridDim.x, ... Otherwise the grid has one block per row group.
  int blk = blockIdx.x;
  int n0 = 0;
  const uint4* w[kRows];
  uint4 nxt[kU][kRows];
  auto start = [&]() {  // row pointers of this group, and its first 4 chunks per row requested
    n0 = (blk * kWarps + warp) * kRows;
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      w[r] = reinterpret_cast<const uint4*>(W + static_cast<size_t>(min(n0 + r, N - 1)) * K);
    if (lane + 32 * (kU - 1) < K8) {
#pragma unroll
      for (int u = 0; u < kU; ++u)
#pragma unroll
        for (int r = 0; r < kRows; ++r) nxt[u][r] = __ldcs(w[r] + lane + 32 * u);
    }
  };
  // Weights do not depend on the previous kernel: requested before waiting for it (PdlWait).
  start();
  PdlWait();
  if constexpr (MODE == kSwiGlu) {
    TW* xs = reinterpret_cast<TW*>(gemvSmem);
    for (int k = threadIdx.x; k < K8; k += blockDim.x) {
      float g[8], u[8];
      Unpack8<TW>(__ldg(reinterpret_cast<const uint4*>(X) + k), g);
      Unpack8<TW>(__ldg(reinterpret_cast<const uint4*>(X + K) + k), u);
      uint4 o;
      TW* oe = reinterpret_cast<TW*>(&o);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float a = g[j] / (1.f + __expf(-g[j]));
        oe[j] = FromF<TW>((na.hfRound ? ToF(FromF<TW>(a)) : a) * u[j]);
      }
      reinterpret_cast<uint4*>(xs)[k] = o;
    }
    __syncthreads();
    X = xs;
    ldx = 0;
  }
  if constexpr (MODE == kNorm) {
    TW* xs = reinterpret_cast<TW*>(gemvSmem);
    __shared__ float red[kWarps];
    float ss = 0.f;
    for (int k = threadIdx.x; k < K8; k += blockDim.x) {
      float f[8];
      Unpack8<TW>(__ldg(reinterpret_cast<const uint4*>(X) + k), f);
#pragma unroll
      for (int j = 0; j < 8; ++j) ss += f[j] * f[j];
    }
    ss = WarpSum(ss);
    if (lane == 0) red[warp] = ss;
    __syncthreads();
    float tot = 0.f;
#pragma unroll
    for (int i = 0; i < kWarps; ++i) tot += red[i];
    const float inv = rsqrtf(tot / K + na.eps);
    for (int k = threadIdx.x; k < K8; k += blockDim.x) {
      float f[8];
      Unpack8<TW>(__ldg(reinterpret_cast<const uint4*>(X) + k), f);
      uint4 o;
      TW* oe = reinterpret_cast<TW*>(&o);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float n = f[j] * inv;
        oe[j] = FromF<TW>(LoadEt(na.w, na.wT, 8 * k + j) * (na.hfRound ? ToF(FromF<TW>(n)) : n));
      }
      reinterpret_cast<uint4*>(xs)[k] = o;
    }
    __syncthreads();
    X = xs;
    ldx = 0;
  }
  while (true) {
    if (n0 < N) {
      float acc[kRows][NT];
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[r][t] = 0.f;
      int c = lane;
      // Each batch of 4 chunks per row is in flight while the previous one is multiplied.
      for (; c + 32 * (kU - 1) < K8; c += 32 * kU) {
        uint4 cur[kU][kRows];
#pragma unroll
        for (int u = 0; u < kU; ++u)
#pragma unroll
          for (int r = 0; r < kRows; ++r) cur[u][r] = nxt[u][r];
        const int cn = c + 32 * kU;
        if (cn + 32 * (kU - 1) < K8) {
#pragma unroll
          for (int u = 0; u < kU; ++u)
#pragma unroll
            for (int r = 0; r < kRows; ++r) nxt[u][r] = __ldcs(w[r] + cn + 32 * u);
        }
#pragma unroll
        for (int u = 0; u < kU; ++u) Fma8<TW, NT, NORM>(cur[u], X, ldx, c + 32 * u, acc);
      }
      for (; c < K8; c += 32) {
        uint4 wv[kRows];
#pragma unroll
        for (int r = 0; r < kRows; ++r) wv[r] = __ldcs(w[r] + c);
        Fma8<TW, NT, NORM>(wv, X, ldx, c, acc);
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[r][t] = WarpSum(acc[r][t]);
      if (lane == 0) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          if (n0 + r >= N) break;
#pragma unroll
          for (int t = 0; t < NT; ++t) {
            TY* y = Y + static_cast<size_t>(t) * ldy + n0 + r;
            *y = FromF<TY>(beta != 0.f ? acc[r][t] + beta * ToF(*y) : acc[r][t]);
          }
        }
      }
    }
    blk += gridDim.x;
    if (!NORM || blk >= nBlocks) break;
    start();
  }
}

template <typename TW, typename TY>
void Dispatch(const void* W, int N, int K, const void* X, int ldx, int T, void* Y, int ldy, float beta, cudaStream_t s) {
  const int blocks = (N + kWarps * kRows - 1) / (kWarps * kRows);
  const TW* w = static_cast<const TW*>(W);
  const TW* x = static_cast<const TW*>(X);
  TY* y = static_cast<TY*>(Y);
  switch (T) {
#define SS_GEMV_CASE(n) \
  case n: LaunchK(GemvKernel<TW, TY, n, kPlain>, blocks, kWarps * 32, 0, s, w, N, K, x, ldx, y, ldy, beta, NormArgs{}); break;
    SS_GEMV_CASE(1) SS_GEMV_CASE(2) SS_GEMV_CASE(3) SS_GEMV_CASE(4)
    SS_GEMV_CASE(5) SS_GEMV_CASE(6) SS_GEMV_CASE(7) SS_GEMV_CASE(8)
#undef SS_GEMV_CASE
  }
}

template <typename TW, typename TY, int MODE>
void DispatchPrologue(const void* W, int N, int K, const void* x, NormArgs na, void* Y, float beta, cudaStream_t s) {
  const size_t smem = static_cast<size_t>(K) * sizeof(TW);
  // Blocks the whole device holds at once at the largest shared-memory size (K <= 16384): once per
  // instantiation, thread-safe static initialisation.
  static const int resident = [] {
    int dev = 0, sms = 0, perSm = 0;
    SS_CUDA_CHECK(cudaGetDevice(&dev));
    SS_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    SS_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, GemvKernel<TW, TY, 1, MODE>, kWarps * 32,
                                                                static_cast<size_t>(16384) * sizeof(TW)));
    return std::max(perSm, 1) * sms;
  }();
  const int blocks = std::min((N + kWarps * kRows - 1) / (kWarps * kRows), resident);
  LaunchK(GemvKernel<TW, TY, 1, MODE>, blocks, kWarps * 32, smem, s,
          static_cast<const TW*>(W), N, K, static_cast<const TW*>(x), 0, static_cast<TY*>(Y), N, beta, na);
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

bool LaunchGemv(const void* W, ET wT, int N, int K, const void* X, int ldx, int T, void* Y, ET yT, int ldy, float beta,
                cudaStream_t s) {
  if (T < 1 || T > 8 || wT == ET::kF32 || K % 8 != 0 || ldx % 8 != 0 || !Aligned16(W) || !Aligned16(X)) return false;
  SS_REQUIRE(N > 0 && ldy >= N && ldx >= K, "gemv: bad shape");
  if (wT == ET::kBF16) {
    SS_DISPATCH_ET(yT, TY, Dispatch<__nv_bfloat16, TY>(W, N, K, X, ldx, T, Y, ldy, beta, s));
  } else {
    SS_DISPATCH_ET(yT, TY, Dispatch<__half, TY>(W, N, K, X, ldx, T, Y, ldy, beta, s));
  }
  SS_CUDA_CHECK_LAUNCH("gemv");
  return true;
}

bool LaunchNormGemv(const void* W, ET wT, int N, int K, const void* x, const void* normW, ET normT, float eps,
                    bool hfRound, void* Y, ET yT, float beta, cudaStream_t s) {
  if (wT == ET::kF32 || K % 8 != 0 || K > 16384 || !Aligned16(W) || !Aligned16(x)) return false;
  SS_REQUIRE(N > 0 && normW != nullptr, "norm gemv: bad shape");
  const NormArgs na{normW, normT, eps, hfRound};
  if (wT == ET::kBF16) {
    SS_DISPATCH_ET(yT, TY, DispatchPrologue<__nv_bfloat16, TY, kNorm>(W, N, K, x, na, Y, beta, s));
  } else {
    SS_DISPATCH_ET(yT, TY, DispatchPrologue<__half, TY, kNorm>(W, N, K, x, na, Y, beta, s));
  }
  SS_CUDA_CHECK_LAUNCH("norm gemv");
  return true;
}

bool LaunchSwiGluGemv(const void* W, ET wT, int N, int K, const void* gu, bool hfRound, void* Y, ET yT, float beta,
                      cudaStream_t s) {
  if (wT == ET::kF32 || K % 8 != 0 || K > 16384 || !Aligned16(W) || !Aligned16(gu)) return false;
  SS_REQUIRE(N > 0, "swiglu gemv: bad shape");
  const NormArgs na{nullptr, ET::kF32, 0.f, hfRound};
  if (wT == ET::kBF16) {
    SS_DISPATCH_ET(yT, TY, DispatchPrologue<__nv_bfloat16, TY, kSwiGlu>(W, N, K, gu, na, Y, beta, s));
  } else {
    SS_DISPATCH_ET(yT, TY, DispatchPrologue<__half, TY, kSwiGlu>(W, N, K, gu, na, Y, beta, s));
  }
  SS_CUDA_CHECK_LAUNCH("swiglu gemv");
  return true;
}

}  // namespace swapserve::cuda
