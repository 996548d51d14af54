// Every GPU op of the CUDA engine against a CPU reference (double precision) with a per-op tolerance, on fresh
// pseudo-random inputs; outputs are poisoned first so an unwritten element fails. Also times the flash prefill.
// The folded decode kernels' checks are in dev_ops_decode.cc.
#include <cstring>
#include <string>

#include "engine/cuda/gemm.h"
#include "engine/cuda/kernels.h"
#include "dev_common.h"
#include "dev_ops.h"

namespace swapserve::dev {

using cuda::ET;

int g_failures = 0;

float HostF(const void* p, ET t, size_t i) {
  switch (t) {
    case ET::kF32: return static_cast<const float*>(p)[i];
    case ET::kF16: return __half2float(static_cast<const __half*>(p)[i]);
    default: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  }
}
double HostRnd(double v, ET t) {
  switch (t) {
    case ET::kF32: return float(v);
    case ET::kF16: return __half2float(__float2half_rn(float(v)));
    default: return __bfloat162float(__float2bfloat16_rn(float(v)));
  }
}
const char* EtName(ET t) { return t == ET::kF32 ? "f32" : t == ET::kF16 ? "f16" : "bf16"; }

void Report(const std::string& name, const std::vector<double>& got, const std::vector<double>& ref, double tol) {
  double num = 0, den = 0;
  bool nan = false;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) nan = true;
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  const double rel = nan ? INFINITY : std::sqrt(num / (den > 0 ? den : 1));
  const bool ok = rel <= tol;
  if (!ok) ++g_failures;
  std::printf("CHECK %-44s n=%-8zu relerr=%.3e tol=%.0e %s\n", name.c_str(), got.size(), rel, tol, ok ? "PASS" : "FAIL");
}

// Reference attention for query rows (positions given) over a cache slice.

