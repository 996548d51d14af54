// The decode products' kernels run on the CPU under the SIMT emulation of bench/simt/simt.h, against scalar
// references, for every weight type:
//   1. the plain quantized GEMVs: dp4a (quant_dp4a_kernels.cuh) with Y = beta Y + X W^T at T = 1 and 3, R = 1, 2 and
//      4 rows a warp, beta 0 and 1, an odd row count, one block per row group and one block for all (its grid-stride
//      loop); and the `float` and `int16` GEMVs of quant_gemv_kernels.cuh (the defaults for the other types);
//   2. QuantDecodeKernel (the folded decode, tuning quantFold): the attention norm inside the product, then q|k|v
//      with bias or not, RoPE half-split or interleaved, q into y and k, v into the paged cache's row (slot), as one
//      run over q|k|v or as two runs of two types in one launch (Q4_K_M: q|k Q4_K, v Q6_K); and gate|up with SwiGLU;
//   3. the bf16 fold (decode_kernels.cuh, DecodeGemvKernel): q|k|v, gate|up, the residual products with their sum of
//      squares and the head, at the engine's launch shapes.
// The references round where the kernels round (bf16 activations, the int8 quantization of the normalised x per 32
// values, rounding as transformers does or not), sum in double, and every byte a kernel must not write is checked to
// be untouched (sentinels around q, the cache rows of other positions and layers, the buffers' tails).
// Bound: |kernel - reference| <= 1/64 |reference| + 1e-3 max |reference| per value (bf16 keeps 8 bits; a value whose
// rounding lands on the other side of a bf16 step, or whose norm rounds differently after the sum of squares was
// added in another order, moves by about one step of 1/128); a misplaced row, pair, scale or position is off by
// the whole value. Exit status 1 on any mismatch.
//   g++ -std=c++17 -O2 -fno-strict-aliasing -Wno-attributes -Wno-unknown-pragmas -I/usr/local/cuda/include -Inative/src
//       bench/quant/fold_check.cc -o /tmp/fold_check   (test/quant/fold-emu.test.ts builds and runs it)
#include "../simt/simt.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/cuda/quant_dp4a_kernels.cuh"
#include "engine/cuda/quant_gemv_kernels.cuh"
#include "engine/cuda/decode_kernels.cuh"
#include "check_util.h"

namespace {

using namespace swapserve;
using namespace swapserve::qcheck;
using bf16 = __nv_bfloat16;

constexpr int kThreads = cuda::dp4a::kDpWarps * 32;
int failures = 0;

float F(bf16 v) { return __bfloat162float(v); }
bf16 B(float v) { return __float2bfloat16_rn(v); }

// Values of `got` against `want` (same length): the bound of the header; prints the worst and returns whether it holds.
bool Compare(const char* what, const std::vector<float>& got, const std::vector<double>& want) {
  double maxRef = 0;
  for (double w : want) maxRef = std::fmax(maxRef, std::fabs(w));
  double worst = 0;
  size_t at = 0, off = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::fabs(got[i] - want[i]), bound = std::fabs(want[i]) / 64 + 1e-3 * maxRef;
    if (!(e <= bound)) ++off;
    if (!(e <= worst)) { worst = e; at = i; }
  }
  const bool ok = off == 0 && maxRef > 0;
  std::printf("%s: %zu values, max |ref| %.4g, worst |diff| %.3g at %zu (got %.6g, want %.6g), %zu outside the bound %s\n",
              what, want.size(), maxRef, worst, at, want.empty() ? 0.0 : got[at], want.empty() ? 0.0 : want[at], off,
              ok ? "ok" : "FAIL");
  if (!ok) ++failures;
  return ok;
}

// ------------------------------------------------------------------------------------------------ 1. the plain GEMV

