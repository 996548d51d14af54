// Decode attention v2 (LaunchDecodeAttentionV2, decode_attention_v2.cu) against a double-precision CPU reference
// over a paged pool: each entry has its own blocks in a scrambled order, the tail of each entry's last block holds
// NaN (a kernel that reads or weighs a row past the context fails), outputs are poisoned, query rows permuted.
// Shapes: G = 1, 4 (Llama 8B), 8 at D = 128, G = 4 at D = 64; bf16 and f16; splits 1, DecodeSplitsV2's choice and
// a forced 5; contexts 1, 15, 16, 17, 300, 2049, 560; plus the f32 fallback and one contiguous-cache case.
#include <algorithm>
#include <cstring>
#include <string>

#include "engine/cuda/kernels.h"
#include "dev_common.h"
#include "dev_ops.h"

namespace swapserve::dev {

using cuda::ET;

namespace {

struct PagedCase {
  ET t;
  int H, KVH, D;
  bool paged = true;
};

void CheckV2(const PagedCase& c, int forcedSplits, cudaStream_t s) {
  const ET t = c.t;
  const int H = c.H, KVH = c.KVH, D = c.D, G = H / KVH, L = 2, layer = 1, BT = cuda::kKvBlockTokens;
  const std::vector<int> ctx = {1, 15, 16, 17, 300, 2049, 560};
  const int E = static_cast<int>(ctx.size()), maxCtx = *std::max_element(ctx.begin(), ctx.end());
  const int QS = (H + 2 * KVH) * D;
  const size_t eb = cuda::EtBytes(t), rowElems = static_cast<size_t>(KVH) * D;
  // Paged: entry e owns blocks perm[offs[e] .. offs[e] + ceil(ctx/16)). Contiguous: entry e owns a cache of its own
  // region of the pool (kvBase offset), cap = the longest context rounded to a block.
  std::vector<int32_t> offs(E), table;
  int nblocks = 0;
  for (int e = 0; e < E; ++e) { offs[e] = nblocks; nblocks += (ctx[e] + BT - 1) / BT; }
  const int cap = c.paged ? nblocks * BT : (maxCtx + BT - 1) / BT * BT;
  const size_t plane = static_cast<size_t>(cap) * rowElems, cacheElems = static_cast<size_t>(L) * 2 * plane;
  const size_t poolElems = c.paged ? cacheElems : cacheElems * E;
  for (int i = 0; i < nblocks; ++i) table.push_back(static_cast<int32_t>((static_cast<int64_t>(i) * 97 + 13) % nblocks));
  std::vector<int32_t> sorted(table);
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < nblocks; ++i)
    if (sorted[i] != i) { std::printf("attn v2 check: table is not a permutation (%d blocks)\n", nblocks); ++g_failures; return; }