namespace {

void CpuAttention(const std::vector<uint8_t>& qkv, int qStride, ET t, const std::vector<int>& rows,
                  const std::vector<int>& ctx, const std::vector<uint8_t>& cache, int layer, int cap, int H, int KVH,
                  int D, std::vector<double>& out) {
  const int G = H / KVH;
  const size_t plane = static_cast<size_t>(cap) * KVH * D;
  out.clear();
  for (size_t e = 0; e < rows.size(); ++e) {
    for (int h = 0; h < H; ++h) {
      const size_t q0 = static_cast<size_t>(rows[e]) * qStride + h * D, kv0 = static_cast<size_t>(h / G) * D;
      RefAttention(ctx[e], D, 1.0 / std::sqrt(double(D)), [&](int d) { return HostF(qkv.data(), t, q0 + d); },
                   [&](int p, int d) { return HostF(cache.data(), t, 2 * layer * plane + static_cast<size_t>(p) * KVH * D + kv0 + d); },
                   [&](int p, int d) { return HostF(cache.data(), t, (2 * layer + 1) * plane + static_cast<size_t>(p) * KVH * D + kv0 + d); },
                   out);
    }
  }
}

std::vector<double> Gather(const std::vector<uint8_t>& buf, ET t, const std::vector<int>& rows, int stride, int width) {
  std::vector<double> v;
  for (int r : rows)
    for (int i = 0; i < width; ++i) v.push_back(HostF(buf.data(), t, static_cast<size_t>(r) * stride + i));
  return v;
}

void CheckFlash(ET t, int D, int n, int pos0, int row0, cudaStream_t s) {
  const int H = 8, KVH = 2, L = 2, layer = 1, cap = 512, QS = (H + 2 * KVH) * D, T = row0 + n;
  const size_t eb = cuda::EtBytes(t);
  Buf qkv(static_cast<size_t>(T) * QS * eb), cache(static_cast<size_t>(L) * 2 * cap * KVH * D * eb),
      out(static_cast<size_t>(T) * H * D * eb);
  cuda::LaunchFillUniform(qkv.d, t, qkv.bytes / eb, 11 + D + n, -2.f, 2.f, s);
  cuda::LaunchFillUniform(cache.d, t, cache.bytes / eb, 12 + D + pos0, -1.f, 1.f, s);
  out.poison();
  cuda::LaunchFlashPrefill(qkv.d, QS, t, row0, n, pos0, cache.d, H, KVH, D, layer, cap, 1.f / std::sqrt(float(D)), out.d,
                           H * D, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<int> rows, ctx;
  for (int i = 0; i < n; ++i) { rows.push_back(row0 + i); ctx.push_back(pos0 + i + 1); }
  std::vector<double> ref;
  CpuAttention(qkv.host(), QS, t, rows, ctx, cache.host(), layer, cap, H, KVH, D, ref);
  Report(std::string("flash prefill ") + EtName(t) + " D=" + std::to_string(D) + " n=" + std::to_string(n) +
             " pos0=" + std::to_string(pos0),
         Gather(out.host(), t, rows, H * D, H * D), ref, 1e-2);
}

void CheckDecode(ET t, int D, bool forceOneSplit, cudaStream_t s, int H = 8, int KVH = 2) {
  const int L = 2, layer = 1, cap = 1024, QS = (H + 2 * KVH) * D;
  const std::vector<int> ctx = {1, 300, 1000, 77};
  const int E = static_cast<int>(ctx.size());
  const size_t eb = cuda::EtBytes(t);
  Buf qkv(static_cast<size_t>(E) * QS * eb), out(static_cast<size_t>(E) * H * D * eb), meta(4096);
  std::vector<std::unique_ptr<Buf>> caches;
  std::vector<uint64_t> bases;
  for (int e = 0; e < E; ++e) {
    caches.push_back(std::make_unique<Buf>(static_cast<size_t>(L) * 2 * cap * KVH * D * eb));
    cuda::LaunchFillUniform(caches.back()->d, t, caches.back()->bytes / eb, 100 + e, -1.f, 1.f, s);
    bases.push_back(reinterpret_cast<uint64_t>(caches.back()->d));
  }
  cuda::LaunchFillUniform(qkv.d, t, qkv.bytes / eb, 7, -2.f, 2.f, s);
  out.poison();
  std::vector<int32_t> rows = {2, 0, 3, 1};  // entries need not be in row order
  uint8_t* m = static_cast<uint8_t*>(meta.d);
  SS_CUDA_CHECK(cudaMemcpy(m, rows.data(), 16, cudaMemcpyHostToDevice));
  SS_CUDA_CHECK(cudaMemcpy(m + 256, ctx.data(), 16, cudaMemcpyHostToDevice));
  SS_CUDA_CHECK(cudaMemcpy(m + 512, bases.data(), 32, cudaMemcpyHostToDevice));
  cuda::AttnEntries en{reinterpret_cast<int32_t*>(m), reinterpret_cast<int32_t*>(m + 256),
                       reinterpret_cast<uint64_t*>(m + 512), E, 1000};
  const int splits = forceOneSplit ? 1 : cuda::DecodeSplits(t, H, KVH, D, E, 1000);
  Buf partial(static_cast<size_t>(E) * H * splits * (D + 2) * 4);
  cuda::LaunchDecodeAttention(qkv.d, QS, t, en, H, KVH, D, layer, cap, 1.f / std::sqrt(float(D)), splits,
                              static_cast<float*>(partial.d), out.d, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto qh = qkv.host(), oh = out.host();
  std::vector<double> ref, got;
  for (int e = 0; e < E; ++e) {
    std::vector<double> r1;
    CpuAttention(qh, QS, t, {rows[e]}, {ctx[e]}, caches[e]->host(), layer, cap, H, KVH, D, r1);
    ref.insert(ref.end(), r1.begin(), r1.end());
    const auto g1 = Gather(oh, t, {rows[e]}, H * D, H * D);
    got.insert(got.end(), g1.begin(), g1.end());
  }
  Report(std::string("decode attention ") + EtName(t) + " D=" + std::to_string(D) + " G=" + std::to_string(H / KVH) +
             " splits=" + std::to_string(splits) + (cuda::FastDecodeAttention(t, H, KVH, D) ? " (fast)" : ""),
         got, ref, t == ET::kF32 ? 1e-5 : 1e-2);
}

// The paged KV cache: flash prefill and decode attention through a block table (blocks in a scrambled order) against
// the CPU reference on the contiguous cache that table describes; and the KV write of LaunchQkvPost into its slots.
void CheckPaged(ET t, int D, cudaStream_t s) {
  const int H = 8, KVH = 2, L = 2, layer = 1, BT = cuda::kKvBlockTokens, blocks = 64, cap = blocks * BT;
  const int QS = (H + 2 * KVH) * D;
  const size_t eb = cuda::EtBytes(t), plane = static_cast<size_t>(cap) * KVH * D, rowBytes = static_cast<size_t>(KVH) * D * eb;
  Buf pool(static_cast<size_t>(L) * 2 * plane * eb), tab(4 * blocks), meta(4096);
  cuda::LaunchFillUniform(pool.d, t, pool.bytes / eb, 41 + D, -1.f, 1.f, s);
  std::vector<int32_t> table(blocks);
  for (int i = 0; i < blocks; ++i) table[i] = (i * 37 + 11) % blocks;  // 37 is prime to 64: a permutation
  SS_CUDA_CHECK(cudaMemcpy(tab.d, table.data(), 4 * blocks, cudaMemcpyHostToDevice));
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const std::vector<uint8_t> ph = pool.host();
  std::vector<uint8_t> logical(ph.size());
  for (int pl = 0; pl < 2 * L; ++pl)
    for (int p = 0; p < cap; ++p)
      std::memcpy(&logical[(pl * plane + static_cast<size_t>(p) * KVH * D) * eb],
                  &ph[(pl * plane + (static_cast<size_t>(table[p / BT]) * BT + p % BT) * KVH * D) * eb], rowBytes);
  const float scale = 1.f / std::sqrt(float(D));
  if (cuda::FlashSupported(t, D)) {
    const int n = 100, pos0 = 150, row0 = 3, T = row0 + n;
    Buf qkv(static_cast<size_t>(T) * QS * eb), out(static_cast<size_t>(T) * H * D * eb);
    cuda::LaunchFillUniform(qkv.d, t, qkv.bytes / eb, 51 + D, -2.f, 2.f, s);
    out.poison();
    cuda::LaunchFlashPrefill(qkv.d, QS, t, row0, n, pos0, pool.d, H, KVH, D, layer, cap, scale, out.d, H * D, s,
                             static_cast<const int32_t*>(tab.d));
    SS_CUDA_CHECK(cudaStreamSynchronize(s));
    std::vector<int> rows, ctx;
    for (int i = 0; i < n; ++i) { rows.push_back(row0 + i); ctx.push_back(pos0 + i + 1); }
    std::vector<double> ref;
    CpuAttention(qkv.host(), QS, t, rows, ctx, logical, layer, cap, H, KVH, D, ref);
    Report(std::string("paged flash prefill ") + EtName(t) + " D=" + std::to_string(D), Gather(out.host(), t, rows, H * D, H * D),
           ref, 1e-2);
  }
  for (bool oneSplit : {false, true}) {
    const std::vector<int> ctx = {1, 300, 1000, 77, 17, 33};
    const int E = static_cast<int>(ctx.size());
    Buf qkv(static_cast<size_t>(E) * QS * eb), out(static_cast<size_t>(E) * H * D * eb);
    cuda::LaunchFillUniform(qkv.d, t, qkv.bytes / eb, 61 + D, -2.f, 2.f, s);
    out.poison();
    std::vector<int32_t> rows(E), offs(E, 0);
    std::vector<uint64_t> bases(E, reinterpret_cast<uint64_t>(pool.d));
    for (int e = 0; e < E; ++e) rows[e] = (e * 5) % E;
    offs[4] = 2;  // one entry's table starts further on: it sees other blocks
    uint8_t* m = static_cast<uint8_t*>(meta.d);
    SS_CUDA_CHECK(cudaMemcpy(m, rows.data(), 4 * E, cudaMemcpyHostToDevice));
    SS_CUDA_CHECK(cudaMemcpy(m + 256, ctx.data(), 4 * E, cudaMemcpyHostToDevice));
    SS_CUDA_CHECK(cudaMemcpy(m + 512, bases.data(), 8 * E, cudaMemcpyHostToDevice));
    SS_CUDA_CHECK(cudaMemcpy(m + 1024, offs.data(), 4 * E, cudaMemcpyHostToDevice));
    cuda::AttnEntries en{reinterpret_cast<int32_t*>(m), reinterpret_cast<int32_t*>(m + 256),
                         reinterpret_cast<uint64_t*>(m + 512), E, 1000, static_cast<const int32_t*>(tab.d),
                         reinterpret_cast<int32_t*>(m + 1024)};
    const int splits = oneSplit ? 1 : cuda::DecodeSplits(t, H, KVH, D, E, 1000);
    Buf partial(static_cast<size_t>(E) * H * splits * (D + 2) * 4);
    cuda::LaunchDecodeAttention(qkv.d, QS, t, en, H, KVH, D, layer, cap, scale, splits, static_cast<float*>(partial.d),
                                out.d, s);
    SS_CUDA_CHECK(cudaStreamSynchronize(s));
    const auto qh = qkv.host(), oh = out.host();
    std::vector<double> ref, got;
    for (int e = 0; e < E; ++e) {
      // The entry's logical cache: its table (from offs[e]) applied to the pool.
      std::vector<uint8_t> mine(ph.size());
      for (int pl = 0; pl < 2 * L; ++pl)
        for (int p = 0; p < ctx[e]; ++p)
          std::memcpy(&mine[(pl * plane + static_cast<size_t>(p) * KVH * D) * eb],
                      &ph[(pl * plane + (static_cast<size_t>(table[offs[e] + p / BT]) * BT + p % BT) * KVH * D) * eb], rowBytes);
      std::vector<double> r1;
      CpuAttention(qh, QS, t, {rows[e]}, {ctx[e]}, mine, layer, cap, H, KVH, D, r1);
      ref.insert(ref.end(), r1.begin(), r1.end());
      const auto g1 = Gather(oh, t, {rows[e]}, H * D, H * D);
      got.insert(got.end(), g1.begin(), g1.end());
    }
    Report(std::string("paged decode attention ") + EtName(t) + " D=" + std::to_string(D) + " splits=" +
               std::to_string(splits) + (cuda::FastDecodeAttention(t, H, KVH, D) ? " (fast)" : ""),
           got, ref, t == ET::kF32 ? 1e-5 : 1e-2);
  }
}

void CheckQkvPost(ET t, bool interleaved, bool bias, bool hfRound, cudaStream_t s) {
  const int H = 8, KVH = 2, D = 64, L = 2, layer = 1, cap = 4096, QS = (H + 2 * KVH) * D, half = D / 2;
  const std::vector<int32_t> pos = {0, 1, 7, 100, 3000};
  const int T = static_cast<int>(pos.size());
  const size_t eb = cuda::EtBytes(t);
  Buf qkv(static_cast<size_t>(T) * QS * eb), cache(static_cast<size_t>(L) * 2 * cap * KVH * D * eb),
      b(static_cast<size_t>(QS) * eb), meta(4096), inv(half * 4);
  cuda::LaunchFillUniform(qkv.d, t, qkv.bytes / eb, 21, -2.f, 2.f, s);
  cuda::LaunchFillUniform(b.d, t, QS, 22, -0.5f, 0.5f, s);
  cache.poison();
  std::vector<float> invF(half);
  for (int i = 0; i < half; ++i) invF[i] = 1.f / std::pow(500000.f, 2.f * i / D) * (i > half / 2 ? 0.125f : 1.f);
  SS_CUDA_CHECK(cudaMemcpy(inv.d, invF.data(), half * 4, cudaMemcpyHostToDevice));
  std::vector<uint64_t> bases(T, reinterpret_cast<uint64_t>(cache.d));
  uint8_t* m = static_cast<uint8_t*>(meta.d);
  SS_CUDA_CHECK(cudaMemcpy(m, pos.data(), 4 * T, cudaMemcpyHostToDevice));
  SS_CUDA_CHECK(cudaMemcpy(m + 256, bases.data(), 8 * T, cudaMemcpyHostToDevice));
  const auto before = qkv.host(), bh = b.host();
  const uint8_t* bp = static_cast<const uint8_t*>(b.d);
  cuda::LaunchQkvPost(qkv.d, t, T, H, KVH, D, bias ? bp : nullptr, bias ? bp + H * D * eb : nullptr,
                      bias ? bp + (H + KVH) * D * eb : nullptr, t, reinterpret_cast<int32_t*>(m),
                      reinterpret_cast<uint64_t*>(m + 256), layer, cap, {static_cast<float*>(inv.d), nullptr, interleaved, hfRound}, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto after = qkv.host(), ch = cache.host();
  const size_t plane = static_cast<size_t>(cap) * KVH * D;
  std::vector<double> got, ref;
  for (int tk = 0; tk < T; ++tk) {
    for (int hh = 0; hh < H + 2 * KVH; ++hh) {
      std::vector<double> x(D), y(D);
      for (int d = 0; d < D; ++d) {
        x[d] = HostF(before.data(), t, static_cast<size_t>(tk) * QS + hh * D + d) + (bias ? HostF(bh.data(), t, hh * D + d) : 0);
        if (bias && hfRound) x[d] = HostRnd(x[d], t);
      }
      if (hh < H + KVH) {
        for (int i = 0; i < half; ++i) {
          const int a = interleaved ? 2 * i : i, bb = interleaved ? 2 * i + 1 : i + half;
          const double th = double(float(pos[tk]) * invF[i]);
          double c = std::cos(th), sn = std::sin(th);
          if (hfRound) {
            c = HostRnd(c, t);
            sn = HostRnd(sn, t);
            y[a] = HostRnd(x[a] * c, t) + HostRnd(-x[bb] * sn, t);
            y[bb] = HostRnd(x[bb] * c, t) + HostRnd(x[a] * sn, t);
          } else {
            y[a] = x[a] * c - x[bb] * sn;
            y[bb] = x[bb] * c + x[a] * sn;
          }
        }
      } else {
        y = x;
      }
      for (int d = 0; d < D; ++d) {
        ref.push_back(y[d]);
        if (hh < H) {
          got.push_back(HostF(after.data(), t, static_cast<size_t>(tk) * QS + hh * D + d));
        } else {
          const int kvh = hh < H + KVH ? hh - H : hh - H - KVH;
          const size_t sl = hh < H + KVH ? 2 * layer : 2 * layer + 1;
          got.push_back(HostF(ch.data(), t, sl * plane + static_cast<size_t>(pos[tk]) * KVH * D + kvh * D + d));
        }
      }
    }
  }
  Report(std::string("qkv bias+rope+kv write ") + EtName(t) + (interleaved ? " interleaved" : " half") +
             (bias ? " bias" : "") + (hfRound ? " hf-rounding" : ""),
         got, ref, t == ET::kF32 ? 1e-5 : hfRound ? 2e-3 : 1e-2);
}

void CheckSmallOps(ET t, bool hfRound, cudaStream_t s) {
  const int R = 7, C = 4096, V = 3000;
  const size_t eb = cuda::EtBytes(t);
  Buf x(R * C * 4), w(C * eb), out(R * C * eb), rows(64), emb(static_cast<size_t>(V) * C * eb), tok(64), logits(3 * V * 4),
      next(16);
  cuda::LaunchFillUniform(x.d, ET::kF32, R * C, 31, -3.f, 3.f, s);
  cuda::LaunchFillUniform(w.d, t, C, 32, 0.5f, 1.5f, s);
  const std::vector<int32_t> rv = {6, 0, 3};
  SS_CUDA_CHECK(cudaMemcpy(rows.d, rv.data(), 12, cudaMemcpyHostToDevice));
  out.poison();
  cuda::LaunchRmsNorm(x.d, ET::kF32, static_cast<int32_t*>(rows.d), 3, C, w.d, t, 1e-5f, out.d, t, hfRound, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  {
    const auto xh = x.host(), wh = w.host(), oh = out.host();
    std::vector<double> got, ref;
    for (int r = 0; r < 3; ++r) {
      double ss = 0;
      for (int c = 0; c < C; ++c) ss += double(HostF(xh.data(), ET::kF32, rv[r] * C + c)) * HostF(xh.data(), ET::kF32, rv[r] * C + c);
      const double inv = 1 / std::sqrt(ss / C + 1e-5);
      for (int c = 0; c < C; ++c) {
        const double nv = HostF(xh.data(), ET::kF32, rv[r] * C + c) * inv;
        ref.push_back(HostF(wh.data(), t, c) * (hfRound ? HostRnd(nv, t) : nv));
        got.push_back(HostF(oh.data(), t, r * C + c));
      }
    }
    Report(std::string("rmsnorm (gathered rows) ") + EtName(t) + (hfRound ? " hf-rounding" : ""), got, ref,
           t == ET::kF32 ? 1e-6 : 1e-2);
  }
  // SwiGLU: gu (R, 2F) with F = C / 2.
  {
    const int F = C / 2;
    Buf gu(R * 2 * F * eb), h(R * F * eb);
    cuda::LaunchFillUniform(gu.d, t, R * 2 * F, 33, -6.f, 6.f, s);
    h.poison();
    cuda::LaunchSwiGlu(gu.d, R, F, h.d, t, hfRound, s);
    SS_CUDA_CHECK(cudaStreamSynchronize(s));
    const auto gh = gu.host(), hh = h.host();
    std::vector<double> got, ref;
    for (int r = 0; r < R; ++r)
      for (int f = 0; f < F; ++f) {
        const double g = HostF(gh.data(), t, r * 2 * F + f), u = HostF(gh.data(), t, r * 2 * F + F + f);
        const double a = g / (1 + std::exp(-g));
        ref.push_back((hfRound ? HostRnd(a, t) : a) * u);
        got.push_back(HostF(hh.data(), t, r * F + f));
      }
    Report(std::string("swiglu ") + EtName(t) + (hfRound ? " hf-rounding" : ""), got, ref, t == ET::kF32 ? 1e-6 : 1e-2);
  }
  // Embedding gather.
  {
    const std::vector<int32_t> tv = {5, 2999, 0, 5};
    SS_CUDA_CHECK(cudaMemcpy(tok.d, tv.data(), 16, cudaMemcpyHostToDevice));
    cuda::LaunchFillUniform(emb.d, t, static_cast<size_t>(V) * C, 34, -1.f, 1.f, s);
    x.poison();
    cuda::LaunchEmbedding(static_cast<int32_t*>(tok.d), 4, emb.d, t, C, x.d, ET::kF32, s);
    SS_CUDA_CHECK(cudaStreamSynchronize(s));
    const auto eh = emb.host(), xh = x.host();
    std::vector<double> got, ref;
    for (int i = 0; i < 4; ++i)
      for (int c = 0; c < C; ++c) {
        ref.push_back(HostF(eh.data(), t, static_cast<size_t>(tv[i]) * C + c));
        got.push_back(HostF(xh.data(), ET::kF32, i * C + c));
      }
    Report(std::string("embedding ") + EtName(t), got, ref, 0);
  }
  // Argmax with a tie: the lowest id wins, as on the CPU.
  {
    std::vector<float> lg(3 * V);
    for (int i = 0; i < 3 * V; ++i) lg[i] = std::sin(i * 0.37f);
    lg[V + 17] = lg[V + 2500] = 5.f;
    lg[2 * V + V - 1] = 9.f;
    SS_CUDA_CHECK(cudaMemcpy(logits.d, lg.data(), lg.size() * 4, cudaMemcpyHostToDevice));
    cuda::LaunchArgmax(static_cast<float*>(logits.d), 3, V, static_cast<int32_t*>(next.d), s);
    SS_CUDA_CHECK(cudaStreamSynchronize(s));
    int32_t nx[3];
    SS_CUDA_CHECK(cudaMemcpy(nx, next.d, 12, cudaMemcpyDeviceToHost));
    std::vector<double> got = {double(nx[0]), double(nx[1]), double(nx[2])}, ref(3);
    for (int b = 0; b < 3; ++b) ref[b] = std::max_element(lg.begin() + b * V, lg.begin() + (b + 1) * V) - (lg.begin() + b * V);
    Report("argmax (ties -> lowest id)", got, ref, 0);
  }
}

void CheckGemm(ET t, float beta, cudaStream_t s, int T = 33, ET yT = ET::kF32, bool gemv = true) {
  const int N = 384, K = 512, ldy = 400;
  const size_t eb = cuda::EtBytes(t);
  Buf w(static_cast<size_t>(N) * K * eb), x(static_cast<size_t>(T) * K * eb), y(static_cast<size_t>(T) * ldy * cuda::EtBytes(yT)),
      ws(32 << 20);
  cuda::LaunchFillUniform(w.d, t, static_cast<size_t>(N) * K, 41, -1.f, 1.f, s);
  cuda::LaunchFillUniform(x.d, t, static_cast<size_t>(T) * K, 42, -1.f, 1.f, s);
  cuda::LaunchFillUniform(y.d, yT, static_cast<size_t>(T) * ldy, 43, -1.f, 1.f, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto y0 = y.host();
  cuda::Gemm g(ws.d, ws.bytes);
  g.useGemv(false);
  const bool useGemv = gemv && T <= 8 && t != ET::kF32;
  if (useGemv) SS_REQUIRE(cuda::LaunchGemv(w.d, t, N, K, x.d, K, T, y.d, yT, ldy, beta, s), "gemv refused");
  else g.run(w.d, t, N, K, x.d, t, K, T, y.d, yT, ldy, beta, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto wh = w.host(), xh = x.host(), yh = y.host();
  std::vector<double> got, ref;
  for (int r = 0; r < T; ++r)
    for (int c = 0; c < ldy; ++c) {
      double v = HostF(y0.data(), yT, r * ldy + c);
      if (c < N) {
        v *= beta;
        for (int k = 0; k < K; ++k) v += double(HostF(wh.data(), t, static_cast<size_t>(c) * K + k)) * HostF(xh.data(), t, r * K + k);
      }
      ref.push_back(v);
      got.push_back(HostF(yh.data(), yT, r * ldy + c));
    }
  // fp32 must be true fp32 (TF32 would land near 1e-3).
  Report(std::string(useGemv ? "gemv " : "gemm ") + EtName(t) + " -> " + EtName(yT) +
             ", T=" + std::to_string(T) + ", beta=" + std::to_string(int(beta)) + " (padding kept)",
         got, ref, yT != ET::kF32 ? 1e-2 : t == ET::kF32 ? 1e-6 : 1e-5);
}

void TimeFlash(cudaStream_t s) {
  const int H = 32, KVH = 8, D = 128, T = 2048, cap = 4096, QS = (H + 2 * KVH) * D;
  Buf qkv(static_cast<size_t>(T) * QS * 2), cache(static_cast<size_t>(2) * cap * KVH * D * 2), out(static_cast<size_t>(T) * H * D * 2);
  cuda::LaunchFillUniform(qkv.d, ET::kBF16, qkv.bytes / 2, 1, -2.f, 2.f, s);
  cuda::LaunchFillUniform(cache.d, ET::kBF16, cache.bytes / 2, 2, -1.f, 1.f, s);
  cudaEvent_t a, b;
  SS_CUDA_CHECK(cudaEventCreate(&a));
  SS_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<double> ms;
  for (int i = 0; i < 25; ++i) {
    SS_CUDA_CHECK(cudaEventRecord(a, s));
    cuda::LaunchFlashPrefill(qkv.d, QS, ET::kBF16, 0, T, 0, cache.d, H, KVH, D, 0, cap, 0.088f, out.d, H * D, s);
    SS_CUDA_CHECK(cudaEventRecord(b, s));
    SS_CUDA_CHECK(cudaEventSynchronize(b));
    float m = 0;
    SS_CUDA_CHECK(cudaEventElapsedTime(&m, a, b));
    if (i >= 5) ms.push_back(m);
  }
  const double t = Median(ms), flops = 4.0 * D * H * (double(T) * (T + 1) / 2);
  std::printf("TIME flash prefill bf16 T=%d H=%d KVH=%d D=%d: %.3f ms/layer, %.1f TFLOP/s (causal FLOPs)\n", T, H, KVH,
              D, t, flops / t / 1e9);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
}

}  // namespace

// Only the decode attention v2 checks (engine_dev ops attn2): quick, and first when a device call is short.
int RunOnlyAttnV2() {
  cudaStream_t s;
  SS_CUDA_CHECK(cudaStreamCreate(&s));
  RunAttnV2Checks(s);
  SS_CUDA_CHECK(cudaStreamDestroy(s));
  std::printf("OPS attn2 %s: %d failure(s)\n", g_failures ? "FAILED" : "PASSED", g_failures);
  return g_failures ? 1 : 0;
}

int RunOps() {
  cudaStream_t s;
  SS_CUDA_CHECK(cudaStreamCreate(&s));
  for (ET t : {ET::kBF16, ET::kF16}) {
    for (int D : {64, 128}) {
      CheckFlash(t, D, 100, 0, 0, s);
      CheckFlash(t, D, 77, 150, 5, s);
    }
  }
  CheckFlash(ET::kBF16, 128, 1, 300, 0, s);
  for (ET t : {ET::kF32, ET::kBF16})
    for (int D : {64, 128}) CheckPaged(t, D, s);
  for (ET t : {ET::kF32, ET::kBF16}) {
    for (int D : {64, 128}) {
      CheckDecode(t, D, false, s);
      CheckDecode(t, D, true, s);
    }
  }
  CheckDecode(ET::kF32, 8, false, s);
  for (bool one : {false, true}) {
    CheckDecode(ET::kF16, 128, one, s, 4, 4);    // MHA
    CheckDecode(ET::kBF16, 128, one, s, 16, 2);  // 8 query heads per KV head
    CheckDecode(ET::kBF16, 64, one, s, 24, 3);
    CheckDecode(ET::kBF16, 128, one, s, 20, 2);  // 10 per KV head: the general kernel
  }
  for (ET t : {ET::kF32, ET::kBF16}) {
    for (bool hf : {false, true}) {
      if (t == ET::kF32 && hf) continue;
      CheckQkvPost(t, false, false, hf, s);
      CheckQkvPost(t, true, true, hf, s);
      CheckSmallOps(t, hf, s);
    }
  }
  CheckQkvPost(ET::kF16, false, true, true, s);
  CheckGemm(ET::kF32, 0.f, s);
  CheckGemm(ET::kF32, 1.f, s);
  CheckGemm(ET::kBF16, 1.f, s);
  CheckGemm(ET::kF16, 0.f, s);
  for (int T : {1, 3, 8}) {
    CheckGemm(ET::kBF16, 0.f, s, T, ET::kF32);
    CheckGemm(ET::kBF16, 1.f, s, T, ET::kBF16);
    CheckGemm(ET::kF16, 1.f, s, T, ET::kF32);
  }
  CheckGemm(ET::kBF16, 1.f, s, 8, ET::kBF16, false);
  RunDecodeOpChecks(s);
  RunAttnV2Checks(s);
  TimeFlash(s);
  SS_CUDA_CHECK(cudaStreamDestroy(s));
  std::printf("OPS %s: %d failure(s)\n", g_failures ? "FAILED" : "PASSED", g_failures);
  return g_failures ? 1 : 0;
}

}  // namespace swapserve::dev