// Which plain GEMV: dp4a with R rows a warp (quant_dp4a_kernels.cuh), or the float and int16 ones
// (quant_gemv_kernels.cuh), the engine's defaults for Q8_0 and for Q4_0 / Q5_K / Q6_K. The float one multiplies the
// weights dequantized by the lane split of quant_blocks.h with bf16 X, the int16 one 15-bit X (1e-5 from X): their
// reference is fed X itself, dp4a's the int8-rounded X.
enum class Gemv { kDp4a, kFloat, kInt16 };

// Y = beta Y + X W^T for T = NT rows of X against N random rows of type Blk: one block per row group, or one block
// for all (the dp4a and int16 kernels' grid-stride loops; the float kernel has none and always gets one a group).
template <typename Blk, int NT, int R = 1>
void PlainCase(Gemv kind, int qt, int K, int N, float beta, bool oneBlock) {
  const size_t rowBytes = static_cast<size_t>(K / Blk::kElems) * Blk::kBytes;
  const std::vector<uint8_t> w = Fill(rowBytes * N, Blk::kBytes, qt, 1234u + qt, 16);
  const std::vector<float> x = TestX(NT, K);
  std::vector<bf16> xb(x.size());
  for (size_t i = 0; i < x.size(); ++i) xb[i] = B(x[i]);
  std::vector<float> y(static_cast<size_t>(NT) * N), y0(y.size());
  for (size_t i = 0; i < y.size(); ++i) y0[i] = y[i] = 0.25f * std::cos(0.7f * static_cast<float>(i));
  auto blocks = [&](int rowsPerBlock) { return oneBlock ? 1u : static_cast<unsigned>((N + rowsPerBlock - 1) / rowsPerBlock); };
  if (kind == Gemv::kDp4a) {
    using D = typename cuda::q8::Of<Blk>::T;
    simt::Launch(blocks(R * cuda::dp4a::kDpWarps), kThreads, cuda::dp4a::XL8<D>(K).Bytes(NT), [&] {
      cuda::dp4a::QuantGemvDp4aKernel<D, float, NT, R, 1>(w.data(), N, K, xb.data(), K, y.data(), N, beta);
    });
  } else if (kind == Gemv::kInt16) {
    using D = typename cuda::qdot::Of<Blk>::T;
    simt::Launch(blocks(cuda::qgemv::kIntWarps), cuda::qgemv::kIntWarps * 32, cuda::qgemv::XLayout<D>(K).Bytes(NT), [&] {
      cuda::qgemv::QuantGemvIntKernel<D, float, NT>(w.data(), N, K, xb.data(), K, y.data(), N, beta);
    });
  } else {
    oneBlock = false;
    simt::Launch(blocks(cuda::qgemv::kWarps), cuda::qgemv::kWarps * 32, 0, [&] {
      cuda::qgemv::QuantGemvKernel<Blk, float, NT>(w.data(), N, K, xb.data(), K, y.data(), N, beta);
    });
  }
  std::vector<double> want(y.size());
  for (int t = 0; t < NT; ++t) {
    std::vector<float> xt(x.begin() + static_cast<size_t>(t) * K, x.begin() + static_cast<size_t>(t + 1) * K);
    if (kind == Gemv::kDp4a) xt = Int8Rounded(xt);
    const std::vector<double> ref = FloatRef<Blk>(w, N, xt.data(), K);
    for (int n = 0; n < N; ++n) want[static_cast<size_t>(t) * N + n] = ref[n] + beta * y0[static_cast<size_t>(t) * N + n];
  }
  const char* name = kind == Gemv::kDp4a ? "dp4a" : kind == Gemv::kInt16 ? "int16" : "float";
  const std::string what = std::string(name) + " type " + std::to_string(qt) + " K " + std::to_string(K) + " N " +
                           std::to_string(N) + " T " + std::to_string(NT) + " R " + std::to_string(R) + " beta " +
                           std::to_string(static_cast<int>(beta)) + (oneBlock ? " one block" : " one block a row group");
  Compare(what.c_str(), y, want);
}

// ------------------------------------------------------------------------------------------- 2. the folded decode