  Buf pool(poolElems * eb), tab(4 * static_cast<size_t>(nblocks)), meta(4096),
      qkv(static_cast<size_t>(E) * QS * eb), out(static_cast<size_t>(E) * H * D * eb);
  cuda::LaunchFillUniform(pool.d, t, poolElems, 300 + D + H, -1.f, 1.f, s);
  cuda::LaunchFillUniform(qkv.d, t, qkv.bytes / eb, 310 + D + H, -2.f, 2.f, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
  // Cache row of (entry, position): through the table (paged) or the entry's own cache.
  auto rowOf = [&](int e, int p) -> size_t {
    return c.paged ? static_cast<size_t>(table[offs[e] + p / BT]) * BT + p % BT : static_cast<size_t>(p);
  };
  auto cacheOf = [&](int e) -> size_t { return c.paged ? 0 : cacheElems * e; };  // element offset of entry e's cache
  // NaN (all-ones bytes) in the rows past each entry's context in its last block, K and V, every layer.
  std::vector<uint8_t> ph = pool.host();
  for (int e = 0; e < E; ++e)
    for (int p = ctx[e]; p % BT != 0; ++p)
      for (int pl = 0; pl < 2 * L; ++pl)
        std::memset(&ph[(cacheOf(e) + pl * plane + rowOf(e, p) * rowElems) * eb], 0xff, rowElems * eb);
  SS_CUDA_CHECK(cudaMemcpy(pool.d, ph.data(), ph.size(), cudaMemcpyHostToDevice));
  SS_CUDA_CHECK(cudaMemcpy(tab.d, table.data(), 4 * table.size(), cudaMemcpyHostToDevice));
  out.poison();

  std::vector<int32_t> rows(E);
  std::vector<uint64_t> bases(E);
  for (int e = 0; e < E; ++e) {
    rows[e] = (e * 3) % E;  // 3 is prime to 7: a permutation
    bases[e] = reinterpret_cast<uint64_t>(static_cast<uint8_t*>(pool.d) + cacheOf(e) * eb);
  }
  uint8_t* m = static_cast<uint8_t*>(meta.d);
  SS_CUDA_CHECK(cudaMemcpy(m, rows.data(), 4 * E, cudaMemcpyHostToDevice));
  SS_CUDA_CHECK(cudaMemcpy(m + 256, ctx.data(), 4 * E, cudaMemcpyHostToDevice));
  SS_CUDA_CHECK(cudaMemcpy(m + 512, bases.data(), 8 * E, cudaMemcpyHostToDevice));
  SS_CUDA_CHECK(cudaMemcpy(m + 1024, offs.data(), 4 * E, cudaMemcpyHostToDevice));
  cuda::AttnEntries en{reinterpret_cast<int32_t*>(m), reinterpret_cast<int32_t*>(m + 256),
                       reinterpret_cast<uint64_t*>(m + 512), E, maxCtx,
                       c.paged ? static_cast<const int32_t*>(tab.d) : nullptr,
                       c.paged ? reinterpret_cast<int32_t*>(m + 1024) : nullptr};
  const int splits = forcedSplits ? forcedSplits : cuda::DecodeSplitsV2(t, H, KVH, D, E, maxCtx);
  Buf partial(static_cast<size_t>(E) * H * splits * (D + 2) * 4);
  const double scale = 1.0 / std::sqrt(double(D));
  cuda::LaunchDecodeAttentionV2(qkv.d, QS, t, en, H, KVH, D, layer, cap, static_cast<float>(scale), splits,
                                static_cast<float*>(partial.d), out.d, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));

  const std::vector<uint8_t> qh = qkv.host(), oh = out.host();
  std::vector<double> ref, got;
  for (int e = 0; e < E; ++e) {
    for (int h = 0; h < H; ++h) {
      const size_t q0 = static_cast<size_t>(rows[e]) * QS + h * D, kv0 = cacheOf(e) + static_cast<size_t>(h / G) * D;
      RefAttention(ctx[e], D, scale, [&](int d) { return HostF(qh.data(), t, q0 + d); },
                   [&](int p, int d) { return HostF(ph.data(), t, kv0 + 2 * layer * plane + rowOf(e, p) * rowElems + d); },
                   [&](int p, int d) { return HostF(ph.data(), t, kv0 + (2 * layer + 1) * plane + rowOf(e, p) * rowElems + d); },
                   ref);
      for (int d = 0; d < D; ++d) got.push_back(HostF(oh.data(), t, static_cast<size_t>(rows[e]) * H * D + h * D + d));
    }
  }
  Report(std::string("decode attention v2 ") + (c.paged ? "paged " : "contiguous ") + EtName(t) + " D=" +
             std::to_string(D) + " G=" + std::to_string(G) + " splits=" + std::to_string(splits) +
             (cuda::DecodeAttentionV2Supported(t, H, KVH, D) ? "" : " (fallback)"),
         got, ref, t == ET::kF32 ? 1e-5 : 1e-2);
}

}  // namespace

void RunAttnV2Checks(cudaStream_t s) {
  const PagedCase cases[] = {
      {ET::kBF16, 32, 8, 128},  // Llama 3.1 8B: G = 4
      {ET::kF16, 32, 8, 128},
      {ET::kBF16, 16, 2, 128},  // G = 8
      {ET::kBF16, 8, 8, 128},   // G = 1
      {ET::kF16, 12, 3, 64},    // G = 4, D = 64
      {ET::kBF16, 14, 2, 64},   // G = 7, D = 64 (G below the template's 8)
  };
  for (const PagedCase& c : cases)
    for (int forced : {1, 0, 5}) CheckV2(c, forced, s);
  CheckV2({ET::kBF16, 32, 8, 128, false}, 0, s);  // contiguous caches (no table)
  CheckV2({ET::kBF16, 32, 8, 128, false}, 1, s);
  CheckV2({ET::kF32, 16, 4, 128}, 0, s);  // unsupported type: falls back to the existing kernels
}

}  // namespace swapserve::dev
