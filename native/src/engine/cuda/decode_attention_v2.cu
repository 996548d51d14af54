// Decode attention v2 (the default from 32 decode rows: engine tuning attnV2MinEntries; env SWAPSERVE_CUDA_ATTN,
// SWAPSERVE_CUDA_ATTN_V2_MIN): single query rows over the paged
// KV cache, built for many sequences at a time (batch 16..256, contexts 256..4096), where the fast kernel of
// decode_attention.cu reaches ~1.35 TB/s (issue 18). Same inputs, outputs and numerics as LaunchDecodeAttention
// (kernels.h: LaunchDecodeAttentionV2, DecodeSplitsV2).
//
// Why the fast kernel is slow at batch 64: a lane holds its position's whole K row plus D/32 dims of 32 V rows
// (~170 registers), so one block of 8 warps fits an SM (2 warps per scheduler); a warp loads, then computes, with
// nothing else to hide the latency; and ~560 positions are 2.2 rounds of 256, so the last round is mostly idle.
//
// The design here:
// - A block is (split, KV head, entry) with 4 warps and handles all G <= 8 query heads of the KV head, so each K and
//   V byte is read once. A warp's unit of work is one paged block of the cache (16 positions, kKvBlockTokens):
//   blocks of the split's range go round-robin to the warps (block j to warp j % 4), so a context of n positions
//   leaves at most one block of difference between warps (~560 positions: 35 blocks, 9/9/9/8), not a mostly idle
//   last round.
// - K of a block: two lanes per position, lane (r = lane/2, h = lane%2) taking the 16-byte pieces 2i + h of row r
//   (i < D/16): each load instruction reads a whole 32-byte sector of each of 16 rows. The lane's dot products
//   (q from shared memory, float4 reads) cover half of the dims; one xor-1 shuffle completes them.
// - V of a block: lane l holds dims [l*D/32, (l+1)*D/32) of all 16 rows (each instruction reads a whole row), the
//   output accumulators o[g][D/32] likewise; the probabilities go through shared memory (a float4 per row).
// - Software pipeline within a warp: K(j) is in registers at the top of an iteration; V(j) is requested, then
//   QK(j) and the online-softmax update run while V(j) is in flight; K(j+4) is requested before P.V(j) so that it
//   is in flight during P.V. Invalid rows (past the context in the last block) are never loaded (zeros), so garbage
//   in a block's tail cannot reach the output and a contiguous cache is never read past its end.
// - Registers: K 4*D/16 + V 16*D/64 (32 + 32 for D = 128) + o G*D/32 + (m, l, s) 3G, ~110-128 a thread for G <= 4:
//   4 blocks (16 warps, 4 per scheduler) per SM, launch bounds (128, 4); G = 8 needs more (o is 32 floats), 3
//   blocks. Each warp has 8 KiB of K+V requested per block of positions; 16 warps keep ~64+ KiB in flight per
//   SM, well above the ~15-20 KiB that 3.35 TB/s x ~700 ns latency needs per SM.
// - Arithmetic per 16 positions and warp (G = 4, D = 128): 256 FMA for QK + 256 for P.V + ~130 loads/converts/
//   shuffles ~ 650 warp instructions ~ 160 issue cycles on 4 schedulers, against ~560 cycles for an SM's share of
//   DRAM bandwidth to deliver the block's 8 KiB: memory-bound with room, so the expected rate is the GEMMs'
//   ~2.6 TB/s (4.7 GB of K and V over the 32 layers -> ~1.8 ms a step at batch 64 instead of 3.47 ms), if
//   the pipeline holds.
// - Online softmax per warp (running max warp-uniform, the running sum kept per lane and reduced once at the end),
//   then a cross-warp merge in shared memory; one split writes O / L rounded to T (as MergeWarps does), several
//   write (max, sum, values) records that DecodeCombineKernel reduces (decode_attention.cu, LaunchDecodeCombine).
#include <algorithm>
#include <cfloat>
#include <type_traits>

#include "common/cuda_check.h"
#include "engine/cuda/common.cuh"
#include "engine/cuda/decode_merge.cuh"