// One token's decode state: x (the residual row), the norm weight, the RoPE table of its position, the paged cache.
struct Step {
  int K, H, KVH, D, layers, cap, layer, slot;
  bool interleaved, hfRound, bias;
  std::vector<bf16> x, normW, bq, bk, bv;
  std::vector<float> cosSin;  // (D/2) pairs (cos, sin)
  int QD() const { return H * D; }
  int KD() const { return KVH * D; }
  int QS() const { return QD() + 2 * KD(); }
};

Step MakeStep(int K, bool interleaved, bool hfRound, bool bias) {
  Step s{K, 4, 2, 64, 3, 8, 1, 3, interleaved, hfRound, bias, {}, {}, {}, {}, {}, {}};
  for (int k = 0; k < K; ++k) {
    s.x.push_back(B(std::sin(0.11f * k) * 1.5f + (k % 61 == 3 ? 9.f : 0.f)));
    s.normW.push_back(B(0.6f + 0.5f * std::cos(0.05f * k)));
  }
  for (int i = 0; i < s.QD(); ++i) s.bq.push_back(B(0.1f * std::sin(0.3f * i)));
  for (int i = 0; i < s.KD(); ++i) {
    s.bk.push_back(B(0.1f * std::cos(0.2f * i)));
    s.bv.push_back(B(-0.05f * std::sin(0.17f * i)));
  }
  for (int i = 0; i < s.D / 2; ++i) {
    const double a = 37.0 * std::pow(10000.0, -2.0 * i / s.D);  // position 37
    s.cosSin.push_back(static_cast<float>(std::cos(a)));
    s.cosSin.push_back(static_cast<float>(std::sin(a)));
  }
  return s;
}

// The normalised x as LaunchRmsNorm makes it (sum of squares in double here).
std::vector<float> NormedX(const Step& s) {
  double ss = 0;
  for (bf16 v : s.x) ss += static_cast<double>(F(v)) * F(v);
  const float inv = 1.f / std::sqrt(static_cast<float>(ss) / s.K + 1e-5f);
  std::vector<float> n(s.K);
  for (int k = 0; k < s.K; ++k) {
    const float v = F(s.x[k]) * inv;
    n[k] = Bf16Round(F(s.normW[k]) * (s.hfRound ? Bf16Round(v) : v));
  }
  return n;
}

float Rnd(float v) { return Bf16Round(v); }

void RefRope(float xa, float xb, float cs, float sn, bool hf, float& ya, float& yb) {
  if (hf) {
    cs = Rnd(cs);
    sn = Rnd(sn);
    ya = Rnd(xa * cs) + Rnd(-xb * sn);
    yb = Rnd(xb * cs) + Rnd(xa * sn);
  } else {
    ya = xa * cs - xb * sn;
    yb = xb * cs + xa * sn;
  }
}

cuda::DecodeGemvArgs BaseArgs(const Step& s, void* y) {
  cuda::DecodeGemvArgs a;
  a.K = s.K;
  a.wT = cuda::ET::kBF16;
  a.x = s.x.data();
  a.normW = s.normW.data();
  a.normT = cuda::ET::kBF16;
  a.eps = 1e-5f;
  a.hfRound = s.hfRound;
  a.y = y;
  a.yT = cuda::ET::kBF16;
  return a;
}

// Blocks for the pairs of rows [r0, r1): one for all (the grid-stride loop), or one per kDpWarps pairs.
int FoldBlocks(int r0, int r1, bool oneBlock) {
  return oneBlock ? 1 : ((r1 - r0) / 2 + cuda::dp4a::kDpWarps - 1) / cuda::dp4a::kDpWarps;
}

template <typename Blk, int OUT>
void LaunchFold(const cuda::DecodeGemvArgs& a, int r0, int r1, bool oneBlock) {
  using D = typename cuda::q8::Of<Blk>::T;
  simt::Launch(FoldBlocks(r0, r1, oneBlock), kThreads, cuda::dp4a::XL8<D>(a.K).Bytes(1),
               [&] { cuda::dp4a::QuantDecodeKernel<D, OUT>(a, r0, r1); });
}

