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
#include "engine/cuda/decode_rows.cuh"

namespace swapserve::cuda {

namespace {

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