namespace swapserve::cuda {

namespace {

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

}  // namespace

bool DecodeAttentionV2Supported(ET t, int H, int KVH, int D) {
  return t != ET::kF32 && (D == 64 || D == 128) && KVH > 0 && H % KVH == 0 && H / KVH <= 8;
}

int DecodeSplitsV2(ET t, int H, int KVH, int D, int entries, int maxCtx) {
  if (!DecodeAttentionV2Supported(t, H, KVH, D)) return DecodeSplits(t, H, KVH, D, entries, maxCtx);
  // One split when the blocks already fill ~3/4 of a wave, or when a split would give a warp under 2 blocks of
  // positions (4 warps x 2 x 16 = 128 positions); else enough splits for ~one wave, at most 64.
  constexpr int kMinPerSplit = kV2Warps * 2 * kBT;
  const int blocks = entries * KVH;
  if (blocks * 4 >= kV2Slots * 3 || maxCtx <= kMinPerSplit) return 1;
  const int byLen = (maxCtx + kMinPerSplit - 1) / kMinPerSplit;
  const int want = (kV2Slots + blocks - 1) / blocks;
  return std::min(64, std::min(byLen, want));
}

void LaunchDecodeAttentionV2(const void* qkv, int qStride, ET t, AttnEntries e, int H, int KVH, int D, int layer,
                             int cap, float scale, int splits, float* partial, void* out, cudaStream_t s) {
  if (!DecodeAttentionV2Supported(t, H, KVH, D)) {
    LaunchDecodeAttention(qkv, qStride, t, e, H, KVH, D, layer, cap, scale, splits, partial, out, s);
    return;
  }
  SS_REQUIRE(e.count > 0 && e.count < 65536, "attention: entry count out of range");
  SS_REQUIRE(splits >= 1 && (splits == 1 || partial != nullptr), "attention: splits need a partial buffer");
  const int G = H / KVH;
  int chunk = (e.maxCtx + splits - 1) / splits;
  chunk = (chunk + kBT - 1) / kBT * kBT;  // whole paged blocks per split
  const dim3 grid(splits, KVH, e.count);
  auto launch = [&](auto* tag) {
    using TT = std::remove_pointer_t<decltype(tag)>;
    const TT* q = static_cast<const TT*>(qkv);
    TT* o = static_cast<TT*>(out);
    constexpr int NT = kV2Warps * 32;
    if (D == 128) {
      if (G == 1) LaunchK(DecodeAttnV2Kernel<TT, 128, 1>, grid, NT, 0, s, q, qStride, e, H, KVH, layer, cap, scale, splits, chunk, partial, o);
      else if (G <= 4) LaunchK(DecodeAttnV2Kernel<TT, 128, 4>, grid, NT, 0, s, q, qStride, e, H, KVH, layer, cap, scale, splits, chunk, partial, o);
      else LaunchK(DecodeAttnV2Kernel<TT, 128, 8>, grid, NT, 0, s, q, qStride, e, H, KVH, layer, cap, scale, splits, chunk, partial, o);
    } else {
      if (G == 1) LaunchK(DecodeAttnV2Kernel<TT, 64, 1>, grid, NT, 0, s, q, qStride, e, H, KVH, layer, cap, scale, splits, chunk, partial, o);
      else if (G <= 4) LaunchK(DecodeAttnV2Kernel<TT, 64, 4>, grid, NT, 0, s, q, qStride, e, H, KVH, layer, cap, scale, splits, chunk, partial, o);
      else LaunchK(DecodeAttnV2Kernel<TT, 64, 8>, grid, NT, 0, s, q, qStride, e, H, KVH, layer, cap, scale, splits, chunk, partial, o);
    }
    SS_CUDA_CHECK_LAUNCH("decode attention v2");
  };
  if (t == ET::kBF16) launch(static_cast<__nv_bfloat16*>(nullptr));
  else launch(static_cast<__half*>(nullptr));
  if (splits > 1) LaunchDecodeCombine(t, e, H, D, splits, partial, out, s);
}

}  // namespace swapserve::cuda