// Rows [r0, r1) of type A and [r1, r2) of type B in one launch (QuantDecodeKernel2, as LaunchFold2 makes it).
template <typename A, typename Bt, int OUT>
void LaunchFold2(const cuda::DecodeGemvArgs& a, int r0, int r1, int r2, bool oneBlock) {
  using DA = typename cuda::q8::Of<A>::T;
  using DB = typename cuda::q8::Of<Bt>::T;
  const int b1 = FoldBlocks(r0, r1, oneBlock), b2 = FoldBlocks(r1, r2, oneBlock);
  const size_t smem = std::max(cuda::dp4a::XL8<DA>(a.K).Bytes(1), cuda::dp4a::XL8<DB>(a.K).Bytes(1));
  simt::Launch(b1 + b2, kThreads, smem, [&] { cuda::dp4a::QuantDecodeKernel2<DA, DB, OUT>(a, r0, r1, r2, b1); });
}

// q|k|v: the weights of q (QD rows), k and v (KD rows each) of types A (q, k) and Bv (v); one launch of one run, or
// of two runs when the types differ, as the backend's foldQkv does.
// The q|k|v check around one launch: y (q lands in [0, QD)) and the paged cache filled with a sentinel, the arguments
// over the weight segments wq, wk, wv, `launch(a)`, then q, k and v against the reference made from the products pq,
// pk, pv of the normalised x (bias, RoPE per head pair, q to y, k and v to the cache row `slot` of layer `layer`),
// and nothing else written.
template <typename Launch>
void QkvCheck(const std::string& what, const Step& s, const void* wq, const void* wk, const void* wv, Launch&& launch,
              const std::vector<double>& pq, const std::vector<double>& pk, const std::vector<double>& pv) {
  const int QD = s.QD(), KD = s.KD(), QS = s.QS();
  const bf16 sentinel = B(12345.f);
  std::vector<bf16> y(QS + 64, sentinel);
  const size_t plane = static_cast<size_t>(s.cap) * KD;
  std::vector<bf16> cache(2 * static_cast<size_t>(s.layers) * plane, sentinel);
  const uint64_t base = reinterpret_cast<uint64_t>(cache.data());
  const int32_t pos = 37, slot = s.slot;
  cuda::DecodeGemvArgs a = BaseArgs(s, y.data());
  a.w0 = wq;
  a.w1 = wk;
  a.w2 = wv;
  a.N = QS;
  a.seg1 = QD;
  a.seg2 = QD + KD;
  a.H = s.H;
  a.KVH = s.KVH;
  a.D = s.D;
  a.interleaved = s.interleaved;
  if (s.bias) {
    a.bq = s.bq.data();
    a.bk = s.bk.data();
    a.bv = s.bv.data();
    a.biasT = cuda::ET::kBF16;
  }
  a.cosSin = s.cosSin.data();
  a.pos = &pos;
  a.kvBase = &base;
  a.layer = s.layer;
  a.cap = s.cap;
  a.slot = &slot;
  launch(a);

  std::vector<double> wantQ(QD), wantK(KD), wantV(KD);
  auto rope = [&](const std::vector<double>& p, const std::vector<bf16>& bias, int heads, std::vector<double>& out) {
    const int half = s.D / 2;
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < half; ++i) {
        const int ra = h * s.D + (s.interleaved ? 2 * i : i), rb = h * s.D + (s.interleaved ? 2 * i + 1 : i + half);
        float xa = Rnd(static_cast<float>(p[ra])), xb = Rnd(static_cast<float>(p[rb]));
        if (s.bias) {
          xa = Rnd(xa + F(bias[ra]));
          xb = Rnd(xb + F(bias[rb]));
        }
        float ya, yb;
        RefRope(xa, xb, s.cosSin[2 * i], s.cosSin[2 * i + 1], s.hfRound, ya, yb);
        out[ra] = Rnd(ya);
        out[rb] = Rnd(yb);
      }
  };
  rope(pq, s.bq, s.H, wantQ);
  rope(pk, s.bk, s.KVH, wantK);
  for (int i = 0; i < KD; ++i) {
    float v = Rnd(static_cast<float>(pv[i]));
    if (s.bias) v = Rnd(v + F(s.bv[i]));
    wantV[i] = v;
  }
  std::vector<float> gotQ(QD), gotK(KD), gotV(KD);
  for (int i = 0; i < QD; ++i) gotQ[i] = F(y[i]);
  const size_t kRow = 2 * static_cast<size_t>(s.layer) * plane + static_cast<size_t>(slot) * KD, vRow = kRow + plane;
  for (int i = 0; i < KD; ++i) {
    gotK[i] = F(cache[kRow + i]);
    gotV[i] = F(cache[vRow + i]);
  }
  const std::string full = what + " K " + std::to_string(s.K) + (s.interleaved ? " interleaved" : " half-split") +
                           (s.hfRound ? " hf" : " fp32-rope") + (s.bias ? " bias" : "");
  Compare((full + ": q").c_str(), gotQ, wantQ);
  Compare((full + ": k").c_str(), gotK, wantK);
  Compare((full + ": v").c_str(), gotV, wantV);
  size_t stray = 0;
  for (size_t i = QD; i < y.size(); ++i) stray += F(y[i]) != F(sentinel);
  for (size_t i = 0; i < cache.size(); ++i) {
    const bool mine = (i >= kRow && i < kRow + KD) || (i >= vRow && i < vRow + KD);
    if (!mine) stray += F(cache[i]) != F(sentinel);
  }
  std::printf("%s: stray writes %zu %s\n", full.c_str(), stray, stray ? "FAIL" : "ok");
  if (stray) ++failures;
}

