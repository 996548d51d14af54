// The decode-attention kernels (engine/cuda/decode_attention_kernels.cuh: the general and the fast kernel and the
// splits' combine; decode_attention_v2_kernels.cuh: v2) run on the CPU under the SIMT emulation of
// bench/simt/simt.h, against a scalar softmax attention in double: paged caches through shuffled block tables,
// entries whose rows of q are not in entry order, contexts of 1 to 300 positions (a block's tail, exact blocks, long
// ones split over the context), grouped-query heads G = 1, 4, 8 and 12 (the general kernel's head chunks), D = 64
// and 128 (and 40 and 200 for the general kernel), bf16, fp16 and fp32. Each output value must lie within 1/64 of
// its reference plus 1e-3 of the largest (an output rounded to bf16 keeps 8 bits; __expf and the merge order move
// the rest), and every value outside the entries' rows must stay untouched. A warp whose lanes do not all reach a
// shuffle or barrier ends the run with the emulator's deadlock message (the v2 kernel once hung so on a GPU).
// Exit status 1 on any mismatch.
//   g++ -std=c++17 -O2 -fno-strict-aliasing -Wall -Wextra -Wno-attributes -Wno-unknown-pragmas -Wno-sign-compare
//       -Wno-unused-variable -Wno-unused-parameter -I/usr/local/cuda/include -Inative/src bench/engine/attn_check.cc
//       -o /tmp/attn_check   (test/engine/attn-emu.test.ts builds and runs it)
#include "../simt/simt.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/cuda/decode_attention_kernels.cuh"
#include "engine/cuda/decode_attention_v2_kernels.cuh"

