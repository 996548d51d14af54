// Quantized weights on the GPU: decode GEMV reading GGUF blocks directly, row-band dequantization to bf16 for the
// prefill GEMM, and the quantized embedding lookup. The lane split of each block type is engine/quant_blocks.h
// (shared with a CPU test hook that checks it against the scalar reference).
#include "engine/cuda/quant.h"

#include "common/cuda_check.h"
#include "engine/cuda/common.cuh"
#include "engine/quant_blocks.h"

namespace swapserve::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kWarps = 4;  // rows per thread block (one warp a row)

// n consecutive bf16 activations as floats (n = 8: 16-byte load, 4: 8-byte, 2: 4-byte; aligned by construction).
template <int N>
__device__ __forceinline__ void LoadX(const bf16* p, float (&f)[N]) {
  if constexpr (N == 8) {
    Unpack8<bf16>(__ldg(reinterpret_cast<const uint4*>(p)), f);
  } else if constexpr (N == 4) {
    const uint2 u = __ldg(reinterpret_cast<const uint2*>(p));
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
    const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
    f[0] = a.x; f[1] = a.y; f[2] = b.x; f[3] = b.y;
  } else {
    const unsigned int u = __ldg(reinterpret_cast<const unsigned int*>(p));
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u));
    f[0] = a.x; f[1] = a.y;
  }
}

// Y[t][n] = beta*Y[t][n] + sum_k W[n][k] X[t][k]: warp w of block b takes row n = b*kWarps + w; its lanes split each
// block kLanes ways (32 / kLanes blocks per step), dequantize 8 values each and multiply them with all NT rows of X.
template <typename B, typename TY, int NT>
__global__ void __launch_bounds__(kWarps * 32)
QuantGemvKernel(const uint8_t* __restrict__ W, int N, int K, const bf16* __restrict__ X, int ldx, TY* Y, int ldy,
                float beta) {
  PdlTrigger();
  PdlWait();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = blockIdx.x * kWarps + warp;
  if (n >= N) return;
  constexpr int kPer = 32 / B::kLanes;
  const int nb = K / B::kElems;
  const int sub = lane % B::kLanes;
  const uint8_t* row = W + static_cast<size_t>(n) * nb * B::kBytes;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.f;
#pragma unroll 2
  for (int b = lane / B::kLanes; b < nb; b += kPer) {
    float v[8];
    B::Deq(row + static_cast<size_t>(b) * B::kBytes, sub, v);
    const bf16* xb = X + static_cast<size_t>(b) * B::kElems;
#pragma unroll
    for (int r = 0; r < 8 / B::kRun; ++r) {
      const int i0 = B::Idx(sub, r * B::kRun);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        float xf[B::kRun];
        LoadX<B::kRun>(xb + static_cast<size_t>(t) * ldx + i0, xf);
#pragma unroll
        for (int j = 0; j < B::kRun; ++j) acc[t] = fmaf(v[r * B::kRun + j], xf[j], acc[t]);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = WarpSum(acc[t]);
  if (lane == 0) {
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      TY* y = Y + static_cast<size_t>(t) * ldy + n;
      *y = FromF<TY>(beta != 0.f ? acc[t] + beta * ToF(*y) : acc[t]);
    }
  }
}

// out[r][k] (rows, K) = W[row0 + r][k]: one thread per (row, block, lane).
template <typename B, typename TO>
__global__ void DequantKernel(const uint8_t* __restrict__ W, const int32_t* __restrict__ rowIds, int row0, int rows,
                              int K, TO* out, size_t ldo) {
  PdlTrigger();
  PdlWait();
  const int nb = K / B::kElems;
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(rows) * nb * B::kLanes) return;
  const int sub = static_cast<int>(i % B::kLanes);
  const size_t blk = i / B::kLanes;
  const int b = static_cast<int>(blk % nb), r = static_cast<int>(blk / nb);
  const size_t src = rowIds ? static_cast<size_t>(rowIds[r]) : static_cast<size_t>(row0) + r;
  float v[8];
  B::Deq(W + (src * nb + b) * B::kBytes, sub, v);
  TO* o = out + static_cast<size_t>(r) * ldo + static_cast<size_t>(b) * B::kElems;
#pragma unroll
  for (int k = 0; k < 8; ++k) o[B::Idx(sub, k)] = FromF<TO>(v[k]);
}

