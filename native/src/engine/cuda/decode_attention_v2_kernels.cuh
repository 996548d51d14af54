// The decode-attention v2 kernel of decode_attention_v2.cu (its design note and launcher stay there). A header of its
// own so that the CPU emulation of the kernels (bench/simt/simt.h) compiles the same code with g++; nothing here may
// call the CUDA runtime.
#pragma once
#include <cfloat>
#include <type_traits>

#include "engine/cuda/common.cuh"
#include "engine/cuda/decode_merge.cuh"

namespace swapserve::cuda::attn2 {

constexpr int kV2Warps = 4;
constexpr int kBT = kKvBlockTokens;  // positions per paged block = rows per warp iteration
static_assert(kBT == 16, "two lanes per row of a 16-position block");

template <int N> struct Vec2B;  // N 2-byte values
template <> struct Vec2B<2> { using T = uint32_t; };
template <> struct Vec2B<4> { using T = uint2; };

template <typename T> __device__ __forceinline__ float2 Pair(uint32_t u) {
  if constexpr (std::is_same_v<T, __half>) return __half22float2(*reinterpret_cast<const __half2*>(&u));
  else return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u));
}
template <typename T> __device__ __forceinline__ void UnpackV(uint32_t u, float* f) {
  const float2 a = Pair<T>(u);
  f[0] = a.x; f[1] = a.y;
}
template <typename T> __device__ __forceinline__ void UnpackV(uint2 u, float* f) {
  const float2 a = Pair<T>(u.x), b = Pair<T>(u.y);
  f[0] = a.x; f[1] = a.y; f[2] = b.x; f[3] = b.y;
}

template <int GM> constexpr int V2MinBlocks() { return GM <= 4 ? 4 : 3; }