namespace {

using namespace swapserve::cuda;
int failures = 0;

uint32_t Hash(uint32_t i, uint32_t seed) {
  uint32_t h = i * 2654435761u ^ seed;
  h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
  return h;
}
float Rand(uint32_t i, uint32_t seed) { return static_cast<float>(Hash(i, seed) % 20001) / 10000.f - 1.f; }

template <typename T> T Of(float v) { if constexpr (std::is_same_v<T, float>) return v; else if constexpr (std::is_same_v<T, __half>) return __float2half_rn(v); else return __float2bfloat16_rn(v); }
template <typename T> float F(T v) { if constexpr (std::is_same_v<T, float>) return v; else if constexpr (std::is_same_v<T, __half>) return __half2float(v); else return __bfloat162float(v); }

// One problem: E entries over a paged cache of one layer set, every entry's q row, its context and block table.
template <typename T>
struct Problem {
  int H, KVH, D, E, layers = 2, layer = 1, blocks, cap;
  float scale;
  std::vector<int> ctx, qRow, tableOff, table;
  std::vector<T> qkv, cache;
  std::vector<uint64_t> kvBase;
  int qStride() const { return (H + 2 * KVH) * D; }
  int maxCtx() const { return *std::max_element(ctx.begin(), ctx.end()); }
};

template <typename T>
Problem<T> Make(int H, int KVH, int D, std::vector<int> ctx, uint32_t seed) {
  Problem<T> p;
  p.H = H; p.KVH = KVH; p.D = D; p.E = static_cast<int>(ctx.size()); p.ctx = ctx;
  p.scale = 1.f / std::sqrt(static_cast<float>(D));
  int need = 0;
  for (int c : ctx) need += (c + kKvBlockTokens - 1) / kKvBlockTokens;
  p.blocks = need + 3;  // spare blocks no entry owns (their bytes must not reach any output)
  p.cap = p.blocks * kKvBlockTokens;
  // Block ids: a shuffled permutation handed out entry by entry.
  std::vector<int> ids(p.blocks);
  for (int i = 0; i < p.blocks; ++i) ids[i] = i;
  for (int i = p.blocks - 1; i > 0; --i) std::swap(ids[i], ids[Hash(i, seed) % (i + 1)]);
  int next = 0;
  for (int e = 0; e < p.E; ++e) {
    p.tableOff.push_back(static_cast<int>(p.table.size()));
    for (int b = 0; b < (ctx[e] + kKvBlockTokens - 1) / kKvBlockTokens; ++b) p.table.push_back(ids[next++]);
    p.qRow.push_back((e * 3 + 1) % (p.E + 1));  // rows of q not in entry order (3 is prime to E + 1 here), one unused
  }
  p.qkv.resize(static_cast<size_t>(p.E + 1) * p.qStride());
  for (size_t i = 0; i < p.qkv.size(); ++i) p.qkv[i] = Of<T>(2.f * Rand(static_cast<uint32_t>(i), seed + 1));
  p.cache.resize(2 * static_cast<size_t>(p.layers) * p.cap * KVH * D);
  for (size_t i = 0; i < p.cache.size(); ++i) p.cache[i] = Of<T>(Rand(static_cast<uint32_t>(i), seed + 2));
  p.kvBase.assign(p.E, reinterpret_cast<uint64_t>(p.cache.data()));
  return p;
}

template <typename T>
std::vector<double> Reference(const Problem<T>& p) {
  const int G = p.H / p.KVH, D = p.D;
  const size_t plane = static_cast<size_t>(p.cap) * p.KVH * D;
  std::vector<double> out(static_cast<size_t>(p.E + 1) * p.H * D, 0.0);
  for (int e = 0; e < p.E; ++e)
    for (int h = 0; h < p.H; ++h) {
      const int kvh = h / G;
      std::vector<double> s(p.ctx[e]);
      double mx = -1e300;
      for (int t = 0; t < p.ctx[e]; ++t) {
        const size_t row = static_cast<size_t>(p.table[p.tableOff[e] + t / kKvBlockTokens]) * kKvBlockTokens + t % kKvBlockTokens;
        const T* k = p.cache.data() + 2 * static_cast<size_t>(p.layer) * plane + row * p.KVH * D + kvh * D;
        double acc = 0;
        for (int d = 0; d < D; ++d)
          acc += static_cast<double>(F(p.qkv[static_cast<size_t>(p.qRow[e]) * p.qStride() + h * D + d]) * p.scale) * F(k[d]);
        s[t] = acc;
        mx = std::max(mx, acc);
      }
      double l = 0;
      for (double& v : s) l += (v = std::exp(v - mx));
      for (int t = 0; t < p.ctx[e]; ++t) {
        const size_t row = static_cast<size_t>(p.table[p.tableOff[e] + t / kKvBlockTokens]) * kKvBlockTokens + t % kKvBlockTokens;
        const T* v = p.cache.data() + (2 * static_cast<size_t>(p.layer) + 1) * plane + row * p.KVH * D + kvh * D;
        for (int d = 0; d < D; ++d) out[(static_cast<size_t>(p.qRow[e]) * p.H + h) * D + d] += s[t] / l * F(v[d]);
      }
    }
  return out;
}

AttnEntries Entries(const std::vector<int>& qRow, const std::vector<int>& ctx, const std::vector<uint64_t>& kv,
                    const std::vector<int>& table, const std::vector<int>& off, int maxCtx) {
  AttnEntries e;
  e.qRow = qRow.data();
  e.ctx = ctx.data();
  e.kvBase = kv.data();
  e.count = static_cast<int>(ctx.size());
  e.maxCtx = maxCtx;
  e.table = table.data();
  e.tableOff = off.data();
  return e;
}

// Which kernel: the general one (v1), the fast one (2-byte types, D 64/128, G <= 8) or v2 (the same shapes).
enum class Kind { kGeneral, kFast, kV2 };
const char* Name(Kind k) { return k == Kind::kGeneral ? "general" : k == Kind::kFast ? "fast" : "v2"; }

template <typename T, int D, int GM>
void RunFastOrV2(Kind kind, const Problem<T>& p, const AttnEntries& e, int splits, int chunk, float* partial, T* out) {
  const dim3 grid(splits, p.KVH, p.E);
  if (kind == Kind::kFast)
    simt::Launch(grid, attn::kFastWarps * 32, 0, [&] {
      attn::DecodeAttnFastKernel<T, D, GM>(p.qkv.data(), p.qStride(), e, p.H, p.KVH, p.layer, p.cap, p.scale, splits, chunk, partial, out);
    });
  else
    simt::Launch(grid, attn2::kV2Warps * 32, 0, [&] {
      attn2::DecodeAttnV2Kernel<T, D, GM>(p.qkv.data(), p.qStride(), e, p.H, p.KVH, p.layer, p.cap, p.scale, splits, chunk, partial, out);
    });
}

template <typename T>
void Case(Kind kind, int H, int KVH, int D, std::vector<int> ctx, int splits, uint32_t seed) {
  Problem<T> p = Make<T>(H, KVH, D, std::move(ctx), seed);
  const int G = H / KVH;
  const AttnEntries e = Entries(p.qRow, p.ctx, p.kvBase, p.table, p.tableOff, p.maxCtx());
  const T sentinel = Of<T>(777.f);
  std::vector<T> out(static_cast<size_t>(p.E + 1) * H * D, sentinel);
  std::vector<float> partial(splits > 1 ? static_cast<size_t>(p.E) * H * splits * (D + 2) : 1, 0.f);
  float* part = splits > 1 ? partial.data() : nullptr;
  const int granule = kind == Kind::kV2 ? kKvBlockTokens : 32;  // whole paged blocks (v2) or warp rounds (v1) a split
  int chunk = (p.maxCtx() + splits - 1) / splits;
  chunk = (chunk + granule - 1) / granule * granule;
  if (kind == Kind::kGeneral) {
    const int gChunks = (G + attn::kMaxG - 1) / attn::kMaxG, dpl = (D + 31) / 32;
    const dim3 grid(splits, KVH * gChunks, p.E);
    auto run = [&](auto dplTag) {
      constexpr int DPL = decltype(dplTag)::value;
      simt::Launch(grid, attn::kDecWarps * 32, 0, [&] {
        attn::DecodeAttnKernel<T, DPL>(p.qkv.data(), p.qStride(), e, H, KVH, D, p.layer, p.cap, p.scale, splits, chunk, part, out.data());
      });
    };
    if (dpl == 2) run(std::integral_constant<int, 2>{});
    else if (dpl == 4) run(std::integral_constant<int, 4>{});
    else run(std::integral_constant<int, 8>{});
  } else if (D == 128) {
    if (kind == Kind::kV2 && G == 1) RunFastOrV2<T, 128, 1>(kind, p, e, splits, chunk, part, out.data());
    else if (G <= 4) RunFastOrV2<T, 128, 4>(kind, p, e, splits, chunk, part, out.data());
    else RunFastOrV2<T, 128, 8>(kind, p, e, splits, chunk, part, out.data());
  } else {
    if (kind == Kind::kV2 && G == 1) RunFastOrV2<T, 64, 1>(kind, p, e, splits, chunk, part, out.data());
    else if (G <= 4) RunFastOrV2<T, 64, 4>(kind, p, e, splits, chunk, part, out.data());
    else RunFastOrV2<T, 64, 8>(kind, p, e, splits, chunk, part, out.data());
  }
  if (splits > 1)
    simt::Launch(dim3(p.E, H), 128, 0, [&] { attn::DecodeCombineKernel<T>(e, H, D, splits, part, out.data()); });

  const std::vector<double> want = Reference(p);
  double maxRef = 0, worst = 0;
  size_t off = 0, stray = 0;
  std::vector<bool> used(p.E + 1, false);
  for (int r : p.qRow) used[r] = true;
  for (double w : want) maxRef = std::max(maxRef, std::fabs(w));
  for (size_t i = 0; i < out.size(); ++i) {
    const int row = static_cast<int>(i / (static_cast<size_t>(H) * D));
    if (!used[row]) {
      stray += F(out[i]) != F(sentinel);
      continue;
    }
    const double d = std::fabs(F(out[i]) - want[i]);
    if (!(d <= std::fabs(want[i]) / 64 + 1e-3 * maxRef)) ++off;
    if (!(d <= worst)) worst = d;
  }
  std::string ctxs;
  for (int c : p.ctx) ctxs += (ctxs.empty() ? "" : ",") + std::to_string(c);
  const char* tn = std::is_same_v<T, float> ? "f32" : std::is_same_v<T, __half> ? "f16" : "bf16";
  const bool ok = off == 0 && stray == 0 && maxRef > 0;
  std::printf("%s %s H %d KVH %d D %d ctx %s splits %d: max |ref| %.3g, worst |diff| %.3g, %zu outside the bound, %zu stray %s\n",
              Name(kind), tn, H, KVH, D, ctxs.c_str(), splits, maxRef, worst, off, stray, ok ? "ok" : "FAIL");
  if (!ok) ++failures;
}

}  // namespace

int main() {
  using bf16 = __nv_bfloat16;
  const std::vector<int> few = {1, 17, 48}, many = {300, 16, 129, 5};
  for (Kind k : {Kind::kFast, Kind::kV2}) {
    Case<bf16>(k, 8, 2, 128, few, 1, 11);    // G = 4
    Case<bf16>(k, 8, 1, 64, many, 3, 12);    // G = 8, split context
    Case<__half>(k, 4, 4, 128, many, 1, 13); // G = 1
    Case<bf16>(k, 4, 4, 64, {300}, 4, 14);   // one long entry over 4 splits
  }
  Case<bf16>(Kind::kGeneral, 8, 2, 128, few, 1, 21);
  Case<float>(Kind::kGeneral, 8, 2, 64, many, 3, 22);
  Case<float>(Kind::kGeneral, 12, 1, 40, few, 1, 23);   // G = 12: two head chunks; D = 40: two dims a lane
  Case<__half>(Kind::kGeneral, 4, 2, 200, many, 2, 24); // D = 200: eight dims a lane
  std::printf(failures ? "attention check: %d FAILED\n" : "attention check: OK\n", failures);
  return failures ? 1 : 0;
}
