// The kernels of the `dp4a` decode GEMV (quant_dp4a.cu holds their launchers and the design in brief): the plain
// product (QuantGemvDp4aKernel) and the folded one-token decode product (QuantDecodeKernel), with the X prologue they
// share. A header of its own so that the CPU emulation of the kernels (bench/simt/simt.h, bench/quant/fold_check.cc,
// test/quant/fold-emu.test.ts) compiles the very same code with g++; nothing here may call the CUDA runtime.
#pragma once
#include "engine/cuda/common.cuh"
#include "engine/cuda/decode_rows.cuh"
#include "engine/cuda/quant_dp4a.cuh"

namespace swapserve::cuda::dp4a {

using bf16 = __nv_bfloat16;
constexpr int kDpWarps = 8;  // warps per thread block
constexpr int kDpWaves = 2;  // at most this many waves of resident blocks; warps loop over their row groups

// Shared memory for NT rows of X (K values each): per row, the int8 pieces in D::Slot order (16 bytes each,
// `slots` of them: the units of a weight row rounded up to the warp, times kS), one float d per 32 values and
// [Q4_0, K-quants] one float d * (sum of q) per 16.
template <typename D>
struct XL8 {
  int slots, k32, k16;
  __host__ __device__ explicit XL8(int K)
      : slots((K / D::kElems * D::kUnits + 31) / 32 * 32 * D::kS), k32(K / 32), k16(D::kSums ? K / 16 : 0) {}
  __host__ __device__ size_t Bytes(int nt) const {
    return static_cast<size_t>(nt) * (static_cast<size_t>(slots) * 16 + 4 * static_cast<size_t>(k32 + k16));
  }
};

// The RMSNorm folded into the X prologue (the folded decode's products): x becomes w * (x * inv), rounded as
// LaunchRmsNorm rounds it, before it is quantized (QuantizeX<.., NORM = true>).
struct XNorm {
  float inv = 0.f;             // rsqrt(sum of squares / K + eps)
  const void* w = nullptr;     // (K) norm weight of wT, 16-byte aligned
  ET wT = ET::kBF16;
  bool hfRound = true;
};

// Quantizes NT rows of X (K values, row stride ldx) into the block's shared memory in XL8<D>'s layout: int8 pieces
// in D::Slot order, d per 32 values, [D::kSums] d * sum(q) per 16. All threads of the block take part; the caller
// synchronises before reading. NORM: the rows normalised by `norm` first (the folded decode: NT = 1).
template <typename D, int NT, bool NORM>
__device__ __forceinline__ void QuantizeX(const bf16* __restrict__ X, int ldx, int K, const XL8<D>& L, int4* xq,
                                          float* xd, float* xs, const XNorm& norm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // Pieces of 16 values, two lanes (xor 1) a 32-value block; whole warps iterate (K/16 is even). Unrolled so that
  // the X loads (L2) of several iterations are in flight together (K = 14336: 3.5 iterations at T = 1).
  const int per = K / 16, total = NT * per;
#pragma unroll 4
  for (int base = warp * 32; base < total; base += blockDim.x) {
    const int i = base + lane;
    const bool ok = i < total;
    const int t = ok ? i / per : 0, k16 = ok ? i - t * per : 0;
    const bf16* xp = X + static_cast<size_t>(t) * ldx + 16 * k16;
    float f[16];
    Unpack8<bf16>(__ldg(reinterpret_cast<const uint4*>(xp)), f);
    Unpack8<bf16>(__ldg(reinterpret_cast<const uint4*>(xp + 8)), f + 8);
    if constexpr (NORM) {  // as LaunchRmsNorm: round(w * round(x * inv)) in the activation type
      float nw[16];
      LoadVec8(norm.w, norm.wT, 2 * k16, nw);
      LoadVec8(norm.w, norm.wT, 2 * k16 + 1, nw + 8);
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const float n = f[j] * norm.inv;
        f[j] = Rnd<bf16>(nw[j] * (norm.hfRound ? Rnd<bf16>(n) : n));
      }
    }
    float amax, bad;
    BlockAmax<2>(f, amax, bad);
    float d, inv;
    q8::QuantScale(amax, d, inv);
    uint32_t wq[4] = {0, 0, 0, 0};
    int sum = 0;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int q = q8::RoundI(f[j] * inv);
      wq[j >> 2] |= static_cast<uint32_t>(q & 255) << (8 * (j & 3));
      sum += q;
    }
    d += bad;  // a NaN activation makes the block's outputs NaN, as the float path does
    if (ok) {
      xq[t * L.slots + D::Slot(k16)] = make_int4(static_cast<int>(wq[0]), static_cast<int>(wq[1]),
                                                  static_cast<int>(wq[2]), static_cast<int>(wq[3]));
      if ((k16 & 1) == 0) xd[t * L.k32 + (k16 >> 1)] = d;
      if constexpr (D::kSums) xs[t * L.k16 + k16] = d * static_cast<float>(sum);
    }
  }
}

