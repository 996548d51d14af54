// The kernels of decode.cu (its design note and launchers stay there): the one-token decode products of 2-byte
// weights with the step's small ops folded in, and the step's embedding. A header of its own so that the CPU
// emulation of the kernels (bench/simt/simt.h, bench/quant/fold_check.cc) compiles the same code with g++; nothing
// here may call the CUDA runtime.
#pragma once
#include <type_traits>

#include "engine/cuda/common.cuh"
#include "engine/cuda/decode_rows.cuh"

namespace swapserve::cuda::fold {

constexpr int kWarps = 4;  // per block

// Two floats rounded into one packed pair of T (one conversion instruction).
template <typename T> struct Pack2;
template <> struct Pack2<__nv_bfloat16> {
  using T = __nv_bfloat162;
  static __device__ __forceinline__ T From(float a, float b) { return __floats2bfloat162_rn(a, b); }
};
template <> struct Pack2<__half> {
  using T = __half2;
  static __device__ __forceinline__ T From(float a, float b) { return __floats2half2_rn(a, b); }
};

// Hopper bulk prefetch of `bytes` (a multiple of 16, 16-byte aligned) into L2: no registers, no completion to wait
// for. Issued before the dependency wait so that memory works while the previous kernels finish.
__device__ __forceinline__ void PrefetchL2(const void* p, unsigned bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(__cvta_generic_to_global(p)), "r"(bytes)
               : "memory");
#endif
}

template <typename TW>
__device__ __forceinline__ const uint4* RowPtr(const DecodeGemvArgs& a, int r) {
  const void* base = a.w0;
  if (r >= a.seg2) { base = a.w2; r -= a.seg2; }
  else if (r >= a.seg1) { base = a.w1; r -= a.seg1; }
  return reinterpret_cast<const uint4*>(static_cast<const TW*>(base) + static_cast<size_t>(r) * a.K);
}

