// Attention of single query rows (decode steps; the prefill fallback) over the KV cache, split along the context
// when few sequences decode, with the splits' softmax partials combined in a second kernel; then its launcher
// (kernels.h: LaunchDecodeAttention, DecodeSplits).
#include <cfloat>
#include <type_traits>

#include "common/cuda_check.h"
#include "engine/cuda/common.cuh"
#include "engine/cuda/decode_merge.cuh"
#include "engine/cuda/decode_attention_kernels.cuh"

namespace swapserve::cuda {

using namespace attn;

bool FastDecodeAttention(ET t, int H, int KVH, int D) {
  return t != ET::kF32 && (D == 64 || D == 128) && KVH > 0 && H % KVH == 0 && H / KVH <= 8;
}

int DecodeSplits(ET t, int H, int KVH, int D, int entries, int maxCtx) {
  // Enough blocks to fill the chip (~2 waves of 132 SMs) when few sequences decode; one split when many do, or
  // when one block's warps cover the whole context (256 positions for the fast kernel, 128 for the other).
  const int perBlock = FastDecodeAttention(t, H, KVH, D) ? kFastWarps * 32 : kDecWarps * 32;
  const int blocks = entries * KVH;
  if (blocks >= 256 || maxCtx <= perBlock) return 1;
  const int byLen = (maxCtx + perBlock - 1) / perBlock;
  const int want = (264 + blocks - 1) / blocks;
  return byLen < want ? byLen : want;
}

void LaunchDecodeCombine(ET t, AttnEntries e, int H, int D, int splits, const float* partial, void* out, cudaStream_t s) {
  SS_DISPATCH_ET(t, TT, {
    LaunchK(DecodeCombineKernel<TT>, dim3(e.count, H), 128, 0, s, e, H, D, splits, partial, static_cast<TT*>(out));
    SS_CUDA_CHECK_LAUNCH("decode combine");
  });
}

void LaunchDecodeAttention(const void* qkv, int qStride, ET t, AttnEntries e, int H, int KVH, int D, int layer,
                           int cap, float scale, int splits, float* partial, void* out, cudaStream_t s) {
  SS_REQUIRE(e.count > 0 && e.count < 65536, "attention: entry count out of range");
  SS_REQUIRE(H % KVH == 0 && D % 8 == 0 && D <= kMaxD, "attention: head_dim must be a multiple of 8 up to 256");
  SS_REQUIRE(splits >= 1 && (splits == 1 || partial != nullptr), "attention: splits need a partial buffer");
  const int G = H / KVH, gChunks = (G + kMaxG - 1) / kMaxG;
  int chunk = (e.maxCtx + splits - 1) / splits;
  chunk = (chunk + 31) / 32 * 32;
  const dim3 grid(splits, KVH * gChunks, e.count);
  const int dpl = (D + 31) / 32;
  if (FastDecodeAttention(t, H, KVH, D)) {
    const dim3 fgrid(splits, KVH, e.count);
    auto fast = [&](auto* tag) {
      using TT = std::remove_pointer_t<decltype(tag)>;
      const TT* q = static_cast<const TT*>(qkv);
      TT* o = static_cast<TT*>(out);
      if (D == 128 && G <= 4) LaunchK(DecodeAttnFastKernel<TT, 128, 4>, fgrid, kFastWarps * 32, 0, s, q, qStride, e, H, KVH, layer, cap, scale, splits, chunk, partial, o);
      else if (D == 128) LaunchK(DecodeAttnFastKernel<TT, 128, 8>, fgrid, kFastWarps * 32, 0, s, q, qStride, e, H, KVH, layer, cap, scale, splits, chunk, partial, o);
      else if (G <= 4) LaunchK(DecodeAttnFastKernel<TT, 64, 4>, fgrid, kFastWarps * 32, 0, s, q, qStride, e, H, KVH, layer, cap, scale, splits, chunk, partial, o);
      else LaunchK(DecodeAttnFastKernel<TT, 64, 8>, fgrid, kFastWarps * 32, 0, s, q, qStride, e, H, KVH, layer, cap, scale, splits, chunk, partial, o);
      SS_CUDA_CHECK_LAUNCH("decode attention");
      if (splits > 1) {
        LaunchK(DecodeCombineKernel<TT>, dim3(e.count, H), 128, 0, s, e, H, D, splits, partial, o);
        SS_CUDA_CHECK_LAUNCH("decode combine");
      }
    };
    if (t == ET::kBF16) fast(static_cast<__nv_bfloat16*>(nullptr));
    else fast(static_cast<__half*>(nullptr));
    return;
  }
  SS_DISPATCH_ET(t, TT, {
    const TT* q = static_cast<const TT*>(qkv);
    TT* o = static_cast<TT*>(out);
    switch (dpl) {
      case 1: LaunchK(DecodeAttnKernel<TT, 1>, grid, kDecWarps * 32, 0, s, q, qStride, e, H, KVH, D, layer, cap, scale, splits, chunk, partial, o); break;
      case 2: LaunchK(DecodeAttnKernel<TT, 2>, grid, kDecWarps * 32, 0, s, q, qStride, e, H, KVH, D, layer, cap, scale, splits, chunk, partial, o); break;
      case 3: LaunchK(DecodeAttnKernel<TT, 3>, grid, kDecWarps * 32, 0, s, q, qStride, e, H, KVH, D, layer, cap, scale, splits, chunk, partial, o); break;
      case 4: LaunchK(DecodeAttnKernel<TT, 4>, grid, kDecWarps * 32, 0, s, q, qStride, e, H, KVH, D, layer, cap, scale, splits, chunk, partial, o); break;
      default: LaunchK(DecodeAttnKernel<TT, 8>, grid, kDecWarps * 32, 0, s, q, qStride, e, H, KVH, D, layer, cap, scale, splits, chunk, partial, o); break;
    }
    SS_CUDA_CHECK_LAUNCH("decode attention");
    if (splits > 1) {
      LaunchK(DecodeCombineKernel<TT>, dim3(e.count, H), 128, 0, s, e, H, D, splits, partial, o);
      SS_CUDA_CHECK_LAUNCH("decode combine");
    }
  });
}

}  // namespace swapserve::cuda