template <typename T, int D, int GM>
__global__ void __launch_bounds__(kV2Warps * 32, V2MinBlocks<GM>())
DecodeAttnV2Kernel(const T* qkv, int qStride, AttnEntries e, int H, int KVH, int layer, int cap, float scale,
                   int splits, int chunk, float* partial, T* out) {
  PdlTrigger();
  PdlWait();
  constexpr int KP = D / 16;  // 16-byte K pieces per lane (half a row)
  constexpr int DL = D / 32;  // V dims per lane
  constexpr int GP = GM < 4 ? 4 : GM;  // probabilities per row in shared memory, padded to a float4
  using VT = typename Vec2B<DL>::T;
  __shared__ __align__(16) float sq[GM][D];
  __shared__ __align__(16) float sp[kV2Warps][kBT][GP];
  __shared__ float sm[kV2Warps][GM], sl[kV2Warps][GM];
  __shared__ __align__(16) float so[kV2Warps][GM][D];

  const int ent = blockIdx.z, split = blockIdx.x, kvh = blockIdx.y;
  const int G = H / KVH, h0 = kvh * G;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r = lane >> 1, hh = lane & 1;  // the K row (position within the block) and half of this lane
  const int qRow = e.qRow[ent], ctx = e.ctx[ent];
  const int s0 = split * chunk, s1 = min(ctx, s0 + chunk);  // chunk: a multiple of kBT
  const int b0 = s0 / kBT, nb = s1 > s0 ? (s1 - s0 + kBT - 1) / kBT : 0;
  const size_t plane = static_cast<size_t>(cap) * KVH * D, rowStride = static_cast<size_t>(KVH) * D;
  const T* kc = reinterpret_cast<const T*>(e.kvBase[ent]) + 2 * static_cast<size_t>(layer) * plane + kvh * D;
  const T* vc = kc + plane;
  const int32_t* tb = e.table ? e.table + e.tableOff[ent] : nullptr;
  auto rowOf = [&](int j) {  // cache row of position 0 of the split's block j
    const int b = b0 + j;
    return tb ? static_cast<size_t>(tb[b]) * kBT : static_cast<size_t>(b) * kBT;
  };
  // Positions of block j below s1 (at least 1 for j < nb).
  auto rowsOf = [&](int j) { return min(kBT, s1 - (s0 + j * kBT)); };

  uint4 kr[KP];
  VT vr[kBT];
  auto loadK = [&](int j) {
    const bool ok = r < rowsOf(j);
    const uint4* kp = reinterpret_cast<const uint4*>(kc + (rowOf(j) + (ok ? r : 0)) * rowStride) + hh;
#pragma unroll
    for (int i = 0; i < KP; ++i) kr[i] = ok ? kp[2 * i] : make_uint4(0, 0, 0, 0);
  };
  auto loadV = [&](int j) {
    const int n = rowsOf(j);
    const T* vb = vc + rowOf(j) * rowStride;
#pragma unroll
    for (int u = 0; u < kBT; ++u) {
      if (u < n) vr[u] = reinterpret_cast<const VT*>(vb + u * rowStride)[lane];
      else vr[u] = VT{};
    }
  };

  int j = warp;
  if (j < nb) loadK(j);  // in flight while q goes to shared memory
  LoadScaledQ(sq, qkv, qRow, qStride, h0, G, D, scale);
  __syncthreads();

  float m[GM], l[GM], o[GM][DL];
  ResetSoftmax(m, l, o);
  for (; j < nb; j += kV2Warps) {
    loadV(j);
    const bool valid = r < rowsOf(j);
    float s[GM];
#pragma unroll
    for (int g = 0; g < GM; ++g) s[g] = 0.f;
#pragma unroll
    for (int i = 0; i < KP; ++i) {
      float kf[8];
      Unpack8<T>(kr[i], kf);
      const int d0 = 8 * (2 * i + hh);
#pragma unroll
      for (int g = 0; g < GM; ++g) {
        if (g >= G) break;
        const float4 qa = *reinterpret_cast<const float4*>(&sq[g][d0]);
        const float4 qb = *reinterpret_cast<const float4*>(&sq[g][d0 + 4]);
        s[g] += qa.x * kf[0] + qa.y * kf[1] + qa.z * kf[2] + qa.w * kf[3] + qb.x * kf[4] + qb.y * kf[5] +
                qb.z * kf[6] + qb.w * kf[7];
      }
    }
#pragma unroll
    for (int g = 0; g < GM; ++g) {
      if (g >= G) break;
      // Every lane shuffles (a full-mask shuffle that some lanes skip hangs the warp: it did on the H100), then
      // the rows past the context drop out.
      const float pair = s[g] + __shfl_xor_sync(0xffffffffu, s[g], 1);
      const float sv = valid ? pair : -INFINITY;
      float cm = sv;  // the two lanes of a row agree: the max over the 16 rows takes 4 steps
#pragma unroll
      for (int off = 16; off > 1; off >>= 1) cm = fmaxf(cm, __shfl_xor_sync(0xffffffffu, cm, off));
      const float mnew = fmaxf(m[g], cm);  // finite: row 0 of block j is valid
      const float alpha = __expf(m[g] - mnew);
      const float p = valid ? __expf(sv - mnew) : 0.f;
      l[g] = l[g] * alpha + (hh == 0 ? p : 0.f);  // per-lane share; reduced once after the loop
      m[g] = mnew;
#pragma unroll
      for (int i = 0; i < DL; ++i) o[g][i] *= alpha;
      if (hh == 0) sp[warp][r][g] = p;
    }
    if (j + kV2Warps < nb) loadK(j + kV2Warps);  // in flight during P.V
    __syncwarp();
#pragma unroll
    for (int u = 0; u < kBT; ++u) {
      float vf[DL];
      UnpackV<T>(vr[u], vf);
      float pg[GP];
#pragma unroll
      for (int g4 = 0; g4 < GP; g4 += 4) {
        const float4 p4 = *reinterpret_cast<const float4*>(&sp[warp][u][g4]);
        pg[g4] = p4.x; pg[g4 + 1] = p4.y; pg[g4 + 2] = p4.z; pg[g4 + 3] = p4.w;
      }
#pragma unroll
      for (int g = 0; g < GM; ++g) {
        if (g >= G) break;
#pragma unroll
        for (int i = 0; i < DL; ++i) o[g][i] = fmaf(pg[g], vf[i], o[g][i]);
      }
    }
    __syncwarp();
  }
  // Merge the warps (a warp with no block keeps m = -inf, l = 0 and is skipped).
#pragma unroll
  for (int g = 0; g < GM; ++g) {
    if (g >= G) break;
    const float lw = WarpSum(l[g]);
    if (lane == 0) { sm[warp][g] = m[g]; sl[warp][g] = lw; }
#pragma unroll
    for (int i = 0; i < DL; ++i) so[warp][g][lane * DL + i] = o[g][i];
  }
  __syncthreads();
  MergeWarps<T, kV2Warps, GM, D>(sm, sl, so, G, D, h0, H, qRow, ent, split, splits, out, partial);
}

// Blocks of the v2 kernel resident on the chip at once (132 SMs x 4): the split count aims at about one wave.
constexpr int kV2Slots = 132 * 4;

}  // namespace swapserve::cuda::attn2
