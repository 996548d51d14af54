// One-token decode steps (T = 1) with the step's small ops folded into its matrix-vector products, so that a layer
// is five kernels instead of nine: q|k|v (+RMSNorm, +bias, +RoPE, +KV-cache write), attention, o (+residual, +sum
// of squares for the next norm), gate|up (+RMSNorm, +SwiGLU), down (+residual, +sum of squares). Every kernel
// boundary of a decode step is a dependency wait during which memory idles, so fewer boundaries is the lever.
//
// How the folds work without extra passes over x:
//   - RMSNorm needs the sum of squares of the whole row: the kernel that writes the residual stream (embedding,
//     o and down products) also adds the squares of what it wrote into a per-step slot; the next product reads
//     the slot after its dependency wait and normalises each x chunk in registers as it multiplies.
//   - RoPE pairs (i, i + D/2) (or (2i, 2i+1)) and SwiGLU pairs (gate f, up f) are mapped onto the two rows one
//     warp computes, so the epilogue has both values at hand.
// Values are rounded exactly where the separate kernels round them (LaunchRmsNorm, LaunchQkvPost, LaunchSwiGlu):
// only the order of the fp32 sum of squares differs.
#include <cstdio>
#include <type_traits>

#include "common/cuda_check.h"
#include "engine/cuda/common.cuh"
#include "engine/cuda/decode_kernels.cuh"

