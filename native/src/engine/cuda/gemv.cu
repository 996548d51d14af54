// Matrix x few-vectors products for decode steps (T <= 8 rows of activations): memory-bound on the weights, so
// each warp streams R weight rows with 16-byte loads (evict-first, several in flight per lane), multiplies them
// with all T activation rows (small, cached) in fp32, and reduces across the warp. One pass over the weights
// serves every sequence of the batch.
#include "common/cuda_check.h"
#include "engine/cuda/common.cuh"

namespace swapserve::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kRows = 2;  // weight rows per warp

// X rows from global memory (read-only path: small, shared by every warp).
template <typename TW, int NT>
__device__ __forceinline__ void Fma8(const uint4 (&wv)[kRows], const TW* __restrict__ X, int ldx, int c,
                                     float (&acc)[kRows][NT]) {
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    float xf[8];
    const uint4* xp = reinterpret_cast<const uint4*>(X + static_cast<size_t>(t) * ldx) + c;
    Unpack8<TW>(__ldg(xp), xf);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float wf[8];
      Unpack8<TW>(wv[r], wf);
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[r][t] = fmaf(wf[j], xf[j], acc[r][t]);
    }
  }
}

template <typename TW, typename TY, int NT>
__global__ void __launch_bounds__(kWarps * 32)
GemvKernel(const TW* __restrict__ W, int N, int K, const TW* __restrict__ X, int ldx, TY* Y, int ldy, float beta) {
  PdlTrigger();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int K8 = K >> 3;
  constexpr int kU = 4;
  const int n0 = (blockIdx.x * kWarps + warp) * kRows;
  const uint4* w[kRows];
  uint4 nxt[kU][kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) w[r] = reinterpret_cast<const uint4*>(W + static_cast<size_t>(min(n0 + r, N - 1)) * K);
  // Weights do not depend on the previous kernel: the first 4 chunks per row are requested before waiting for it.
  RequestRows<kU, kRows>(w, lane, K8, nxt);
  PdlWait();
  if (n0 < N) {
    float acc[kRows][NT];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int t = 0; t < NT; ++t) acc[r][t] = 0.f;
    // Each batch of 4 chunks per row is in flight while the previous one is multiplied.
    StreamRows<kU, kRows>(w, lane, K8, nxt, [&](const uint4 (&wv)[kRows], int c) { Fma8<TW, NT>(wv, X, ldx, c, acc); });
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
}

template <typename TW, typename TY>
void Dispatch(const void* W, int N, int K, const void* X, int ldx, int T, void* Y, int ldy, float beta, cudaStream_t s) {
  const int blocks = (N + kWarps * kRows - 1) / (kWarps * kRows);
  const TW* w = static_cast<const TW*>(W);
  const TW* x = static_cast<const TW*>(X);
  TY* y = static_cast<TY*>(Y);
  switch (T) {
#define SS_GEMV_CASE(n) \
  case n: LaunchK(GemvKernel<TW, TY, n>, blocks, kWarps * 32, 0, s, w, N, K, x, ldx, y, ldy, beta); break;
    SS_GEMV_CASE(1) SS_GEMV_CASE(2) SS_GEMV_CASE(3) SS_GEMV_CASE(4)
    SS_GEMV_CASE(5) SS_GEMV_CASE(6) SS_GEMV_CASE(7) SS_GEMV_CASE(8)
#undef SS_GEMV_CASE
  }
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

}  // namespace swapserve::cuda