template <typename B, typename TO>
void LaunchDequant(const void* W, const int32_t* rowIds, int row0, int rows, int K, TO* out, size_t ldo,
                   cudaStream_t s) {
  const size_t threads = static_cast<size_t>(rows) * (K / B::kElems) * B::kLanes;
  const int bs = 256;
  SS_REQUIRE((threads + bs - 1) / bs < (1u << 31), "dequant: too many rows at once");
  LaunchK(DequantKernel<B, TO>, static_cast<unsigned>((threads + bs - 1) / bs), bs, 0, s,
          static_cast<const uint8_t*>(W), rowIds, row0, rows, K, out, ldo);
}

template <typename B, typename TY>
void RunGemv(int blocks, cudaStream_t s, const uint8_t* w, int N, int K, const bf16* x, int ldx, int T, TY* y, int ldy,
             float beta) {
  switch (T) {
#define SS_QGEMV_CASE(nt) \
  case nt: LaunchK(QuantGemvKernel<B, TY, nt>, blocks, kWarps * 32, 0, s, w, N, K, x, ldx, y, ldy, beta); break;
    SS_QGEMV_CASE(1) SS_QGEMV_CASE(2) SS_QGEMV_CASE(3) SS_QGEMV_CASE(4)
    SS_QGEMV_CASE(5) SS_QGEMV_CASE(6) SS_QGEMV_CASE(7) SS_QGEMV_CASE(8)
#undef SS_QGEMV_CASE
  }
}

bool Aligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

}  // namespace

void LaunchQuantGemv(const void* W, QT wT, int N, int K, const void* X, int ldx, int T, void* Y, ET yT, int ldy,
                     float beta, cudaStream_t s) {
  SS_REQUIRE(T >= 1 && T <= 8, "quant gemv: T must be 1..8");
  SS_REQUIRE(N > 0 && K > 0 && K % QtBlockElems(wT) == 0 && ldx >= K && ldx % 8 == 0 && ldy >= N,
             "quant gemv: bad shape");
  SS_REQUIRE(Aligned(W, 2) && Aligned(X, 16), "quant gemv: misaligned operands");
  const int blocks = (N + kWarps - 1) / kWarps;
  const uint8_t* w = static_cast<const uint8_t*>(W);
  const bf16* x = static_cast<const bf16*>(X);
  qblocks::Dispatch(static_cast<int>(wT), [&](auto blk) {
    SS_DISPATCH_ET(yT, TY, RunGemv<decltype(blk), TY>(blocks, s, w, N, K, x, ldx, T, static_cast<TY*>(Y), ldy, beta));
  });
  SS_CUDA_CHECK_LAUNCH("quant gemv");
}

void LaunchDequantRows(const void* W, QT wT, int row0, int rows, int K, void* out, cudaStream_t s) {
  SS_REQUIRE(rows > 0 && row0 >= 0 && K > 0 && K % QtBlockElems(wT) == 0, "dequant: bad shape");
  qblocks::Dispatch(static_cast<int>(wT), [&](auto blk) {
    LaunchDequant<decltype(blk), bf16>(W, nullptr, row0, rows, K, static_cast<bf16*>(out), static_cast<size_t>(K), s);
  });
  SS_CUDA_CHECK_LAUNCH("dequant rows");
}

void LaunchQuantEmbedding(const int32_t* tokens, int T, const void* emb, QT embT, int C, void* x, ET xT,
                          cudaStream_t s) {
  SS_REQUIRE(T > 0 && C > 0 && C % QtBlockElems(embT) == 0, "quant embedding: bad shape");
  qblocks::Dispatch(static_cast<int>(embT), [&](auto blk) {
    SS_DISPATCH_ET(xT, TX, LaunchDequant<decltype(blk), TX>(emb, tokens, 0, T, C, static_cast<TX*>(x), static_cast<size_t>(C), s));
  });
  SS_CUDA_CHECK_LAUNCH("quant embedding");
}

}  // namespace swapserve::cuda
