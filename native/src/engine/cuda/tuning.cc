// CUDA backend tuning (tuning.h): env overrides over the engine options, and the decode launch shapes.
#include "engine/cuda/tuning.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/errors.h"

namespace swapserve::engine {

namespace {

[[noreturn]] void Invalid(const std::string& msg) { throw NativeError(ErrorCode::kInvalidArgument, msg); }

// An integer env var in [lo, hi], or `fallback` when unset.
int IntEnv(const char* name, int lo, int hi, int fallback) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || n < lo || n > hi)
    Invalid(std::string(name) + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + "; got \"" + v + "\"");
  return static_cast<int>(n);
}

bool Is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, value) == 0;
}

}  // namespace

CudaTuning WithEnvOverrides(CudaTuning t) {
  if (Is("SWAPSERVE_CUDA_EXACT", "1")) t.exact = true;
  if (Is("SWAPSERVE_CUDA_PROFILE", "1")) t.profile = true;
  if (Is("SWAPSERVE_CUDA_PDL", "0")) t.pdl = false;
  if (Is("SWAPSERVE_CUDA_FUSED_DECODE", "0")) t.fusedDecode = false;
  if (const char* q = std::getenv("SWAPSERVE_CUDA_QUANT_FOLD")) {
    if (std::strcmp(q, "1") == 0) t.quantFold = true;
    else if (std::strcmp(q, "0") == 0) t.quantFold = false;
    else Invalid(std::string("SWAPSERVE_CUDA_QUANT_FOLD must be 0 or 1; got \"") + q + "\"");
  }
  if (Is("SWAPSERVE_CUDA_GRAPHS", "1")) t.cudaGraphs = true;
  if (Is("SWAPSERVE_CUDA_GRAPHS", "0")) t.cudaGraphs = false;
  if (const char* g = std::getenv("SWAPSERVE_CUDA_DECODE_GEMV")) t.decodeGemv = g;
  t.l2PrefetchBytes = IntEnv("SWAPSERVE_CUDA_L2PF", 0, 1 << 20, t.l2PrefetchBytes);
  t.attnSplits = IntEnv("SWAPSERVE_CUDA_ATTN_SPLITS", 1, 64, t.attnSplits);
  if (const char* a = std::getenv("SWAPSERVE_CUDA_ATTN")) {
    if (std::strcmp(a, "v2") == 0) t.attnV2MinEntries = 1;
    else if (std::strcmp(a, "v1") == 0) t.attnV2MinEntries = 0;
    else if (std::strcmp(a, "auto") == 0) t.attnV2MinEntries = kAttnV2MinEntriesDefault;
    else Invalid(std::string("SWAPSERVE_CUDA_ATTN must be v1, v2 or auto; got \"") + a + "\"");
  }
  t.attnV2MinEntries = IntEnv("SWAPSERVE_CUDA_ATTN_V2_MIN", 0, 65535, t.attnV2MinEntries);
  return t;
}

void ResolveDecodeTunings(const CudaTuning& t, cuda::DecodeTuning tunes[kDecodeOps]) {
  // Launch shape of each decode product, measured in whole decode steps on an H200 (bench/results/engine/2026-11-21-h200-0c64c4f.md):
  // the products that normalise x split K across a block's warps (4x less normalisation per warp, and a block's
  // whole slice of weights requested before it waits for its predecessor); o and down do not.
  const cuda::DecodeTuning measured[kDecodeOps] = {{4, 4, 0, true}, {2, 4, 0, false}, {4, 4, 0, true}, {2, 4, 0, false},
                                                   {4, 4, 0, true}};
  for (int i = 0; i < kDecodeOps; ++i) tunes[i] = measured[i];
  // decodeGemv: one launch shape for every decode product ("4x4k"), or per product
  // ("qkv:4x4k/o:2x4/gu:4x4k/down:2x4/head:4x4k", any subset).
  if (!t.decodeGemv.empty()) {
    static const char* const names[kDecodeOps] = {"qkv", "o", "gu", "down", "head"};
    const std::string& all = t.decodeGemv;
    const std::string err = "engine tuning decodeGemv (env SWAPSERVE_CUDA_DECODE_GEMV) must be a launch shape (2x4, 2x8, "
                            "4x2, 2x4k or 4x4k: rows per warp x chunks in flight, k: a block's warps split K) or "
                            "op:shape items joined by / (ops qkv, o, gu, down, head); got \"" + all + "\"";
    if (all.find(':') == std::string::npos) {
      for (int i = 0; i < kDecodeOps; ++i)
        if (!cuda::ParseDecodeTuning(all.c_str(), &tunes[i])) Invalid(err);
    } else {
      for (size_t i = 0; i <= all.size();) {
        size_t j = all.find('/', i);
        if (j == std::string::npos) j = all.size();
        const std::string item = all.substr(i, j - i);
        const size_t colon = item.find(':');
        int op = -1;
        for (int k = 0; k < kDecodeOps && colon != std::string::npos; ++k)
          if (item.compare(0, colon, names[k]) == 0 && std::strlen(names[k]) == colon) op = k;
        if (op < 0 || !cuda::ParseDecodeTuning(item.c_str() + colon + 1, &tunes[op])) Invalid(err);
        i = j + 1;
      }
    }
  }
  if (t.l2PrefetchBytes >= 0) {
    if (t.l2PrefetchBytes > (1 << 20)) Invalid("engine tuning l2PrefetchBytes must be bytes in 0..1048576");
    for (int i = 0; i < kDecodeOps; ++i) tunes[i].l2PrefetchBytes = static_cast<unsigned>(t.l2PrefetchBytes);
  }
  if (t.attnSplits < 0 || t.attnSplits > 64) Invalid("engine tuning attnSplits must be 0 (automatic) or 1..64");
}

}  // namespace swapserve::engine
