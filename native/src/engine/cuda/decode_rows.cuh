// The row pairs and epilogues of the one-token decode products (DecodeGemvArgs, kernels.h), shared by the 2-byte
// weights' kernel (decode.cu) and the quantized weights' one (quant_dp4a.cu): which two output rows one warp
// computes so that the epilogue has both values of a RoPE pair or of a SwiGLU pair at hand, and what it writes.
// Values are rounded exactly where the separate kernels round them (LaunchRmsNorm, LaunchQkvPost, LaunchSwiGlu).
#pragma once
#include "engine/cuda/common.cuh"

namespace swapserve::cuda {

// Elements 8c .. 8c+7 of a weight vector of run-time dtype (16-byte aligned: checked by the launchers).
__device__ __forceinline__ void LoadVec8(const void* p, ET t, int c, float* f) {
  if (t == ET::kF32) {
    const float4* q = reinterpret_cast<const float4*>(p) + 2 * c;
    const float4 a = __ldg(q), b = __ldg(q + 1);
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
  } else if (t == ET::kF16) {
    Unpack8<__half>(__ldg(reinterpret_cast<const uint4*>(p) + c), f);
  } else {
    Unpack8<__nv_bfloat16>(__ldg(reinterpret_cast<const uint4*>(p) + c), f);
  }
}

// The two rows of pair q, by output mode; false when q is past the last pair.
template <int OUT>
__device__ __forceinline__ bool PairRows(const DecodeGemvArgs& a, int q, int& ra, int& rb) {
  if constexpr (OUT == static_cast<int>(DecodeOut::kSwiGlu)) {  // gate row f, up row F + f
    const int F = a.N / 2;
    ra = q;
    rb = F + q;
    return q < F;
  } else if constexpr (OUT == static_cast<int>(DecodeOut::kQkvRope)) {  // the RoPE pair of a head
    const int half = a.D / 2, hh = q / half, i = q % half, base = hh * a.D;
    ra = a.interleaved ? base + 2 * i : base + i;
    rb = a.interleaved ? base + 2 * i + 1 : base + i + half;
    return q < a.N / 2;
  } else {  // consecutive rows
    ra = 2 * q;
    rb = 2 * q + 1;
    return ra < a.N;
  }
}

// The epilogue of pair q (rows ra, rb of PairRows, products va, vb) by output mode; TW is the activation type
// (the residual stream, q|k|v, gate|up and the KV cache), TY the output's. kResidual adds the squares of what it
// wrote to ss.
template <typename TW, typename TY, int OUT>
__device__ __forceinline__ void StorePair(const DecodeGemvArgs& a, int q, int ra, int rb, float va, float vb,
                                          float& ss) {
  TY* y = static_cast<TY*>(a.y);
  if constexpr (OUT == static_cast<int>(DecodeOut::kStore)) {
    y[ra] = FromF<TY>(va);
    if (rb < a.N) y[rb] = FromF<TY>(vb);
  } else if constexpr (OUT == static_cast<int>(DecodeOut::kResidual)) {
    const TY na = FromF<TY>(va + ToF(y[ra]));
    y[ra] = na;
    ss += ToF(na) * ToF(na);
    if (rb < a.N) {
      const TY nb = FromF<TY>(vb + ToF(y[rb]));
      y[rb] = nb;
      ss += ToF(nb) * ToF(nb);
    }
  } else if constexpr (OUT == static_cast<int>(DecodeOut::kSwiGlu)) {
    // gate and up as the (T, 2F) buffer would hold them, then LaunchSwiGlu's formula.
    y[ra] = FromF<TY>(SwiGlu1<TW>(Rnd<TW>(va), Rnd<TW>(vb), a.hfRound));
  } else {  // kQkvRope: as LaunchQkvPost on the row the product would have written
    const int QD = a.H * a.D, KD = a.KVH * a.D;
    const int seg = ra < QD ? 0 : ra < QD + KD ? 1 : 2;
    const int off = seg == 0 ? 0 : seg == 1 ? QD : QD + KD;
    float xa = Rnd<TW>(va), xb = Rnd<TW>(vb);
    const void* bias = seg == 0 ? a.bq : seg == 1 ? a.bk : a.bv;
    if (bias) {
      xa = Rnd<TW>(xa + LoadEt(bias, a.biasT, ra - off));
      xb = Rnd<TW>(xb + LoadEt(bias, a.biasT, rb - off));
    }
    const size_t plane = static_cast<size_t>(a.cap) * KD;  // one (cap, KVH, D) slice
    TW* kc = reinterpret_cast<TW*>(a.kvBase[0]) + 2 * static_cast<size_t>(a.layer) * plane +
             static_cast<size_t>(a.slot ? a.slot[0] : a.pos[0]) * KD;
    if (seg == 2) {
      kc[plane + ra - off] = FromF<TW>(xa);
      kc[plane + rb - off] = FromF<TW>(xb);
      return;
    }
    const int i = q % (a.D / 2);
    const float2 csn = reinterpret_cast<const float2*>(a.cosSin)[i];
    float ya, yb;
    RopeRotate<TW>(xa, xb, csn.x, csn.y, a.hfRound, ya, yb);
    if (seg == 0) {  // q into the q|k|v row (the attention reads it there)
      static_cast<TW*>(a.y)[ra] = FromF<TW>(ya);
      static_cast<TW*>(a.y)[rb] = FromF<TW>(yb);
    } else {  // k into the cache
      kc[ra - off] = FromF<TW>(ya);
      kc[rb - off] = FromF<TW>(yb);
    }
  }
}

}  // namespace swapserve::cuda
