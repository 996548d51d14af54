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
#include "engine/cuda/decode_attention_v2_kernels.cuh"

namespace swapserve::cuda {

using namespace attn2;

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
