// The kernels of quant_gemv.cu (its design note and launchers stay there): the `float` decode GEMV, the row-band
// dequantization, and the `int16` decode GEMV with its X prologue. A header of its own so that the CPU emulation of
// the kernels (bench/simt/simt.h, bench/quant/fold_check.cc) compiles the same code with g++; nothing here may call
// the CUDA runtime.
#pragma once
#include "engine/cuda/common.cuh"
#include "engine/cuda/quant_dot.cuh"
#include "engine/quant_blocks.h"

namespace swapserve::cuda::qgemv {

// The end of a GEMV warp: each of its NT sums reduced over the warp, stored by lane 0 into row t of Y at column n.
template <typename TY, int NT>
__device__ __forceinline__ void WarpSumStore(float (&acc)[NT], TY* Y, int ldy, int n, float beta, int lane) {
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = WarpSum(acc[t]);
  if (lane == 0) {
#pragma unroll
    for (int t = 0; t < NT; ++t) StoreY(Y + static_cast<size_t>(t) * ldy + n, acc[t], beta);
  }
}

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
  WarpSumStore<TY, NT>(acc, Y, ldy, n, beta, lane);
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

constexpr int kIntWarps = 16;  // rows in flight per thread block of the int16 path (one warp a row)

// Shared memory of the int16 path for NT rows of X (K values each): per row, the quantized activations in
// slots (16 bytes = 8 values: hi[0..3], lo[0..3], hi[4..7], lo[4..7]; `slots` of them, in D::Slot order), [K-quants:
// one float per slot, d * the sum of its 8 quantized values], then one float scale d per 32 values.
template <typename D>
struct XLayout {
  int slots;  // per row of X: the units of a weight row rounded up to the warp, times kM
  int k32;
  __host__ __device__ XLayout(int K) : slots((K / D::kElems * D::kUnits + 31) / 32 * 32 * D::kM), k32(K / 32) {}
  __host__ __device__ size_t Bytes(int nt) const {
    return static_cast<size_t>(nt) * (static_cast<size_t>(slots) * (16 + (D::kMins ? 4 : 0)) + 4 * k32);
  }
};

// x (8 values, 32-value blocks split over 4 consecutive lanes) → the slot of run k8: scale d = amax / 32512 of the
// block (NaN if the block holds a NaN or inf), q = round(x / d) = 256 * hi + lo with hi, lo int8; returns the sum of
// the 8 q.
__device__ __forceinline__ int QuantizeRun(const float (&f)[8], int4& slot, float& d) {
  float amax, bad;
  BlockAmax<4>(f, amax, bad);
  d = amax / 32512.f + bad;  // a NaN activation makes the block's outputs NaN, as the float path does
  const float inv = amax > 0.f ? 32512.f / amax : 0.f;
  uint32_t hw[2] = {0, 0}, lw[2] = {0, 0};
  int sum = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int q = __float2int_rn(f[j] * inv);
    const int lo = ((q + 128) & 255) - 128, hi = (q - lo) >> 8;
    hw[j >> 2] |= static_cast<uint32_t>(hi & 255) << (8 * (j & 3));
    lw[j >> 2] |= static_cast<uint32_t>(lo & 255) << (8 * (j & 3));
    sum += q;
  }
  slot = make_int4(static_cast<int>(hw[0]), static_cast<int>(lw[0]), static_cast<int>(hw[1]), static_cast<int>(lw[1]));
  return sum;
}

// Y[t][n] = beta*Y[t][n] + sum_k W[n][k] X[t][k] (design note at the top): the block quantizes X into shared
// memory, then warp w takes rows blockIdx.x*kIntWarps + w, + gridDim.x*kIntWarps, ...; lane l takes units l, l+32, ..
template <typename D, typename TY, int NT>
__global__ void __launch_bounds__(kIntWarps * 32, NT == 1 ? 0 : 2)
QuantGemvIntKernel(const uint8_t* __restrict__ W, int N, int K, const bf16* __restrict__ X, int ldx, TY* Y, int ldy,
                   float beta) {
  SS_DYNAMIC_SHARED(int4, smem);
  const XLayout<D> L(K);
  int4* xq = smem;                                             // (NT, slots)
  float* xs = reinterpret_cast<float*>(xq + NT * L.slots);    // (NT, slots) K-quants only
  float* xd = xs + (D::kMins ? NT * L.slots : 0);              // (NT, K/32)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const size_t rowBytes = static_cast<size_t>(K / D::kElems) * D::kBytes;
  // The weights never come from the previous kernel: pull the first 8 KiB of this warp's first row into L2 while
  // that kernel ends (PDL) and while the block quantizes X.
  if (blockIdx.x * kIntWarps + warp < N)
    PrefetchSpanL2(W + static_cast<size_t>(blockIdx.x * kIntWarps + warp) * rowBytes, rowBytes, lane);
  PdlTrigger();
  PdlWait();
  const int per = K / 8, total = NT * per;
  // Runs of 8 values, 4 consecutive lanes a 32-value block (per is a multiple of 4); whole warps iterate.
#pragma unroll 1
  for (int base = warp * 32; base < total; base += blockDim.x) {
    const int i = base + lane;
    const bool ok = i < total;
    const int t = ok ? i / per : 0, k8 = ok ? i - t * per : 0;
    float f[8];
    Unpack8<bf16>(__ldg(reinterpret_cast<const uint4*>(X + static_cast<size_t>(t) * ldx + 8 * k8)), f);
    int4 slot;
    float d;
    const int sum = QuantizeRun(f, slot, d);
    if (ok) {
      const int at = t * L.slots + D::Slot(k8);
      xq[at] = slot;
      if constexpr (D::kMins) xs[at] = d * static_cast<float>(sum);
      if ((lane & 3) == 0) xd[t * L.k32 + (k8 >> 2)] = d;
    }
  }
  __syncthreads();
  const int units = K / D::kElems * D::kUnits;
  // Two units a lane in flight; one where two would spill (Q6_K at T = 2 needs 75 registers of the 64 it has).
  constexpr int kUnroll = NT == 2 && std::is_same_v<D, qdot::Q6_K> ? 1 : 2;
  for (int n = blockIdx.x * kIntWarps + warp; n < N; n += gridDim.x * kIntWarps) {
    const uint8_t* row = W + static_cast<size_t>(n) * rowBytes;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.f;
#pragma unroll kUnroll
    for (int u = lane; u < units; u += 32) {
      int w[2 * D::kM];
      float ds[D::kM], dm[D::kM];
      int b32[D::kM];
      D::Unit(row, u, w, ds, dm, b32);
      const int s0 = qdot::SlotOf<D::kM>(u, 0);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
#pragma unroll
        for (int m = 0; m < D::kM; ++m) {
          const int at = t * L.slots + s0 + 32 * m;
          const int4 x = xq[at];
          int hi = __dp4a(w[2 * m], x.x, 0), lo = __dp4a(w[2 * m], x.y, 0);
          hi = __dp4a(w[2 * m + 1], x.z, hi);
          lo = __dp4a(w[2 * m + 1], x.w, lo);
          acc[t] = fmaf(ds[m] * xd[t * L.k32 + b32[m]], static_cast<float>(hi * 256 + lo), acc[t]);
          if constexpr (D::kMins) acc[t] = fmaf(-dm[m], xs[at], acc[t]);
        }
      }
    }
    WarpSumStore<TY, NT>(acc, Y, ldy, n, beta, lane);
  }
}

}  // namespace swapserve::cuda::qgemv