// S warps share a group of R rows (S > 1: split K, for long rows; T = 1 only): warp w takes units lane + 32 (w % S),
// + 32 S, ..; the S partial sums meet in shared memory behind a named barrier of the S warps (id 1 + w / S; the warps
// of one group run the same row loop, so only they wait for each other).
template <typename D, typename TY, int NT, int R, int S>
__global__ void __launch_bounds__(kDpWarps * 32)
QuantGemvDp4aKernel(const uint8_t* __restrict__ W, int N, int K, const bf16* __restrict__ X, int ldx, TY* Y, int ldy,
                    float beta) {
  SS_DYNAMIC_SHARED(int4, smem8);
  const XL8<D> L(K);
  int4* xq = smem8;                                          // (NT, slots)
  float* xd = reinterpret_cast<float*>(xq + NT * L.slots);   // (NT, k32)
  float* xs = xd + NT * L.k32;                               // (NT, k16)
  static_assert(kDpWarps % S == 0, "S must divide the block's warps");
  constexpr int kGroupsPerBlock = kDpWarps / S;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = warp % S;
  const size_t rowBytes = static_cast<size_t>(K / D::kElems) * D::kBytes;
  const int groups = (N + R - 1) / R;
  // The weights never come from the previous kernel: pull the start of this warp's first rows into L2 while that
  // kernel ends (PDL) and while the block quantizes X.
  if (part == 0 && blockIdx.x * kGroupsPerBlock + warp / S < groups) {
    const int n0 = (blockIdx.x * kGroupsPerBlock + warp / S) * R;
    PrefetchSpanL2(W + static_cast<size_t>(n0) * rowBytes, static_cast<size_t>(min(R, N - n0)) * rowBytes, lane);
  }
  PdlTrigger();
  PdlWait();
  QuantizeX<D, NT, false>(X, ldx, K, L, xq, xd, xs, XNorm{});
  __syncthreads();
  const int units = K / D::kElems * D::kUnits;
  // Units a lane has in flight: kUnroll * R. Two at R = 1 and T <= 2; R at R > 1 (unrolling further would cost
  // occupancy: Q6_K at R = 2 needs 142 registers unrolled, 1 block an SM); one at T > 2 (the T accumulators would
  // spill).
  constexpr int kUnroll = R == 1 && NT <= 2 ? 2 : 1;
  __shared__ float red[S > 1 ? kDpWarps : 1][NT * R];
  for (int g = blockIdx.x * kGroupsPerBlock + warp / S; g < groups; g += gridDim.x * kGroupsPerBlock) {
    const uint8_t* rows[R];
#pragma unroll
    for (int r = 0; r < R; ++r) rows[r] = W + static_cast<size_t>(min(g * R + r, N - 1)) * rowBytes;
    float acc[NT][R];
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
      for (int r = 0; r < R; ++r) acc[t][r] = 0.f;
#pragma unroll kUnroll
    for (int u = lane + 32 * part; u < units; u += 32 * S) {
      typename D::W w[R];
#pragma unroll
      for (int r = 0; r < R; ++r) D::Load(rows[r], u, w[r]);
#pragma unroll
      for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int r = 0; r < R; ++r)
          acc[t][r] += D::Dot(w[r], u, xq + t * L.slots, xd + t * L.k32, xs + t * L.k16);
    }
    if constexpr (S == 1) {
#pragma unroll
      for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const float v = WarpSum(acc[t][r]);
          const int n = g * R + r;
          if (lane == 0 && n < N) StoreY(Y + static_cast<size_t>(t) * ldy + n, v, beta);
        }
    } else {
#pragma unroll
      for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const float v = WarpSum(acc[t][r]);
          if (lane == 0) red[warp][t * R + r] = v;
        }
      asm volatile("bar.sync %0, %1;" ::"r"(1 + warp / S), "r"(32 * S) : "memory");
      if (part == 0 && lane < NT * R) {
        float v = 0.f;
#pragma unroll
        for (int p = 0; p < S; ++p) v += red[warp + p][lane];
        const int t = lane / R, n = g * R + lane % R;
        if (n < N) StoreY(Y + static_cast<size_t>(t) * ldy + n, v, beta);
      }
      asm volatile("bar.sync %0, %1;" ::"r"(1 + warp / S), "r"(32 * S) : "memory");  // red is reused next row
    }
  }
}