// The gate|up check around one launch: h filled with a sentinel past its F values, `launch(a)` over the segments wg,
// wu, then silu(gate) * up against the products g, u of the normalised x, and nothing else written.
template <typename Launch>
void GateUpCheck(const std::string& what, const Step& s, int F_, const void* wg, const void* wu, Launch&& launch,
                 const std::vector<double>& g, const std::vector<double>& u) {
  const bf16 sentinel = B(-777.f);
  std::vector<bf16> h(F_ + 40, sentinel);
  cuda::DecodeGemvArgs a = BaseArgs(s, h.data());
  a.w0 = wg;
  a.w1 = wu;
  a.N = a.seg2 = 2 * F_;
  a.seg1 = F_;
  launch(a);
  std::vector<double> want(F_);
  std::vector<float> got(F_);
  for (int f = 0; f < F_; ++f) {
    const float gv = Rnd(static_cast<float>(g[f])), uv = Rnd(static_cast<float>(u[f]));
    const float act = gv / (1.f + std::exp(-gv));
    want[f] = Rnd((s.hfRound ? Rnd(act) : act) * uv);
    got[f] = F(h[f]);
  }
  const std::string full = what + " K " + std::to_string(s.K) + " F " + std::to_string(F_) + (s.hfRound ? " hf" : " fp32-act");
  Compare(full.c_str(), got, want);
  size_t stray = 0;
  for (size_t i = F_; i < h.size(); ++i) stray += F(h[i]) != F(sentinel);
  std::printf("%s: stray writes %zu %s\n", full.c_str(), stray, stray ? "FAIL" : "ok");
  if (stray) ++failures;
}