namespace swapserve::cuda {

namespace {

using namespace fold;

template <typename TW, typename TY, int IN, int OUT>
void LaunchConfig(const DecodeGemvArgs& a, const DecodeTuning& tune, int pairs, cudaStream_t s) {
  const unsigned rowBytes = static_cast<unsigned>(a.K) * 2;
  const unsigned pf = (tune.l2PrefetchBytes < rowBytes ? tune.l2PrefetchBytes : rowBytes) / 16 * 16;
  // Pairs per block: R/2 per warp, and the block's warps have rows of their own unless they split K.
  auto blocks = [&](int rowsPerWarp, int ks) {
    const int per = (rowsPerWarp / 2) * (ks == 1 ? kWarps : 1);
    return (pairs + per - 1) / per;
  };
  const bool split = tune.kSplit && (a.K / 8) % kWarps == 0;
  if (split && tune.rows == 4)
    LaunchK(DecodeGemvKernel<TW, TY, IN, OUT, 4, 4, kWarps>, blocks(4, kWarps), kWarps * 32, 0, s, a, pf);
  else if (split)
    LaunchK(DecodeGemvKernel<TW, TY, IN, OUT, 2, 4, kWarps>, blocks(2, kWarps), kWarps * 32, 0, s, a, pf);
  else if (tune.rows == 4)
    LaunchK(DecodeGemvKernel<TW, TY, IN, OUT, 4, 2, 1>, blocks(4, 1), kWarps * 32, 0, s, a, pf);
  else if (tune.unroll == 8)
    LaunchK(DecodeGemvKernel<TW, TY, IN, OUT, 2, 8, 1>, blocks(2, 1), kWarps * 32, 0, s, a, pf);
  else
    LaunchK(DecodeGemvKernel<TW, TY, IN, OUT, 2, 4, 1>, blocks(2, 1), kWarps * 32, 0, s, a, pf);
}

template <typename TW>
void DispatchDecode(DecodeIn in, DecodeOut out, const DecodeGemvArgs& a, const DecodeTuning& tune, int pairs,
                    cudaStream_t s) {
  constexpr int kPlainIn = static_cast<int>(DecodeIn::kPlain), kNormIn = static_cast<int>(DecodeIn::kNorm);
  if (in == DecodeIn::kNorm && out == DecodeOut::kQkvRope) {
    LaunchConfig<TW, TW, kNormIn, static_cast<int>(DecodeOut::kQkvRope)>(a, tune, pairs, s);
  } else if (in == DecodeIn::kPlain && out == DecodeOut::kResidual) {
    LaunchConfig<TW, TW, kPlainIn, static_cast<int>(DecodeOut::kResidual)>(a, tune, pairs, s);
  } else if (in == DecodeIn::kNorm && out == DecodeOut::kSwiGlu) {
    LaunchConfig<TW, TW, kNormIn, static_cast<int>(DecodeOut::kSwiGlu)>(a, tune, pairs, s);
  } else if (in == DecodeIn::kNorm && out == DecodeOut::kStore && a.yT == ET::kF32) {
    LaunchConfig<TW, float, kNormIn, static_cast<int>(DecodeOut::kStore)>(a, tune, pairs, s);
  } else {
    ThrowInvalid("decode gemv: unsupported input/output combination");
  }
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

bool DecodeGemvSupported(ET wT, int K) { return wT != ET::kF32 && K > 0 && K % 8 == 0; }

bool ParseDecodeTuning(const char* spec, DecodeTuning* out) {
  int r = 0, u = 0, n = 0;
  if (!spec || std::sscanf(spec, "%dx%d%n", &r, &u, &n) != 2) return false;
  DecodeTuning t = *out;
  t.rows = r;
  t.unroll = u;
  t.kSplit = spec[n] == 'k';
  if (spec[n + (t.kSplit ? 1 : 0)] != '\0' || !DecodeTuningValid(t)) return false;
  *out = t;
  return true;
}

bool DecodeTuningValid(const DecodeTuning& t) {
  return t.kSplit ? (t.rows == 2 && t.unroll == 4) || (t.rows == 4 && t.unroll == 4)
                  : (t.rows == 2 && (t.unroll == 4 || t.unroll == 8)) || (t.rows == 4 && t.unroll == 2);
}

void RequireDecodeOut(DecodeOut out, const DecodeGemvArgs& a) {
  if (out == DecodeOut::kResidual) SS_REQUIRE(a.ssOut != nullptr, "decode gemv: residual needs ssOut");
  if (out == DecodeOut::kSwiGlu) SS_REQUIRE(a.N % 2 == 0, "decode gemv: gate|up needs an even row count");
  if (out == DecodeOut::kQkvRope) {
    SS_REQUIRE(a.H > 0 && a.KVH > 0 && a.D > 0 && a.D % 2 == 0 && a.N == (a.H + 2 * a.KVH) * a.D &&
                   a.seg1 == a.H * a.D && a.seg2 == (a.H + a.KVH) * a.D,
               "decode gemv: q|k|v shape");
    SS_REQUIRE(a.cosSin && a.pos && a.kvBase && a.cap > 0 && a.layer >= 0, "decode gemv: RoPE / KV arguments");
    SS_REQUIRE((a.bq == nullptr) == (a.bk == nullptr) && (a.bq == nullptr) == (a.bv == nullptr),
               "decode gemv: all or no biases");
  }
}

void LaunchDecodeGemv(DecodeIn in, DecodeOut out, const DecodeGemvArgs& a, const DecodeTuning& tune, cudaStream_t s) {
  SS_REQUIRE(DecodeGemvSupported(a.wT, a.K), "decode gemv: needs 2-byte weights and K a multiple of 8");
  SS_REQUIRE(a.N > 0 && a.seg1 <= a.seg2 && a.seg2 <= a.N && a.w0 && a.x && a.y, "decode gemv: bad shape");
  SS_REQUIRE((a.seg1 == a.N || a.w1) && (a.seg2 == a.N || a.w2), "decode gemv: missing weight segment");
  SS_REQUIRE(Aligned16(a.w0) && Aligned16(a.x) && (!a.w1 || Aligned16(a.w1)) && (!a.w2 || Aligned16(a.w2)),
             "decode gemv: operands must be 16-byte aligned");
  SS_REQUIRE(DecodeTuningValid(tune), "decode gemv: launch shape must be 2x4, 2x8, 4x2, 2x4 with K split or 4x4 with K split");
  if (in == DecodeIn::kNorm) SS_REQUIRE(a.ssIn && a.normW && Aligned16(a.normW), "decode gemv: norm needs ssIn, normW");
  if (out != DecodeOut::kStore) SS_REQUIRE(a.yT == a.wT, "decode gemv: output type must be the weights' type");
  RequireDecodeOut(out, a);
  const int pairs = out == DecodeOut::kSwiGlu || out == DecodeOut::kQkvRope ? a.N / 2 : (a.N + 1) / 2;
  if (a.wT == ET::kBF16) DispatchDecode<__nv_bfloat16>(in, out, a, tune, pairs, s);
  else DispatchDecode<__half>(in, out, a, tune, pairs, s);
  SS_CUDA_CHECK_LAUNCH("decode gemv");
}

void LaunchDecodeEmbed(const int32_t* tokens, const void* emb, ET embT, int C, void* x, ET xT, float* ss, int nSs,
                       const int32_t* pos, const float* invFreq, int half, float* cosSin, cudaStream_t s) {
  SS_REQUIRE(C > 0 && nSs >= 1 && half > 0 && ss && invFreq && cosSin, "decode embed: bad shape");
  SS_DISPATCH_ET(xT, TX, LaunchK(DecodeEmbedKernel<TX>, 1, 512, 0, s, tokens, emb, embT, C, static_cast<TX*>(x), ss,
                                 nSs, pos, invFreq, half, reinterpret_cast<float2*>(cosSin)));
  SS_CUDA_CHECK_LAUNCH("decode embed");
}

}  // namespace swapserve::cuda
