// Launchers of the CUDA engine's kernels (kernels.cu, decode_attention.cu, flash.cu). Each takes a stream, asserts its
// shape assumptions (NativeError invalid_argument) and checks its launch. No N-API, no cuBLAS here, so
// nvcc compiles these sources on machines without either.
//
// Element types: `ET` is the activation / KV-cache type of a model (its weight matrices' dtype); values match
// engine::DType. Weight vectors (norms, biases, embeddings) carry their own dtype.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace swapserve::cuda {

enum class ET : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

// Paged KV cache (engine/kv_pool.h): positions per block. A cache is (L, 2, cap, KVH, D) at a base pointer; with a
// block table, position p of a sequence is row table[p / kKvBlockTokens] * kKvBlockTokens + p % kKvBlockTokens of
// that cache (cap = the pool's rows), without one row p (a contiguous cache).
constexpr int kKvBlockTokens = 16;

// Programmatic dependent launch for the element-wise, attention and GEMV kernels enqueued by this thread from now
// on (off by default). The backend turns it on for decode passes, whose kernels are short.
void SetPdl(bool on);

// Test hook only (Backend::injectFault): one thread that executes __trap() on `s`. Its launch succeeds; the trap
// then makes the context unusable (cudaErrorLaunchFailure, sticky), which every later call of the pass reports.
void LaunchTrap(cudaStream_t s);
inline size_t EtBytes(ET t) { return t == ET::kF32 ? 4 : 2; }

// Rounding policy of the 2-byte activation types. hfRound = true rounds where Hugging Face transformers rounds
// (normalised x before the norm weight, silu(gate) before the product, cos/sin and each RoPE product), so that a
// bf16 model agrees with its transformers reference; false rounds once per op (more exact). fp32 is unaffected.
// x[t] ((T, C) of xT, the residual stream) = emb[tokens[t]] for t < T. emb: (V, C) of dtype embT.
void LaunchEmbedding(const int32_t* tokens, int T, const void* emb, ET embT, int C, void* x, ET xT, cudaStream_t s);

// out[r] = ET(w * x[rows ? rows[r] : r] / rms) for r < R. x: rows of C of xT; out: (R, C) of outT.
void LaunchRmsNorm(const void* x, ET xT, const int32_t* rows, int R, int C, const void* w, ET wT, float eps, void* out,
                   ET outT, bool hfRound, cudaStream_t s);

// Per token t: q/k/v rows of `qkv` ((T, (H+2*KVH)*D), type ET: q | k | v) get their bias (when given), q and k get
// RoPE at position pos[t] (in place for q), and k, v are written into the sequence's KV cache at that position:
// row slot[t] (the paged cache's row of that position; nullptr: row pos[t]) of (L, 2, cap, KVH, D) (type ET) at
// kvBase[t]; `layer` selects its slice.
struct RopeParams {
  const float* invFreq = nullptr;  // (D/2) device, scaling already applied (computed once on the host)
  const float* cosSin = nullptr;   // optional (T, D/2, 2) table from LaunchRopeTable: one sincos per (token, pair)
  bool interleaved = false;        // (2i, 2i+1) pairs; else (i, i+D/2)
  bool hfRound = false;
};
void LaunchQkvPost(void* qkv, ET t, int T, int H, int KVH, int D, const void* bq, const void* bk, const void* bv,
                   ET biasT, const int32_t* pos, const uint64_t* kvBase, int layer, int cap, RopeParams rope,
                   cudaStream_t s, const int32_t* slot = nullptr);

// cosSin[t][i] = (cos, sin)(pos[t] * invFreq[i]) for t < T, i < half: shared by every head and layer of a pass.
void LaunchRopeTable(const int32_t* pos, int T, const float* invFreq, int half, float* cosSin, cudaStream_t s);

// out = ET(silu(gu[:, :F]) * gu[:, F:]): gu (T, 2F) of type t, out (T, F).
void LaunchSwiGlu(const void* gu, int T, int F, void* out, ET t, bool hfRound, cudaStream_t s);