// q|k|v of quantized weights: q and k of type A, v of type Bv; one launch of one run, or of two runs when the types
// differ, as the backend's foldQkv does; the reference multiplies the int8-rounded normalised x.
template <typename A, typename Bv>
void QkvCase(int qa, int qb, const Step& s, bool oneBlock) {
  const int QD = s.QD(), KD = s.KD(), QS = s.QS(), K = s.K;
  const size_t rowA = static_cast<size_t>(K / A::kElems) * A::kBytes, rowB = static_cast<size_t>(K / Bv::kElems) * Bv::kBytes;
  const std::vector<uint8_t> wq = Fill(rowA * QD, A::kBytes, qa, 77u + qa, 16), wk = Fill(rowA * KD, A::kBytes, qa, 91u + qa, 16),
                             wv = Fill(rowB * KD, Bv::kBytes, qb, 13u + qb, 16);
  const std::vector<float> x8 = Int8Rounded(NormedX(s));
  constexpr int kRope = static_cast<int>(cuda::DecodeOut::kQkvRope);
  QkvCheck("fold q|k|v types " + std::to_string(qa) + "/" + std::to_string(qb) + (oneBlock ? " one block" : ""), s,
           wq.data(), wk.data(), wv.data(), [&](const cuda::DecodeGemvArgs& a) {
             if constexpr (std::is_same_v<A, Bv>) LaunchFold<A, kRope>(a, 0, QS, oneBlock);
             else LaunchFold2<A, Bv, kRope>(a, 0, QD + KD, QS, oneBlock);
           },
           FloatRef<A>(wq, QD, x8.data(), K), FloatRef<A>(wk, KD, x8.data(), K), FloatRef<Bv>(wv, KD, x8.data(), K));
}

template <typename Blk>
void GateUpCase(int qt, const Step& s, int F_, bool oneBlock) {
  const int K = s.K;
  const size_t rowBytes = static_cast<size_t>(K / Blk::kElems) * Blk::kBytes;
  const std::vector<uint8_t> wg = Fill(rowBytes * F_, Blk::kBytes, qt, 5u + qt, 16), wu = Fill(rowBytes * F_, Blk::kBytes, qt, 6u + qt, 16);
  const std::vector<float> x8 = Int8Rounded(NormedX(s));
  GateUpCheck("fold gate|up type " + std::to_string(qt) + (oneBlock ? " one block" : ""), s, F_, wg.data(), wu.data(),
              [&](const cuda::DecodeGemvArgs& a) {
                LaunchFold<Blk, static_cast<int>(cuda::DecodeOut::kSwiGlu)>(a, 0, 2 * F_, oneBlock);
              },
              FloatRef<Blk>(wg, F_, x8.data(), K), FloatRef<Blk>(wu, F_, x8.data(), K));
}

// ------------------------------------------------------------------------ 3. the bf16 decode fold (decode_kernels.cuh)

// Random bf16 weights (rows x K) and their products with x in double.
std::vector<bf16> Bf16Rows(int rows, int K, uint32_t seed) {
  std::vector<bf16> w(static_cast<size_t>(rows) * K);
  for (size_t i = 0; i < w.size(); ++i) w[i] = B(0.05f * (static_cast<float>(Hash(static_cast<uint32_t>(i), seed) % 2001) / 1000.f - 1.f));
  return w;
}
std::vector<double> Bf16Products(const std::vector<bf16>& w, int rows, const std::vector<float>& x) {
  const size_t K = x.size();
  std::vector<double> y(rows, 0.0);
  for (int r = 0; r < rows; ++r)
    for (size_t k = 0; k < K; ++k) y[r] += static_cast<double>(F(w[r * K + k])) * x[k];
  return y;
}

// DecodeGemvKernel's launch as LaunchConfig makes it: R rows a warp, U chunks in flight, KS warps sharing K.
template <int IN, int OUT, int R, int U, int KS, typename TY = bf16>
void LaunchBf16(const cuda::DecodeGemvArgs& a, int pairs) {
  const int per = (R / 2) * (KS == 1 ? cuda::fold::kWarps : 1);
  simt::Launch((pairs + per - 1) / per, cuda::fold::kWarps * 32, 0,
               [&] { cuda::fold::DecodeGemvKernel<bf16, TY, IN, OUT, R, U, KS>(a, 0u); });
}

