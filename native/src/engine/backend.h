// The engine's compute backends (CPU in native/src/engine/, CUDA in native/src/engine/cuda/) behind one interface.
//
// Threading: a Backend is driven by one engine thread at a time (never the JS thread). Weights are read in
// place from the runtime's arena through a WeightsLease; before touching group g the backend calls
// lease->waitGroup(g, stream), which is what lets prefill of layer i start as soon as layer i has landed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/weights.h"

namespace swapserve::engine {

// Weight types: floats, and GGUF block-quantized types (llama.cpp layouts; only weight matrices, rows a whole
// number of blocks; engine/cpu/quant.h). The codes are native/ts/engine-native.ts DTYPE_CODE.
enum class DType : int { kF32 = 0, kF16 = 1, kBF16 = 2, kQ8_0 = 3, kQ4_0 = 4, kQ4_K = 5, kQ5_K = 6, kQ6_K = 7 };

// A tensor in the model arena: byte offset from the arena base.
struct TensorRef {
  size_t offset = 0;
  DType dtype = DType::kF32;
  bool present = false;
};

struct LayerWeights {
  TensorRef attnNorm;    // (C)
  TensorRef wq, wk, wv;  // (H*D, C), (KVH*D, C), (KVH*D, C)
  TensorRef bq, bk, bv;  // (H*D), (KVH*D), (KVH*D)  Qwen2 only
  TensorRef wo;          // (C, H*D)
  TensorRef ffnNorm;     // (C)
  TensorRef w1, w3;      // gate, up: (F, C)
  TensorRef w2;          // down: (C, F)
};

enum class RopeScaling : int { kNone = 0, kLlama3 = 1, kLinear = 2 };

struct ModelDesc {
  int hidden = 0;        // C
  int intermediate = 0;  // F
  int layers = 0;        // L
  int heads = 0;         // H
  int kvHeads = 0;       // KVH
  int headDim = 0;       // D
  int vocab = 0;         // V
  int maxPositions = 0;
  float rmsEps = 1e-5f;
  float ropeTheta = 10000.f;
  bool ropeInterleaved = false;  // true: rotate (2i, 2i+1); false: rotate (i, i+D/2) as HF's rotate_half
  RopeScaling ropeScaling = RopeScaling::kNone;
  float ropeFactor = 1.f, ropeLowFreqFactor = 1.f, ropeHighFreqFactor = 4.f;
  int ropeOriginalMaxPositions = 8192;
  TensorRef tokEmbeddings;  // (V, C)                      group 0
  std::vector<LayerWeights> layer;  // layer i is group i+1
  TensorRef norm;           // (C)                         group L+1
  TensorRef output;         // (V, C); == tokEmbeddings when tied
};

// One sequence's part of a batched forward pass: `n` tokens at positions pos .. pos+n-1 (n > 1: prefill chunk).
struct SeqInput {
  int32_t seq = 0;
  const int32_t* tokens = nullptr;
  int n = 0;
  int pos = 0;
};

struct Sampling {
  float temperature = 0.f;  // 0 = greedy
  float topP = 1.f;
  int topK = 0;             // 0 = off
  uint64_t rngState = 0;    // per-sequence PRNG state, advanced by the sampler
  // Logit processing (sampler.cc applies them in this order; all off by default). Pointers are borrowed for the
  // duration of one pass.
  int vocabLimit = 0;                // ids >= vocabLimit (padded embedding rows) are never sampled; 0 = the whole row
  const uint32_t* mask = nullptr;    // allowed-token bitmask (bit i%32 of word i/32); null = every id allowed
  const int32_t* biasIds = nullptr;  // logit_bias: logit[biasIds[i]] += biasVals[i]
  const float* biasVals = nullptr;
  int nBias = 0;
  // Token history: distinct ids of prompt + completion, with how often each was generated (0: prompt only).
  const int32_t* histIds = nullptr;
  const int32_t* histCounts = nullptr;
  int nHist = 0;
  float repetition = 1.f;  // HF: over prompt + completion ids, l > 0 ? l / r : l * r
  float presence = 0.f;    // OpenAI: over generated ids, l -= presence * (count > 0) + frequency * count
  float frequency = 0.f;
  float minP = 0.f;        // after temperature: drop ids with p < minP * max p
  // Logprobs (log-softmax of the processed logits, before temperature and truncation): -1 = none, else the
  // number of top alternatives (0..kMaxTopLogprobs) written to topIds/topLogprobs; the chosen id's to *logprob.
  int numLogprobs = -1;
  float* logprob = nullptr;
  int32_t* topIds = nullptr;
  float* topLogprobs = nullptr;
};

constexpr int kMaxTopLogprobs = 20;

// Whether the sampler has nothing to do but greedy / temperature / top-k / top-p over the whole row (so a backend
// may take its on-device fast path).
inline bool PlainSampling(const Sampling& s, int vocab) {
  return (s.vocabLimit <= 0 || s.vocabLimit >= vocab) && !s.mask && s.nBias == 0 && s.nHist == 0 &&
         s.numLogprobs < 0 && !(s.minP > 0.f);
}

// Decode rows from which a pass uses decode attention v2 (CudaTuning::attnV2MinEntries).
inline constexpr int kAttnV2MinEntriesDefault = 32;

// CUDA backend tuning; the defaults match native/ts/tuning.ts (the config's `engine` section documents each).
struct CudaTuning {
  bool exact = false;         // fp32 residual stream, one rounding per op (else round where transformers rounds)
  bool profile = false;       // per-op events, one line per forward pass on stderr (turns pdl off)
  bool pdl = true;            // programmatic dependent launch in decode passes
  bool fusedDecode = true;    // one-token steps with norm, RoPE + KV write and SwiGLU folded into the products
  std::string decodeGemv;     // decode launch shapes ("4x4k" or "qkv:4x4k/o:2x4/..."); "" = measured defaults
  int l2PrefetchBytes = -1;   // bytes per row prefetched into L2 by decode products; -1 = per-product default
  int attnSplits = 0;         // decode attention context splits, 1..64; 0 = chosen from the shape
  // Decode attention v2 (decode_attention_v2.cu) for passes with >= this many decode rows; 0 never. Env only for now.
  // 32: on an H100 (2026-12-07, bench/results/engine/2026-12-07-h100-s6d.md) v2 took batch 64 from 68 % to 81 % of
  // the decode roofline and won at 32..256; at 1 and 8 the two kernels tie and v1 stays.
  int attnV2MinEntries = kAttnV2MinEntriesDefault;
  bool cudaGraphs = false;    // decode steps replayed as CUDA graphs per batch-size bucket (1, 2, 4, ..., 256)
  // Quantized models' one-token steps with the attention and FFN norms, RoPE + KV write and SwiGLU folded into the
  // q|k|v and gate|up products (LaunchQuantDecodeGemv, quant_dp4a.cu); off until measured on a GPU. Needs fusedDecode.
  bool quantFold = false;
};

struct BackendOptions {
  int maxBatch = 8;
  int maxContext = 4096;
  // Bytes of the paged KV cache (kv_pool.h), taken from the scratch pool when the backend is made; 0 = room for
  // maxBatch sequences of maxContext positions.
  size_t kvCacheBytes = 0;
  int threads = 0;  // CPU backend: 0 = hardware concurrency
  CudaTuning cuda;  // ignored by the CPU backend
};

class Backend {
 public:
  virtual ~Backend() = default;
  // One forward pass; writes the fp32 logits of each sequence's last input token to `logits` (B, V) host memory.
  virtual void forward(const std::vector<SeqInput>& batch, float* logits) = 0;
  // Forward + sample one next token per sequence (backends may sample on the device; the default samples the
  // logits on the CPU). `sampling` has one entry per batch element and their rngState is advanced.
  virtual void forwardSample(const std::vector<SeqInput>& batch, Sampling* sampling, int32_t* next);
  // Frees a sequence's KV blocks.
  virtual void releaseSeq(int32_t seq) = 0;
  // The paged KV cache's blocks (blocksFree may be read from any thread while a pass runs).
  struct KvStats {
    int blockTokens = 0;
    int blocksTotal = 0;
    int blocksFree = 0;
  };
  virtual KvStats kvStats() const = 0;
  // n > 1: `dst` (new, or released first) gets a copy of the first `len` positions of `src`'s KV cache, so the
  // choices of one request share one prefill. A copy on today's per-sequence layout; a paged cache can share
  // blocks instead behind this same call.
  virtual void forkSeq(int32_t src, int32_t dst, int len) = 0;
  // V: the row length of `logits` (the default forwardSample sizes its buffer with it).
  virtual int vocabSize() const = 0;
  // Test hook (testing.failNextPass), called at the start of a pass: that pass fails with `code`. This default throws
  // NativeError(code) at once; for cuda_sticky it names the error the CUDA backend's genuine fault produces. The CUDA
  // backend instead makes cuda_sticky real: a kernel that traps on the pass's stream, found by the pass's own checks.
  virtual void injectFault(ErrorCode code);
};

inline void Backend::injectFault(ErrorCode code) {
  if (code == ErrorCode::kSticky)
    throw NativeError(code, "injected fault (test hook failNextPass): cudaErrorLaunchFailure (unspecified launch failure), "
                            "as a kernel that traps in a pass gives on the CUDA backend");
  throw NativeError(code, "injected fault (test hook failNextPass)");
}

// CPU sampler shared by every backend: logit processing (vocab limit, mask, bias, penalties), logprobs, then
// greedy, or temperature + min-p + top-k + top-p with the sequence's PRNG.
int32_t SampleLogits(const float* logits, int vocab, Sampling& s);

std::unique_ptr<Backend> MakeCpuBackend(const ModelDesc& desc, std::shared_ptr<WeightsLease> weights,
                                        std::shared_ptr<ScratchPool> scratch, const BackendOptions& opts);
#ifdef SWAPSERVE_CUDA
std::unique_ptr<Backend> MakeCudaBackend(const ModelDesc& desc, std::shared_ptr<WeightsLease> weights,
                                         std::shared_ptr<ScratchPool> scratch, const BackendOptions& opts);
#endif

}  // namespace swapserve::engine
