// The folded decode kernels of the CUDA engine (decode.cu: RMSNorm, RoPE + KV write and SwiGLU folded into the
// products) against double-precision host models, at every launch shape the backend can pick; the decode embedding;
// the launcher's refusals of unsupported shapes.
#include <cstring>
#include <string>

#include "engine/cuda/kernels.h"
#include "dev_common.h"
#include "dev_ops.h"

namespace swapserve::dev {

using cuda::ET;

namespace {

// Host model of the folded RMSNorm: w * round(x * rsqrt(ss / K + eps)), rounded (as LaunchRmsNorm with hfRound).
std::vector<double> HostNormed(const std::vector<uint8_t>& x, ET t, const std::vector<uint8_t>& nw, ET nT, int K,
                               double ss, double eps) {
  const double inv = 1 / std::sqrt(ss / K + eps);
  std::vector<double> xn(K);
  for (int k = 0; k < K; ++k) xn[k] = HostRnd(HostF(nw.data(), nT, k) * HostRnd(HostF(x.data(), t, k) * inv, t), t);
  return xn;
}
double HostDot(const std::vector<uint8_t>& w, ET t, size_t row, int K, const std::vector<double>& x) {
  double v = 0;
  for (int k = 0; k < K; ++k) v += double(HostF(w.data(), t, row * K + k)) * x[k];
  return v;
}
double HostSumSq(const std::vector<uint8_t>& x, ET t, int K) {
  double ss = 0;
  for (int k = 0; k < K; ++k) ss += double(HostF(x.data(), t, k)) * HostF(x.data(), t, k);
  return ss;
}
std::string TuneName(const cuda::DecodeTuning& tu) {
  return " [" + std::to_string(tu.rows) + "x" + std::to_string(tu.unroll) + (tu.kSplit ? "k" : "") + " pf " +
         std::to_string(tu.l2PrefetchBytes) + "]";
}
// The sum of squares of x as a device float (what the kernel that wrote x accumulates in a decode step).
void UploadSs(Buf& ss, double v) {
  const float f = float(v);
  SS_CUDA_CHECK(cudaMemcpy(ss.d, &f, 4, cudaMemcpyHostToDevice));
}

// q|k|v product of a normalised row + bias + RoPE + KV write, three separate weight buffers (segments).
void CheckDecodeQkv(ET t, int D, bool interleaved, bool bias, const cuda::DecodeTuning& tu, cudaStream_t s) {
  const int H = 8, KVH = 2, K = 512, L = 2, layer = 1, cap = 256, half = D / 2;
  const int QD = H * D, KD = KVH * D, N = QD + 2 * KD;
  const int32_t pos = 77;
  const size_t eb = cuda::EtBytes(t), plane = static_cast<size_t>(cap) * KD;
  Buf wq(static_cast<size_t>(QD) * K * eb), wk(static_cast<size_t>(KD) * K * eb), wv(static_cast<size_t>(KD) * K * eb),
      x(K * eb), nw(K * eb), ss(16), y(QD * eb), cache(L * 2 * plane * eb), b(N * eb), meta(4096), inv(half * 4),
      cs(half * 8);
  cuda::LaunchFillUniform(wq.d, t, wq.bytes / eb, 71 + D, -1.f, 1.f, s);
  cuda::LaunchFillUniform(wk.d, t, wk.bytes / eb, 72 + D, -1.f, 1.f, s);
  cuda::LaunchFillUniform(wv.d, t, wv.bytes / eb, 73 + D, -1.f, 1.f, s);
  cuda::LaunchFillUniform(x.d, t, K, 74, -3.f, 3.f, s);
  cuda::LaunchFillUniform(nw.d, t, K, 75, 0.5f, 1.5f, s);
  cuda::LaunchFillUniform(b.d, t, N, 76, -0.5f, 0.5f, s);
  y.poison();
  cache.poison();
  std::vector<float> invF(half);
  for (int i = 0; i < half; ++i) invF[i] = 1.f / std::pow(500000.f, 2.f * i / D) * (i > half / 2 ? 0.125f : 1.f);
  SS_CUDA_CHECK(cudaMemcpy(inv.d, invF.data(), half * 4, cudaMemcpyHostToDevice));
  const uint64_t base = reinterpret_cast<uint64_t>(cache.d);
  uint8_t* m = static_cast<uint8_t*>(meta.d);
  SS_CUDA_CHECK(cudaMemcpy(m, &pos, 4, cudaMemcpyHostToDevice));
  SS_CUDA_CHECK(cudaMemcpy(m + 256, &base, 8, cudaMemcpyHostToDevice));
  cuda::LaunchRopeTable(reinterpret_cast<int32_t*>(m), 1, static_cast<float*>(inv.d), half, static_cast<float*>(cs.d), s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto xh = x.host(), nh = nw.host(), bh = b.host();
  const double ssv = HostSumSq(xh, t, K);
  UploadSs(ss, ssv);
  cuda::DecodeGemvArgs a;
  a.w0 = wq.d; a.w1 = wk.d; a.w2 = wv.d; a.seg1 = QD; a.seg2 = QD + KD; a.N = N; a.K = K; a.wT = t;
  a.x = x.d; a.ssIn = static_cast<float*>(ss.d); a.normW = nw.d; a.normT = t; a.eps = 1e-5f; a.hfRound = true;
  a.y = y.d; a.yT = t; a.H = H; a.KVH = KVH; a.D = D; a.interleaved = interleaved;
  const uint8_t* bp = static_cast<const uint8_t*>(b.d);
  if (bias) { a.bq = bp; a.bk = bp + QD * eb; a.bv = bp + (QD + KD) * eb; a.biasT = t; }
  a.cosSin = static_cast<float*>(cs.d); a.pos = reinterpret_cast<int32_t*>(m); a.kvBase = reinterpret_cast<uint64_t*>(m + 256);
  a.layer = layer; a.cap = cap;
  cuda::LaunchDecodeGemv(cuda::DecodeIn::kNorm, cuda::DecodeOut::kQkvRope, a, tu, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto xn = HostNormed(xh, t, nh, t, K, ssv, 1e-5);
  const auto wqh = wq.host(), wkh = wk.host(), wvh = wv.host(), yh = y.host(), ch = cache.host();
  // The product as the q|k|v buffer would hold it, + bias (rounded), then RoPE as CheckQkvPost models it.
  std::vector<double> raw(N);
  for (int r = 0; r < N; ++r) {
    const double v = r < QD ? HostDot(wqh, t, r, K, xn) : r < QD + KD ? HostDot(wkh, t, r - QD, K, xn)
                                                                    : HostDot(wvh, t, r - QD - KD, K, xn);
    raw[r] = HostRnd(v, t);
    if (bias) raw[r] = HostRnd(raw[r] + HostF(bh.data(), t, r), t);
  }
  std::vector<double> got, ref;
  for (int hh = 0; hh < H + 2 * KVH; ++hh) {
    std::vector<double> yv(raw.begin() + hh * D, raw.begin() + (hh + 1) * D);
    if (hh < H + KVH) {
      for (int i = 0; i < half; ++i) {
        const int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
        const double xa = raw[hh * D + ia], xb = raw[hh * D + ib];
        const double th = double(float(pos) * invF[i]);
        const double c = HostRnd(std::cos(th), t), sn = HostRnd(std::sin(th), t);
        yv[ia] = HostRnd(xa * c, t) + HostRnd(-xb * sn, t);
        yv[ib] = HostRnd(xb * c, t) + HostRnd(xa * sn, t);
      }
    }
    for (int d = 0; d < D; ++d) {
      ref.push_back(yv[d]);
      if (hh < H) {
        got.push_back(HostF(yh.data(), t, hh * D + d));
      } else {
        const bool isK = hh < H + KVH;
        const int kvh = isK ? hh - H : hh - H - KVH;
        got.push_back(HostF(ch.data(), t, (isK ? 2 * layer : 2 * layer + 1) * plane + static_cast<size_t>(pos) * KD + kvh * D + d));
      }
    }
  }
  Report(std::string("decode q|k|v+norm+rope+kv ") + EtName(t) + " D=" + std::to_string(D) +
             (interleaved ? " interleaved" : " half") + (bias ? " bias" : "") + TuneName(tu),
         got, ref, 1e-2);
}

// y += W x on the residual stream, and the sum of squares of the new y added to ssOut.
void CheckDecodeResidual(ET t, int N, int K, const cuda::DecodeTuning& tu, cudaStream_t s) {
  const size_t eb = cuda::EtBytes(t);
  Buf w(static_cast<size_t>(N) * K * eb), x(K * eb), y(N * eb), ss(16);
  cuda::LaunchFillUniform(w.d, t, static_cast<size_t>(N) * K, 81, -1.f, 1.f, s);
  cuda::LaunchFillUniform(x.d, t, K, 82, -1.f, 1.f, s);
  cuda::LaunchFillUniform(y.d, t, N, 83, -4.f, 4.f, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  UploadSs(ss, 0.25);
  const auto y0 = y.host();
  cuda::DecodeGemvArgs a;
  a.w0 = w.d; a.seg1 = a.seg2 = a.N = N; a.K = K; a.wT = t; a.x = x.d; a.y = y.d; a.yT = t;
  a.ssOut = static_cast<float*>(ss.d);
  cuda::LaunchDecodeGemv(cuda::DecodeIn::kPlain, cuda::DecodeOut::kResidual, a, tu, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto wh = w.host(), xh = x.host(), yh = y.host();
  std::vector<double> xv(K), got, ref;
  for (int k = 0; k < K; ++k) xv[k] = HostF(xh.data(), t, k);
  double ssRef = 0.25;
  for (int n = 0; n < N; ++n) {
    const double v = HostRnd(HostF(y0.data(), t, n) + HostDot(wh, t, n, K, xv), t);
    ref.push_back(v);
    got.push_back(HostF(yh.data(), t, n));
    ssRef += v * v;
  }
  Report(std::string("decode o/down +residual ") + EtName(t) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
             TuneName(tu), got, ref, 1e-2);
  float ssGot = 0;
  SS_CUDA_CHECK(cudaMemcpy(&ssGot, ss.d, 4, cudaMemcpyDeviceToHost));
  // Tight enough that one warp's rows left out of the sum fail it.
  Report(std::string("decode residual sum of squares ") + EtName(t) + " N=" + std::to_string(N) + TuneName(tu),
         {double(ssGot)}, {ssRef}, 1e-3);
}

// gate|up of a normalised row (two separate weight buffers) with SwiGLU in the epilogue.
void CheckDecodeSwiGlu(ET t, int F, int K, const cuda::DecodeTuning& tu, cudaStream_t s) {
  const size_t eb = cuda::EtBytes(t);
  Buf wg(static_cast<size_t>(F) * K * eb), wu(static_cast<size_t>(F) * K * eb), x(K * eb), nw(K * 4), ss(16), h(F * eb);
  cuda::LaunchFillUniform(wg.d, t, static_cast<size_t>(F) * K, 91, -1.f, 1.f, s);
  cuda::LaunchFillUniform(wu.d, t, static_cast<size_t>(F) * K, 92, -1.f, 1.f, s);
  cuda::LaunchFillUniform(x.d, t, K, 93, -3.f, 3.f, s);
  cuda::LaunchFillUniform(nw.d, ET::kF32, K, 94, 0.5f, 1.5f, s);  // an fp32 norm weight (GGUF keeps norms in fp32)
  h.poison();
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto xh = x.host(), nh = nw.host();
  const double ssv = HostSumSq(xh, t, K);
  UploadSs(ss, ssv);
  cuda::DecodeGemvArgs a;
  a.w0 = wg.d; a.w1 = wu.d; a.seg1 = F; a.seg2 = a.N = 2 * F; a.K = K; a.wT = t; a.x = x.d;
  a.ssIn = static_cast<float*>(ss.d); a.normW = nw.d; a.normT = ET::kF32; a.eps = 1e-6f; a.hfRound = true;
  a.y = h.d; a.yT = t;
  cuda::LaunchDecodeGemv(cuda::DecodeIn::kNorm, cuda::DecodeOut::kSwiGlu, a, tu, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto xn = HostNormed(xh, t, nh, ET::kF32, K, ssv, 1e-6);
  const auto gh = wg.host(), uh = wu.host(), hh = h.host();
  std::vector<double> got, ref;
  for (int f = 0; f < F; ++f) {
    const double g = HostRnd(HostDot(gh, t, f, K, xn), t), u = HostRnd(HostDot(uh, t, f, K, xn), t);
    ref.push_back(HostRnd(HostRnd(g / (1 + std::exp(-g)), t) * u, t));
    got.push_back(HostF(hh.data(), t, f));
  }
  Report(std::string("decode gate|up+norm+swiglu ") + EtName(t) + " F=" + std::to_string(F) + TuneName(tu), got, ref,
         1e-2);
}

// The output head: fp32 logits of the normalised row, more rows than one wave of blocks.
void CheckDecodeHead(ET t, int N, const cuda::DecodeTuning& tu, cudaStream_t s) {
  const int K = 1024;
  const size_t eb = cuda::EtBytes(t);
  Buf w(static_cast<size_t>(N) * K * eb), x(K * eb), nw(K * eb), ss(16), y(N * 4);
  cuda::LaunchFillUniform(w.d, t, static_cast<size_t>(N) * K, 101, -1.f, 1.f, s);
  cuda::LaunchFillUniform(x.d, t, K, 102, -3.f, 3.f, s);
  cuda::LaunchFillUniform(nw.d, t, K, 103, 0.5f, 1.5f, s);
  y.poison();
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto xh = x.host(), nh = nw.host();
  const double ssv = HostSumSq(xh, t, K);
  UploadSs(ss, ssv);
  cuda::DecodeGemvArgs a;
  a.w0 = w.d; a.seg1 = a.seg2 = a.N = N; a.K = K; a.wT = t; a.x = x.d; a.ssIn = static_cast<float*>(ss.d);
  a.normW = nw.d; a.normT = t; a.eps = 1e-5f; a.hfRound = true; a.y = y.d; a.yT = ET::kF32;
  cuda::LaunchDecodeGemv(cuda::DecodeIn::kNorm, cuda::DecodeOut::kStore, a, tu, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto xn = HostNormed(xh, t, nh, t, K, ssv, 1e-5);
  const auto wh = w.host(), yh = y.host();
  std::vector<double> got, ref;
  for (int n = 0; n < N; ++n) {
    ref.push_back(HostDot(wh, t, n, K, xn));
    got.push_back(HostF(yh.data(), ET::kF32, n));
  }
  Report(std::string("decode head+norm ") + EtName(t) + " -> f32 N=" + std::to_string(N) + TuneName(tu), got, ref, 5e-3);
}

// Embedding of one token + its sum of squares + zeroed slots + the RoPE table of its position.
void CheckDecodeEmbed(ET t, cudaStream_t s) {
  const int V = 300, C = 4096, half = 64, nSs = 9;
  const int32_t tok = 123, pos = 4000;
  const size_t eb = cuda::EtBytes(t);
  Buf emb(static_cast<size_t>(V) * C * eb), x(C * eb), ss(nSs * 4), meta(512), inv(half * 4), cs(half * 8);
  cuda::LaunchFillUniform(emb.d, t, static_cast<size_t>(V) * C, 111, -1.f, 1.f, s);
  x.poison();
  ss.poison();
  cs.poison();
  std::vector<float> invF(half);
  for (int i = 0; i < half; ++i) invF[i] = 1.f / std::pow(10000.f, 2.f * i / (2 * half));
  SS_CUDA_CHECK(cudaMemcpy(inv.d, invF.data(), half * 4, cudaMemcpyHostToDevice));
  uint8_t* m = static_cast<uint8_t*>(meta.d);
  SS_CUDA_CHECK(cudaMemcpy(m, &tok, 4, cudaMemcpyHostToDevice));
  SS_CUDA_CHECK(cudaMemcpy(m + 256, &pos, 4, cudaMemcpyHostToDevice));
  cuda::LaunchDecodeEmbed(reinterpret_cast<int32_t*>(m), emb.d, t, C, x.d, t, static_cast<float*>(ss.d), nSs,
                          reinterpret_cast<int32_t*>(m + 256), static_cast<float*>(inv.d), half,
                          static_cast<float*>(cs.d), s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto eh = emb.host(), xh = x.host(), sh = ss.host(), ch = cs.host();
  std::vector<double> got, ref;
  double ssRef = 0;
  for (int c = 0; c < C; ++c) {
    const double v = HostF(eh.data(), t, static_cast<size_t>(tok) * C + c);
    ref.push_back(v);
    got.push_back(HostF(xh.data(), t, c));
    ssRef += v * v;
  }
  Report(std::string("decode embedding ") + EtName(t), got, ref, 0);
  std::vector<double> sg, sr(nSs, 0.0);
  for (int i = 0; i < nSs; ++i) sg.push_back(HostF(sh.data(), ET::kF32, i));
  sr[0] = ssRef;
  Report(std::string("decode embedding sum of squares, zeroed slots ") + EtName(t), sg, sr, 1e-5);
  std::vector<double> cg, cr;
  for (int i = 0; i < half; ++i) {
    const double th = double(float(pos) * invF[i]);
    cr.push_back(std::cos(th));
    cr.push_back(std::sin(th));
    cg.push_back(HostF(ch.data(), ET::kF32, 2 * i));
    cg.push_back(HostF(ch.data(), ET::kF32, 2 * i + 1));
  }
  Report("decode embedding RoPE table", cg, cr, 1e-5);
}

// Bad arguments are refused with SWAPSERVE_INVALID_ARGUMENT before anything is launched.
void CheckDecodeRefusals(cudaStream_t s) {
  Buf w(4096), x(256), y(256);
  cuda::DecodeGemvArgs a;
  a.w0 = w.d; a.seg1 = a.seg2 = a.N = 8; a.K = 64; a.wT = ET::kBF16; a.x = x.d; a.y = y.d; a.yT = ET::kBF16;
  struct Case { const char* name; cuda::DecodeGemvArgs a; cuda::DecodeIn in; cuda::DecodeOut out; cuda::DecodeTuning tu; };
  std::vector<Case> cases;
  cuda::DecodeGemvArgs k7 = a; k7.K = 60;
  cases.push_back({"K not a multiple of 8", k7, cuda::DecodeIn::kPlain, cuda::DecodeOut::kStore, {}});
  cases.push_back({"fp32 weights", a, cuda::DecodeIn::kPlain, cuda::DecodeOut::kStore, {}});
  cases.back().a.wT = ET::kF32;
  cases.push_back({"residual without ssOut", a, cuda::DecodeIn::kPlain, cuda::DecodeOut::kResidual, {}});
  cases.push_back({"norm without ssIn", a, cuda::DecodeIn::kNorm, cuda::DecodeOut::kSwiGlu, {}});
  cases.push_back({"segments out of order", a, cuda::DecodeIn::kPlain, cuda::DecodeOut::kStore, {}});
  cases.back().a.seg1 = 6; cases.back().a.seg2 = 4; cases.back().a.w1 = w.d; cases.back().a.w2 = w.d;
  cases.push_back({"rows per warp 3", a, cuda::DecodeIn::kPlain, cuda::DecodeOut::kStore, {3, 4, 0, false}});
  cases.push_back({"q|k|v without RoPE arguments", a, cuda::DecodeIn::kNorm, cuda::DecodeOut::kQkvRope, {}});
  int refused = 0;
  for (const Case& c : cases) {
    try {
      cuda::LaunchDecodeGemv(c.in, c.out, c.a, c.tu, s);
      std::printf("  not refused: %s\n", c.name);
    } catch (const NativeError& e) {
      if (e.code() == ErrorCode::kInvalidArgument) ++refused;
      else std::printf("  wrong error for %s: %s\n", c.name, e.what());
    }
  }
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  Report("decode gemv refuses bad arguments", {double(refused)}, {double(cases.size())}, 0);
}

}  // namespace

void RunDecodeOpChecks(cudaStream_t s) {
  const cuda::DecodeTuning tunes[] = {{2, 4, 0, false}, {2, 8, 0, false}, {4, 2, 4096, false}, {2, 4, 0, true},
                                      {4, 4, 1024, true}};
  for (const cuda::DecodeTuning& tu : tunes) {
    for (ET t : {ET::kBF16, ET::kF16}) {
      CheckDecodeQkv(t, 64, false, false, tu, s);
      CheckDecodeResidual(t, 301, 1024, tu, s);
      CheckDecodeSwiGlu(t, 300, 512, tu, s);
    }
    CheckDecodeQkv(ET::kBF16, 128, true, true, tu, s);
    CheckDecodeQkv(ET::kBF16, 128, false, true, tu, s);
    CheckDecodeResidual(ET::kBF16, 4096, 14336, tu, s);
    CheckDecodeHead(ET::kBF16, 20000, tu, s);
  }
  CheckDecodeEmbed(ET::kBF16, s);
  CheckDecodeEmbed(ET::kF16, s);
  CheckDecodeRefusals(s);
  CheckDecodeEmbed(ET::kBF16, s);
  CheckDecodeEmbed(ET::kF16, s);
  CheckDecodeRefusals(s);
}

}  // namespace swapserve::dev