// The folds of 2-byte weights: q|k|v (attention norm, RoPE, KV write) and gate|up (FFN norm, SwiGLU) as the engine's
// default launch shapes run them (4 rows a warp, K split over the block's warps) and as 2 rows a warp; o / down
// (the residual add and the sum of squares of what it wrote); the head (norm, fp32 logits). The norms read the sum of
// squares of x from ssIn, as the step's earlier kernels leave it.
void Bf16Cases(const Step& s) {
  constexpr int kNorm = static_cast<int>(cuda::DecodeIn::kNorm), kPlain = static_cast<int>(cuda::DecodeIn::kPlain);
  constexpr int kRope = static_cast<int>(cuda::DecodeOut::kQkvRope), kSwiGlu = static_cast<int>(cuda::DecodeOut::kSwiGlu),
                kResidual = static_cast<int>(cuda::DecodeOut::kResidual), kStore = static_cast<int>(cuda::DecodeOut::kStore);
  const int K = s.K, QD = s.QD(), KD = s.KD(), F_ = 44;
  double ssd = 0;
  for (bf16 v : s.x) ssd += static_cast<double>(F(v)) * F(v);
  const float ss = static_cast<float>(ssd);
  const std::vector<float> n = NormedX(s);
  const std::vector<bf16> wq = Bf16Rows(QD, K, 1), wk = Bf16Rows(KD, K, 2), wv = Bf16Rows(KD, K, 3);
  const std::vector<double> pq = Bf16Products(wq, QD, n), pk = Bf16Products(wk, KD, n), pv = Bf16Products(wv, KD, n);
  auto withNorm = [&](cuda::DecodeGemvArgs a) { a.ssIn = &ss; return a; };
  QkvCheck("bf16 q|k|v 4x4k", s, wq.data(), wk.data(), wv.data(),
           [&](const cuda::DecodeGemvArgs& a) { LaunchBf16<kNorm, kRope, 4, 4, cuda::fold::kWarps>(withNorm(a), a.N / 2); }, pq, pk, pv);
  QkvCheck("bf16 q|k|v 2x4", s, wq.data(), wk.data(), wv.data(),
           [&](const cuda::DecodeGemvArgs& a) { LaunchBf16<kNorm, kRope, 2, 4, 1>(withNorm(a), a.N / 2); }, pq, pk, pv);
  const std::vector<bf16> wg = Bf16Rows(F_, K, 4), wu = Bf16Rows(F_, K, 5);
  GateUpCheck("bf16 gate|up 4x4k", s, F_, wg.data(), wu.data(),
              [&](const cuda::DecodeGemvArgs& a) { LaunchBf16<kNorm, kSwiGlu, 4, 4, cuda::fold::kWarps>(withNorm(a), F_); },
              Bf16Products(wg, F_, n), Bf16Products(wu, F_, n));

  // o / down: y (N = 37, odd) += W x, x used as it is; ssOut += the squares of the new y.
  {
    const int N = 37;
    const std::vector<bf16> w = Bf16Rows(N, K, 6);
    std::vector<bf16> y(N + 8, B(-555.f));
    std::vector<double> want(N);
    std::vector<float> xf(K);
    for (int k = 0; k < K; ++k) xf[k] = F(s.x[k]);
    const std::vector<double> p = Bf16Products(w, N, xf);
    double ssWant = 0;
    for (int r = 0; r < N; ++r) {
      y[r] = B(0.5f * std::sin(0.3f * r));
      want[r] = Rnd(static_cast<float>(p[r]) + F(y[r]));
      ssWant += want[r] * want[r];
    }
    float ssOut = 0.f;
    cuda::DecodeGemvArgs a = BaseArgs(s, y.data());
    a.w0 = w.data();
    a.N = a.seg1 = a.seg2 = N;
    a.ssOut = &ssOut;
    LaunchBf16<kPlain, kResidual, 2, 4, 1>(a, (N + 1) / 2);
    std::vector<float> got(N);
    for (int r = 0; r < N; ++r) got[r] = F(y[r]);
    Compare(("bf16 residual K " + std::to_string(K) + " N 37").c_str(), got, want);
    const bool ssOk = std::fabs(ssOut - ssWant) <= 1e-4 * ssWant, tailOk = F(y[N]) == F(B(-555.f));
    std::printf("bf16 residual K %d: sum of squares %.6g, want %.6g; untouched past N: %s %s\n", K, ssOut, ssWant,
                tailOk ? "yes" : "no", ssOk && tailOk ? "ok" : "FAIL");
    if (!ssOk || !tailOk) ++failures;
  }
  // The head: fp32 logits of the normalised x (N = 29).
  {
    const int N = 29;
    const std::vector<bf16> w = Bf16Rows(N, K, 7);
    std::vector<float> logits(N, 0.f);
    cuda::DecodeGemvArgs a = BaseArgs(s, logits.data());
    a.w0 = w.data();
    a.N = a.seg1 = a.seg2 = N;
    a.yT = cuda::ET::kF32;
    LaunchBf16<kNorm, kStore, 4, 4, cuda::fold::kWarps, float>(withNorm(a), (N + 1) / 2);
    Compare(("bf16 head K " + std::to_string(K) + " N 29").c_str(), logits, Bf16Products(w, N, n));
  }
}