// Y (T, N; row stride ldy; yT) = beta*Y + X (T, K; ldx) W^T (W (N, K) row-major) for small T (decode): each weight
// byte is read once for all T rows, 16-byte loads, fp32 accumulation. Returns false (nothing launched) where it does
// not apply (T > 8, fp32 weights, K or ldx not a multiple of 8, misaligned operands): use cuBLASLt then.
bool LaunchGemv(const void* W, ET wT, int N, int K, const void* X, int ldx, int T, void* Y, ET yT, int ldy, float beta,
                cudaStream_t s);

// One-token decode products with the step's small ops folded in (decode.cu): y = f(W g(x)) for one row x.
// Input g: kPlain (x itself) or kNorm (RMSNorm of x, computed on the fly from ssIn[0], the sum of squares of x that
// the kernel which wrote x accumulated; rounded as LaunchRmsNorm rounds it). Output f:
//   kStore     y (N) of yT = product (yT fp32 only: the output head's logits)
//   kResidual  y (N) of wT += product (the residual stream, in place); *ssOut += sum of squares of the new y
//   kSwiGlu    rows are gate (N/2) | up (N/2); y (N/2) of wT = silu(gate) * up, rounded as LaunchSwiGlu rounds
//   kQkvRope   rows are q | k | v; bias, RoPE and the KV-cache write of LaunchQkvPost; q into y (H*D) of wT
enum class DecodeIn : int { kPlain = 0, kNorm = 1 };
enum class DecodeOut : int { kStore = 0, kResidual = 1, kSwiGlu = 2, kQkvRope = 3 };
struct DecodeGemvArgs {
  // Weights: N rows of K (row-major, wT) in up to three segments: rows [0, seg1) of w0, [seg1, seg2) of w1, the rest
  // of w2 (q|k|v and gate|up need not be adjacent in the arena). One matrix: seg1 = seg2 = N.
  const void* w0 = nullptr;
  const void* w1 = nullptr;
  const void* w2 = nullptr;
  int seg1 = 0, seg2 = 0, N = 0, K = 0;
  ET wT = ET::kBF16;
  const void* x = nullptr;  // (K) of wT
  const float* ssIn = nullptr;  // kNorm: sum of squares of x (device, written by an earlier kernel)
  const void* normW = nullptr;  // kNorm: (K) norm weight of normT
  ET normT = ET::kF32;
  float eps = 0.f;
  bool hfRound = true;  // rounding policy, as the separate kernels' hfRound
  void* y = nullptr;
  ET yT = ET::kBF16;
  float* ssOut = nullptr;  // kResidual
  // kQkvRope: heads, RoPE table of the step (LaunchRopeTable / LaunchDecodeEmbed), the token's position and KV
  // cache ((L, 2, cap, KVH, D) of wT) as device pointers, biases (all or none).
  int H = 0, KVH = 0, D = 0;
  bool interleaved = false;
  const void* bq = nullptr;
  const void* bk = nullptr;
  const void* bv = nullptr;
  ET biasT = ET::kF32;
  const float* cosSin = nullptr;
  const int32_t* pos = nullptr;
  const uint64_t* kvBase = nullptr;
  int layer = 0, cap = 0;
  const int32_t* slot = nullptr;  // the cache row of the token's position (paged cache); nullptr: row pos[0]
};
// Launch shape of the decode products: rows per warp, 16-byte chunks per row in flight, whether a block's 4 warps
// split K (sharing their rows) instead of each having rows of its own (2x4, 2x8, 4x2; with the split 2x4, 4x4), and bytes
// of each row prefetched into L2 before the kernel waits for its predecessor (0: none).
struct DecodeTuning {
  int rows = 2;
  int unroll = 4;
  unsigned l2PrefetchBytes = 0;
  bool kSplit = false;
};
bool DecodeTuningValid(const DecodeTuning& t);
// "RxU" or "RxUk" (e.g. "2x4", "4x4k") into out's rows, unroll and kSplit; false (out untouched) if malformed/invalid.
bool ParseDecodeTuning(const char* spec, DecodeTuning* out);
bool DecodeGemvSupported(ET wT, int K);
void LaunchDecodeGemv(DecodeIn in, DecodeOut out, const DecodeGemvArgs& a, const DecodeTuning& tune, cudaStream_t s);
// The checks of an output mode's arguments that every decode product launcher makes (throws kInvalidArgument).
void RequireDecodeOut(DecodeOut out, const DecodeGemvArgs& a);