// One warp: R rows (R/2 pairs), each lane streams 16-byte chunks lane, lane + 32, ... of every row with U chunks
// per row in flight while the previous U are multiplied. x chunks come from L1/L2 (8 KB to 28 KB per step, shared).
// KS = 1: each warp of a block has its own rows and the whole of K. KS = kWarps: the block's warps share R rows and
// take a quarter of K each (4x less normalisation work per warp, 4x more blocks), summed in shared memory.
template <typename TW, typename TY, int IN, int OUT, int R, int U, int KS>
__global__ void __launch_bounds__(kWarps * 32)
DecodeGemvKernel(DecodeGemvArgs a, unsigned pfBytes) {
  static_assert(KS == 1 || KS == kWarps, "K split: none or across the block's warps");
  PdlTrigger();
  constexpr int P = R / 2;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int kSlice = (a.K >> 3) / KS;  // 16-byte chunks of K this warp multiplies
  const int kBeg = KS == 1 ? 0 : warp * kSlice;
  const int K8 = kBeg + kSlice;  // end of this warp's chunks
  const int gw = KS == 1 ? blockIdx.x * kWarps + warp : blockIdx.x;
  int rows[R];
  bool valid[P];
  const uint4* w[R];
#pragma unroll
  for (int j = 0; j < P; ++j) {
    valid[j] = PairRows<OUT>(a, gw * P + j, rows[2 * j], rows[2 * j + 1]);
#pragma unroll
    for (int k = 0; k < 2; ++k) w[2 * j + k] = RowPtr<TW>(a, valid[j] ? min(rows[2 * j + k], a.N - 1) : a.N - 1);
  }
  // Weights do not depend on earlier kernels: requested before the dependency wait.
  uint4 nxt[U][R];
  RequestRows<U, R>(w, kBeg + lane, K8, nxt);
  if (pfBytes) {
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (lane == r) PrefetchL2(w[r], pfBytes);
  }
  PdlWait();
  float inv = 0.f;
  if constexpr (IN == static_cast<int>(DecodeIn::kNorm)) inv = rsqrtf(*a.ssIn / a.K + a.eps);
  const TW* x = static_cast<const TW*>(a.x);
  // x chunk c as floats: the row itself, or its RMSNorm rounded as LaunchRmsNorm rounds it.
  // Every warp normalises x again, so this must be cheap: with a norm weight of the weights' type and HF rounding,
  // round(w * round(n)) is one packed conversion and one packed multiply per two elements (the product of two
  // 2-byte values is exact in fp32, so the 2-byte multiply rounds exactly as FromF(w * n) does).
  const bool packedNorm = a.hfRound && a.normT == (std::is_same_v<TW, __half> ? ET::kF16 : ET::kBF16);
  auto xchunk = [&](int c, float (&xf)[8]) {
    const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x) + c);
    Unpack8<TW>(xv, xf);
    if constexpr (IN == static_cast<int>(DecodeIn::kNorm)) {
      if (packedNorm) {
        const uint4 wv = __ldg(reinterpret_cast<const uint4*>(a.normW) + c);
        uint4 ov;
        const auto* w2 = reinterpret_cast<const typename Pack2<TW>::T*>(&wv);
        auto* o2 = reinterpret_cast<typename Pack2<TW>::T*>(&ov);
#pragma unroll
        for (int i = 0; i < 4; ++i) o2[i] = __hmul2(w2[i], Pack2<TW>::From(xf[2 * i] * inv, xf[2 * i + 1] * inv));
        Unpack8<TW>(ov, xf);
      } else {
        float nw[8];
        LoadVec8(a.normW, a.normT, c, nw);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const float n = xf[j] * inv;
          xf[j] = Rnd<TW>(nw[j] * (a.hfRound ? Rnd<TW>(n) : n));
        }
      }
    }
  };
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.f;
  StreamRows<U, R>(w, kBeg + lane, K8, nxt, [&](const uint4 (&wv)[R], int c) {
    float xf[8];
    xchunk(c, xf);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float wf[8];
      Unpack8<TW>(wv[r], wf);
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[r] = fmaf(wf[j], xf[j], acc[r]);
    }
  });
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = WarpSum(acc[r]);
  if constexpr (KS > 1) {  // warp 0 sums the quarters, in a fixed order
    __shared__ float part[KS][R];
    if (lane == 0) {
#pragma unroll
      for (int r = 0; r < R; ++r) part[warp][r] = acc[r];
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < R; ++r) {
      acc[r] = part[0][r];
#pragma unroll
      for (int k = 1; k < KS; ++k) acc[r] += part[k][r];
    }
  }

  float ss = 0.f;  // kResidual: squares of what this warp wrote
  if (lane == 0 && (KS == 1 || warp == 0)) {
#pragma unroll
    for (int j = 0; j < P; ++j) {
      if (!valid[j]) continue;
      StorePair<TW, TY, OUT>(a, gw * P + j, rows[2 * j], rows[2 * j + 1], acc[2 * j], acc[2 * j + 1], ss);
    }
  }
  if constexpr (OUT == static_cast<int>(DecodeOut::kResidual)) {
    __shared__ float red[kWarps];
    if (lane == 0) red[warp] = ss;
    __syncthreads();
    if (threadIdx.x == 0) {
      float tot = 0.f;
#pragma unroll
      for (int i = 0; i < kWarps; ++i) tot += red[i];
      atomicAdd(a.ssOut, tot);
    }
  }
}

// Embedding of the step's token into the residual stream, its sum of squares (slot 0), the other slots zeroed, and
// the step's RoPE cos/sin (as LaunchEmbedding + LaunchRopeTable do for T = 1).
template <typename TX>
__global__ void DecodeEmbedKernel(const int32_t* tokens, const void* emb, ET embT, int C, TX* x, float* ss, int nSs,
                                  const int32_t* pos, const float* invFreq, int half, float2* cosSin) {
  PdlTrigger();
  PdlWait();
  const size_t row = static_cast<size_t>(tokens[0]) * C;
  float acc = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const TX v = FromF<TX>(LoadEt(emb, embT, row + c));
    x[c] = v;
    acc += ToF(v) * ToF(v);
  }
  __shared__ float red[32];
  const float total = BlockSumWarp0(acc, red);
  if (threadIdx.x == 0) ss[0] = total;
  for (int i = threadIdx.x + 1; i < nSs; i += blockDim.x) ss[i] = 0.f;
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float sn, cs;
    sincosf(static_cast<float>(pos[0]) * invFreq[i], &sn, &cs);  // as HF: fp32 angle, fp32 cos/sin
    cosSin[i] = make_float2(cs, sn);
  }
}

}  // namespace swapserve::cuda::fold