template <typename Blk>
void AllCases(int qt) {
  for (int K : {512, 5120}) {
    PlainCase<Blk, 1, 1>(Gemv::kDp4a, qt, K, 37, 0.f, false);
    PlainCase<Blk, 1, 2>(Gemv::kDp4a, qt, K, 37, 1.f, false);
    PlainCase<Blk, 1, 4>(Gemv::kDp4a, qt, K, 37, 0.f, true);
    PlainCase<Blk, 3, 1>(Gemv::kDp4a, qt, K, 21, 1.f, true);
    PlainCase<Blk, 1>(Gemv::kFloat, qt, K, 37, 1.f, false);
    PlainCase<Blk, 3>(Gemv::kFloat, qt, K, 21, 0.f, false);
    PlainCase<Blk, 1>(Gemv::kInt16, qt, K, 37, 0.f, false);
    PlainCase<Blk, 3>(Gemv::kInt16, qt, K, 21, 1.f, true);
    const Step plain = MakeStep(K, false, true, false), inter = MakeStep(K, true, true, true), fp = MakeStep(K, false, false, true);
    QkvCase<Blk, Blk>(qt, qt, plain, false);
    QkvCase<Blk, Blk>(qt, qt, inter, true);
    QkvCase<Blk, Blk>(qt, qt, fp, false);
    GateUpCase<Blk>(qt, plain, 44, false);
    GateUpCase<Blk>(qt, fp, 44, true);
  }
}

}  // namespace

int main() {
  AllCases<qblocks::Q8_0>(3);
  AllCases<qblocks::Q4_0>(4);
  AllCases<qblocks::Q4_K>(5);
  AllCases<qblocks::Q5_K>(6);
  AllCases<qblocks::Q6_K>(7);
  // Two runs of two types in one launch: Q4_K_M's q|k|v (q and k Q4_K, v Q6_K), and Q8_0 with Q4_0 v, one block for all.
  for (int K : {512, 5120}) QkvCase<qblocks::Q4_K, qblocks::Q6_K>(5, 7, MakeStep(K, false, true, true), false);
  QkvCase<qblocks::Q8_0, qblocks::Q4_0>(3, 4, MakeStep(512, true, true, false), true);
  // The bf16 fold: K 512 and 5120, RoPE half-split and interleaved, hf rounding and not.
  Bf16Cases(MakeStep(512, false, true, true));
  Bf16Cases(MakeStep(5120, true, true, false));
  Bf16Cases(MakeStep(512, true, false, true));
  std::printf(failures ? "fold check: %d FAILED\n" : "fold check: OK\n", failures);
  return failures ? 1 : 0;
}