// T = 1: x (C) of xT = emb[tokens[0]], ss[0] = sum of squares of x as stored, ss[1 .. nSs-1] = 0, and cosSin (half,
// 2) = RoPE cos/sin of pos[0] (as LaunchEmbedding + LaunchRopeTable).
void LaunchDecodeEmbed(const int32_t* tokens, const void* emb, ET embT, int C, void* x, ET xT, float* ss, int nSs,
                       const int32_t* pos, const float* invFreq, int half, float* cosSin, cudaStream_t s);

// Attention of single query rows over a KV cache (decode steps, and prefill where the flash path does not
// apply). Entry e: query row qRow[e] of `qkv` (row stride qStride elements, heads at h*D), keys/values at
// positions 0..ctx[e]-1 of the cache at kvBase[e] (through the entry's block table when `table` is set: entry e's
// table starts at table + tableOff[e]); output row qRow[e] of `out` ((T, H*D), type t).
// `partial` (float, E*H*splits*(D+2)) is needed when splits > 1 (flash-decoding: split the context, merge).
struct AttnEntries {
  const int32_t* qRow = nullptr;
  const int32_t* ctx = nullptr;
  const uint64_t* kvBase = nullptr;
  int count = 0;
  int maxCtx = 0;
  const int32_t* table = nullptr;     // block ids (kKvBlockTokens positions each); nullptr: contiguous caches
  const int32_t* tableOff = nullptr;  // per entry: where its table starts in `table`
};
// Context splits for `entries` decode rows of up to maxCtx positions (the launcher picks its kernel by t, H, KVH, D:
// FastDecodeAttention says which).
bool FastDecodeAttention(ET t, int H, int KVH, int D);
int DecodeSplits(ET t, int H, int KVH, int D, int entries, int maxCtx);
void LaunchDecodeAttention(const void* qkv, int qStride, ET t, AttnEntries e, int H, int KVH, int D, int layer,
                           int cap, float scale, int splits, float* partial, void* out, cudaStream_t s);
// The splits' (max, sum, values) records in `partial` reduced into the output rows (the second kernel of a split
// decode attention).
void LaunchDecodeCombine(ET t, AttnEntries e, int H, int D, int splits, const float* partial, void* out, cudaStream_t s);
// Decode attention v2 (decode_attention_v2.cu; engine tuning attnV2MinEntries): the same contract as
// LaunchDecodeAttention, built for many sequences; for shapes it does not support (DecodeAttentionV2Supported:
// 2-byte types, D in {64, 128}, H / KVH <= 8) both calls fall back to the kernels above.
bool DecodeAttentionV2Supported(ET t, int H, int KVH, int D);
int DecodeSplitsV2(ET t, int H, int KVH, int D, int entries, int maxCtx);
void LaunchDecodeAttentionV2(const void* qkv, int qStride, ET t, AttnEntries e, int H, int KVH, int D, int layer,
                             int cap, float scale, int splits, float* partial, void* out, cudaStream_t s);

// Flash-style causal prefill of one sequence's chunk: n query rows starting at row `row0` of qkv, positions
// pos0..pos0+n-1, keys 0..pos0+n-1 in the cache at kvBase (device pointer; through the sequence's block table
// `table` (device) when given). Tensor cores (mma.sync), online softmax, no score matrix in memory. Supported: t in
// {F16, BF16}, D in {64, 128}.
bool FlashSupported(ET t, int D);
void LaunchFlashPrefill(const void* qkv, int qStride, ET t, int row0, int n, int pos0, const void* kvBase, int H,
                        int KVH, int D, int layer, int cap, float scale, void* out, int outStride, cudaStream_t s,
                        const int32_t* table = nullptr);

// next[b] = argmax(logits[b]) (ties: lowest id). logits (B, V) fp32.
void LaunchArgmax(const float* logits, int B, int V, int32_t* next, cudaStream_t s);

// Fills n elements of type t with a deterministic pseudo-random uniform in [lo, hi) (benches and checks).
void LaunchFillUniform(void* p, ET t, size_t n, uint64_t seed, float lo, float hi, cudaStream_t s);

}  // namespace swapserve::cuda