// The folded one-token decode product of quantized weights (LaunchQuantDecodeGemv, quant.h): the X prologue of the
// kernel above at T = 1 with the RMSNorm folded in (the block sums the squares of x itself, so no sum is carried
// between kernels), and one RoPE pair or SwiGLU pair a warp (PairRows), so that the epilogue (StorePair) applies
// RoPE + the KV write or SwiGLU as the separate kernels would. FoldRun: what `blocks` blocks (this one is `block` of
// them) do for rows [r0, r1) of the logical output (q|k|v or gate|up), all of type D; the weight segments of `a`
// hold them. `smem`: the block's dynamic shared memory, at least XL8<D>(a.K).Bytes(1).
template <typename D, int OUT>
__device__ __forceinline__ void FoldRun(const DecodeGemvArgs& a, int r0, int r1, int block, int blocks, int4* smem) {
  const int K = a.K;
  const size_t rowBytes = static_cast<size_t>(K / D::kElems) * D::kBytes;
  const XL8<D> L(K);
  int4* xq = smem;
  float* xd = reinterpret_cast<float*>(xq + L.slots);
  float* xs = xd + L.k32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int pairs = (r1 - r0) / 2, q0 = r0 / 2;  // pair q0 + g is warp-group g's
  auto rowPtr = [&](int r) {  // logical row r in its weight segment
    const void* base = a.w0;
    if (r >= a.seg2) { base = a.w2; r -= a.seg2; }
    else if (r >= a.seg1) { base = a.w1; r -= a.seg1; }
    return static_cast<const uint8_t*>(base) + static_cast<size_t>(r) * rowBytes;
  };
  {
    const int g = block * kDpWarps + warp;
    int ra, rb;
    if (g < pairs && PairRows<OUT>(a, q0 + g, ra, rb)) {
      PrefetchSpanL2(rowPtr(ra), rowBytes, lane);
      PrefetchSpanL2(rowPtr(rb), rowBytes, lane);
    }
  }
  PdlTrigger();
  PdlWait();
  const bf16* X = static_cast<const bf16*>(a.x);
  XNorm norm;
  norm.w = a.normW;
  norm.wT = a.normT;
  norm.hfRound = a.hfRound;
  {  // the sum of squares of x, as LaunchRmsNorm sums it (fp32 of the bf16 values)
    float ss = 0.f;
    for (int c = threadIdx.x; c < K / 8; c += blockDim.x) {
      float f[8];
      Unpack8<bf16>(__ldg(reinterpret_cast<const uint4*>(X) + c), f);
#pragma unroll
      for (int j = 0; j < 8; ++j) ss += f[j] * f[j];
    }
    __shared__ float red[32];
    norm.inv = rsqrtf(BlockSum(ss, red) / K + a.eps);
  }
  QuantizeX<D, 1, true>(X, K, K, L, xq, xd, xs, norm);
  __syncthreads();
  const int units = K / D::kElems * D::kUnits;
  for (int g = block * kDpWarps + warp; g < pairs; g += blocks * kDpWarps) {
    int ra, rb;
    const bool valid = PairRows<OUT>(a, q0 + g, ra, rb);
    const uint8_t* w[2] = {rowPtr(valid ? ra : r0), rowPtr(valid ? rb : r0)};
    float acc[2] = {0.f, 0.f};
    for (int u = lane; u < units; u += 32) {
      typename D::W wv[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) D::Load(w[r], u, wv[r]);
#pragma unroll
      for (int r = 0; r < 2; ++r) acc[r] += D::Dot(wv[r], u, xq, xd, xs);
    }
    acc[0] = WarpSum(acc[0]);
    acc[1] = WarpSum(acc[1]);
    float unused = 0.f;
    if (lane == 0 && valid) StorePair<bf16, bf16, OUT>(a, q0 + g, ra, rb, acc[0], acc[1], unused);
  }
}

// One run of one type: rows [r0, r1), all blocks of the grid.
template <typename D, int OUT>
__global__ void __launch_bounds__(kDpWarps * 32) QuantDecodeKernel(DecodeGemvArgs a, int r0, int r1) {
  SS_DYNAMIC_SHARED(int4, smem8);
  FoldRun<D, OUT>(a, r0, r1, blockIdx.x, gridDim.x, smem8);
}

// Two runs of two types in one launch (q|k|v of Q4_K_M: q|k Q4_K, v Q6_K), so that the second does not wait for the
// first as a second launch would (programmatic dependent launch orders whole kernels): blocks [0, split) take rows
// [r0, r1) as D1, the rest [r1, r2) as D2, each with the X prologue of its own type.
template <typename D1, typename D2, int OUT>
__global__ void __launch_bounds__(kDpWarps * 32) QuantDecodeKernel2(DecodeGemvArgs a, int r0, int r1, int r2, int split) {
  SS_DYNAMIC_SHARED(int4, smem8);
  if (static_cast<int>(blockIdx.x) < split) FoldRun<D1, OUT>(a, r0, r1, blockIdx.x, split, smem8);
  else FoldRun<D2, OUT>(a, r1, r2, blockIdx.x - split, gridDim.x - split, smem8);
}

}  // namespace swapserve::cuda::dp4a
