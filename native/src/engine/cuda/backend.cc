// The CUDA engine backend: a Llama-family forward pass (Llama 2/3/3.1, Mistral, Qwen2) that reads the weights in
// place from the runtime's GPU arena, keeps the paged KV cache (kv_pool.h) in the runtime's scratch pool, and runs every
// sequence of a batch through one pass over the weights (decode steps of many sequences and prefill chunks mixed).
//
// Per layer: RMSNorm -> q|k|v product (one GEMM when the three matrices are adjacent in the arena) -> bias + RoPE +
// KV-cache write -> attention (flash prefill on tensor cores, split-context decode) -> output product with the
// residual add fused (beta = 1 on the fp32 residual stream) -> RMSNorm -> gate|up product -> SwiGLU -> down product
// with the residual fused. Before touching group g it calls lease->waitGroup(g, stream): a stream-ordered wait, so a
// prefill enqueued while the model is still being swapped in runs each layer as soon as that layer has landed.
//
// Threading: one engine thread at a time (backend.h). All device work is on this backend's own stream; forward
// returns after the stream has finished, so its host staging buffers are free again at the next call.
//
// Over 900 lines, knowingly: the pass, its buffers, the paged KV cache, graph capture, the quantized matmul dispatch
// and the folded decode steps' arguments (bf16 and quantized) share the backend's stream and buffers; the kernels
// themselves live in the .cu files beside it.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/cuda_check.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/kernels.h"
#include "engine/cuda/profiler.h"
#include "engine/cuda/quant.h"
#include "engine/cuda/tuning.h"
#include "engine/backend.h"
#include "engine/kv_pool.h"

namespace swapserve::engine {

namespace {

using cuda::ET;

constexpr size_t kAlign = 256;
constexpr size_t kGemmWorkspace = 32u << 20;  // bytes

size_t AlignUp(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
ET ToEt(DType d) { return static_cast<ET>(static_cast<int>(d)); }
size_t DBytes(DType d) { return d == DType::kF32 ? 4 : 2; }
// GGUF block-quantized matrices (engine/cuda/quant.h): kept in their blocks, activations bf16.
bool IsQ(DType d) { return cuda::IsQt(static_cast<int>(d)); }
// Bytes of `elems` values (rows of whole blocks for quantized types: wrap.cc checked the row lengths).
size_t TensorBytes(DType d, size_t elems) {
  if (!IsQ(d)) return elems * DBytes(d);
  const auto q = static_cast<cuda::QT>(static_cast<int>(d));
  return elems / cuda::QtBlockElems(q) * cuda::QtBlockBytes(q);
}
constexpr size_t kDequantTile = 32u << 20;  // bytes of bf16 rows a quantized prefill product dequantizes at once

[[noreturn]] void Invalid(const std::string& msg) { throw NativeError(ErrorCode::kInvalidArgument, msg); }

// RoPE inverse frequencies with the model's scaling applied (HF's _compute_llama3_parameters / linear), (D/2).
std::vector<float> RopeInvFreq(const ModelDesc& d) {
  const int half = d.headDim / 2;
  std::vector<float> inv(half);
  for (int i = 0; i < half; ++i) {
    // As HF: theta ** (arange(0, D, 2) / D), in float32.
    const float f = 1.0f / std::pow(d.ropeTheta, static_cast<float>(2 * i) / static_cast<float>(d.headDim));
    inv[i] = f;
  }
  if (d.ropeScaling == RopeScaling::kLinear) {
    for (float& f : inv) f /= d.ropeFactor;
  } else if (d.ropeScaling == RopeScaling::kLlama3) {
    const float old = static_cast<float>(d.ropeOriginalMaxPositions);
    const float lowWavelen = old / d.ropeLowFreqFactor, highWavelen = old / d.ropeHighFreqFactor;
    for (float& f : inv) {
      const float wavelen = 2.f * static_cast<float>(M_PI) / f;
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) {
        f /= d.ropeFactor;
      } else {
        const float smooth = (old / wavelen - d.ropeLowFreqFactor) / (d.ropeHighFreqFactor - d.ropeLowFreqFactor);
        f = (1.f - smooth) * f / d.ropeFactor + smooth * f;
      }
    }
  }
  return inv;
}

static_assert(cuda::kKvBlockTokens == KvPool::kBlockTokens, "the kernels' block size is the pool's");

constexpr int kMaxGraphBatch = 256;
constexpr int32_t kPadSeq = INT32_MIN;            // the KV pool's sequence id of the graphs' padding block
constexpr size_t kGraphBytes = 2u << 20;          // scratch bytes counted per captured graph (an estimate)

class CudaBackend final : public Backend {
 public:
  CudaBackend(const ModelDesc& desc, std::shared_ptr<WeightsLease> weights, std::shared_ptr<ScratchPool> scratch,
              const BackendOptions& opts)
      : d_(desc), lease_(std::move(weights)), pool_(std::move(scratch)), opts_(opts) {
    validate();
    // Tuning: the engine options (config `engine`), with the documented env overrides on top (tuning.cc).
    const CudaTuning t = WithEnvOverrides(opts.cuda);
    // Numerics: round where transformers rounds and keep the residual stream in the activation type (as
    // transformers and vLLM do), unless `exact` (fp32 residual, one rounding per op).
    hfRound_ = !t.exact;
    resT_ = hfRound_ ? et_ : ET::kF32;
    prof_.on = t.profile;
    // Programmatic dependent launch for decode passes (profiling turns it off: its events would serialise).
    pdl_ = t.pdl && !prof_.on;
    // One-token decode steps with RMSNorm, RoPE + KV write and SwiGLU folded into the products (decode.cu).
    fusedDecode_ = t.fusedDecode;
    // The same folds for quantized weights (LaunchQuantDecodeGemv; tuning quantFold, off until measured).
    quantFold_ = t.fusedDecode && t.quantFold;
    ResolveDecodeTunings(t, tunes_);
    attnSplits_ = t.attnSplits;
    attnV2Min_ = t.attnV2MinEntries;
    graphsOn_ = t.cudaGraphs;
    SS_CUDA_CHECK(cudaSetDevice(lease_->deviceOrdinal()));
    if (quantFold_) foldFits();
    SS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    persistent_ = pool_->alloc(AlignUp(kGemmWorkspace) + AlignUp(sizeof(float) * d_.headDim) +
                               (quant_ ? kDequantTile : 0));
    uint8_t* p = persistent_->data();
    if (quant_) tile_ = p + AlignUp(kGemmWorkspace) + AlignUp(sizeof(float) * d_.headDim);
    gemm_ = std::make_unique<cuda::Gemm>(p, kGemmWorkspace);
    invFreq_ = reinterpret_cast<float*>(p + AlignUp(kGemmWorkspace));
    // The paged KV cache: (L, 2, blocks x 16, KVH, D) of the activation type, one allocation.
    const size_t kvDim = static_cast<size_t>(d_.kvHeads) * d_.headDim, eb = cuda::EtBytes(et_);
    kv_ = std::make_unique<KvPool>(*pool_, d_.layers, static_cast<int>(kvDim), eb,
                                   opts_.kvCacheBytes ? opts_.kvCacheBytes
                                                      : static_cast<size_t>(opts_.maxBatch) * KvPool::BlocksFor(opts_.maxContext) *
                                                            KvPool::BlockBytes(d_.layers, static_cast<int>(kvDim), eb));
    // Graph passes pad their batch to the bucket with rows that write into a block of their own.
    if (graphsOn_ && kv_->blocksTotal() >= 2) padBlock_ = kv_->ensure({{kPadSeq, 1}})[0]->blocks[0];
    else graphsOn_ = false;
    const std::vector<float> inv = RopeInvFreq(d_);
    SS_CUDA_CHECK(cudaMemcpyAsync(invFreq_, inv.data(), inv.size() * sizeof(float), cudaMemcpyHostToDevice, stream_));
    SS_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  ~CudaBackend() override {
    cudaSetDevice(lease_->deviceOrdinal());  // the engine thread may have another device current
    if (stream_) cudaStreamSynchronize(stream_);
    dropGraphs();
    gemm_.reset();
    kv_.reset();
    if (hostStage_) cudaFreeHost(hostStage_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  int vocabSize() const { return d_.vocab; }

  // Test hook: cuda_sticky becomes a genuine sticky error inside the next pass (a trapping kernel enqueued first on
  // its stream; the pass's own checks then report cudaErrorLaunchFailure through SS_CUDA_CHECK). Other codes throw.
  void injectFault(ErrorCode code) override {
    if (code != ErrorCode::kSticky) Backend::injectFault(code);
    trapNext_ = true;
  }

  void forward(const std::vector<SeqInput>& batch, float* logits) override {
    if (!logits) Invalid("forward: logits must not be null");
    run(batch);
    const size_t bytes = batch.size() * static_cast<size_t>(d_.vocab) * sizeof(float);
    ensureHostStage(bytes);
    SS_CUDA_CHECK(cudaMemcpyAsync(hostStage_, logits_, bytes, cudaMemcpyDeviceToHost, stream_));
    SS_CUDA_CHECK(cudaStreamSynchronize(stream_));
    prof_.report(lastT_, static_cast<int>(batch.size()));
    landed_ = true;
    std::memcpy(logits, hostStage_, bytes);
  }

  void forwardSample(const std::vector<SeqInput>& batch, Sampling* sampling, int32_t* next) override {
    if (batch.empty()) return;
    if (!sampling || !next) Invalid("forwardSample: sampling and next must not be null");
    bool greedy = true;
    for (size_t b = 0; b < batch.size(); ++b)
      greedy = greedy && sampling[b].temperature <= 0.f && PlainSampling(sampling[b], d_.vocab);
    if (!greedy) {  // sample on the host with the shared sampler (same tokens as the CPU backend for equal logits;
                    // also every mask, bias, penalty and logprob request)
      std::vector<float> host(batch.size() * static_cast<size_t>(d_.vocab));
      forward(batch, host.data());
      for (size_t b = 0; b < batch.size(); ++b)
        next[b] = SampleLogits(host.data() + b * static_cast<size_t>(d_.vocab), d_.vocab, sampling[b]);
      return;
    }
    run(batch);
    const int B = static_cast<int>(batch.size());
    cuda::LaunchArgmax(logits_, B, d_.vocab, nextDev_, stream_);
    ensureHostStage(sizeof(int32_t) * B);
    SS_CUDA_CHECK(cudaMemcpyAsync(hostStage_, nextDev_, sizeof(int32_t) * B, cudaMemcpyDeviceToHost, stream_));
    SS_CUDA_CHECK(cudaStreamSynchronize(stream_));
    prof_.report(lastT_, B);
    landed_ = true;
    std::memcpy(next, hostStage_, sizeof(int32_t) * B);
  }

  void releaseSeq(int32_t seq) override { kv_->release(seq); }
  KvStats kvStats() const override {
    return {KvPool::kBlockTokens, kv_->blocksTotal() - (padBlock_ >= 0 ? 1 : 0), kv_->blocksFree()};
  }

  // n > 1: dst gets blocks of its own holding a copy of src's first `len` positions: per block, one strided
  // device-to-device copy over the 2 x layers planes (ordered on the engine's stream before the next pass).
  void forkSeq(int32_t src, int32_t dst, int len) override {
    SS_CUDA_CHECK(cudaSetDevice(lease_->deviceOrdinal()));
    const auto pairs = kv_->fork(src, dst, len);
    const size_t bytes = kv_->planeBlockBytes();
    const size_t pitch = static_cast<size_t>(kv_->plane(0, 1) - kv_->plane(0, 0));
    for (const auto& [from, to] : pairs) {
      SS_CUDA_CHECK(cudaMemcpy2DAsync(kv_->base() + to * bytes, pitch, kv_->base() + from * bytes, pitch, bytes,
                                      static_cast<size_t>(d_.layers) * 2, cudaMemcpyDeviceToDevice, stream_));
    }
  }

 private:
  const uint8_t* W(const TensorRef& t) const { return lease_->base() + t.offset; }

  // Y (T, N; ldy) = beta*Y + X (T, K; ldx; et_) W^T for a weight matrix of any dtype: Gemm::run for float matrices;
  // for quantized ones the quantized GEMV when T <= 8, else bands of rows dequantized to bf16 in tile_ and fed to the
  // bf16 GEMM (tensor cores), band by band.
  void mm(const TensorRef& t, int N, int K, const void* X, int ldx, int T, void* Y, ET yT, int ldy, float beta) {
    if (!IsQ(t.dtype)) {
      gemm_->run(W(t), et_, N, K, X, et_, ldx, T, Y, yT, ldy, beta, stream_);
      return;
    }
    const auto q = static_cast<cuda::QT>(static_cast<int>(t.dtype));
    if (T <= 8) {
      cuda::LaunchQuantGemv(W(t), q, N, K, X, ldx, T, Y, yT, ldy, beta, stream_);
      return;
    }
    const int band = static_cast<int>(std::max<size_t>(1, std::min<size_t>(N, kDequantTile / (2 * static_cast<size_t>(K)))));
    for (int n0 = 0; n0 < N; n0 += band) {
      const int rows = std::min(band, N - n0);
      cuda::LaunchDequantRows(W(t), q, n0, rows, K, tile_, stream_);
      gemm_->run(tile_, ET::kBF16, rows, K, X, et_, ldx, T, static_cast<uint8_t*>(Y) + n0 * cuda::EtBytes(yT), yT, ldy,
                 beta, stream_);
    }
  }

  void checkTensor(const TensorRef& t, size_t elems, const char* name, int layer) const {
    const std::string where = std::string(name) + (layer >= 0 ? " of layer " + std::to_string(layer) : "");
    if (!t.present) Invalid("CUDA backend: tensor " + where + " is missing");
    if (t.offset % 16 != 0) Invalid("CUDA backend: tensor " + where + " is not 16-byte aligned in the arena");
    if (t.offset + TensorBytes(t.dtype, elems) > lease_->bytes())
      Invalid("CUDA backend: tensor " + where + " lies past the end of the arena");
  }

  void validate() {
    if (!lease_ || !pool_) Invalid("CUDA backend: needs a weights lease and a scratch pool");
    if (!lease_->cuda()) Invalid("CUDA backend: the weights lease is not on a CUDA device");
    const ModelDesc& d = d_;
    if (d.hidden <= 0 || d.intermediate <= 0 || d.layers <= 0 || d.heads <= 0 || d.kvHeads <= 0 || d.vocab <= 0)
      Invalid("CUDA backend: model dimensions must be positive");
    if (d.heads % d.kvHeads != 0) Invalid("CUDA backend: heads must be a multiple of kvHeads");
    if (d.headDim % 8 != 0 || d.headDim > 256) Invalid("CUDA backend: headDim must be a multiple of 8 up to 256");
    if (static_cast<int>(d.layer.size()) != d.layers) Invalid("CUDA backend: layer count and layer table differ");
    if (lease_->numGroups() < d.layers + 2) Invalid("CUDA backend: the arena has fewer groups than layers + 2");
    if (opts_.maxContext <= 0) Invalid("CUDA backend: maxContext must be positive");
    // A model with quantized matrices runs bf16 activations; its unquantized matrices must then be bf16.
    quant_ = IsQ(d.tokEmbeddings.dtype) || IsQ(d.output.dtype);
    for (const LayerWeights& w : d.layer)
      for (const TensorRef* m : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w1, &w.w2, &w.w3}) quant_ = quant_ || IsQ(m->dtype);
    et_ = quant_ ? ET::kBF16 : ToEt(d.layer[0].wq.dtype);
    auto matT = [&](const TensorRef& t) { return quant_ && IsQ(t.dtype) ? et_ : ToEt(t.dtype); };
    const size_t C = d.hidden, F = d.intermediate, QD = static_cast<size_t>(d.heads) * d.headDim,
                 KD = static_cast<size_t>(d.kvHeads) * d.headDim;
    checkTensor(d.tokEmbeddings, static_cast<size_t>(d.vocab) * C, "tok_embeddings", -1);
    checkTensor(d.norm, C, "norm", -1);
    const TensorRef& out = d.output.present ? d.output : d.tokEmbeddings;
    checkTensor(out, static_cast<size_t>(d.vocab) * C, "output", -1);
    if (matT(out) != et_)
      Invalid(quant_ ? "CUDA backend: a quantized model's unquantized output head must be BF16"
                     : "CUDA backend: the output head's dtype differs from the layer matrices'");
    fusedQkv_.assign(d.layers, false);
    fusedGu_.assign(d.layers, false);
    foldableQkv_.assign(d.layers, false);
    foldableGu_.assign(d.layers, false);
    for (int l = 0; l < d.layers; ++l) {
      const LayerWeights& w = d.layer[l];
      checkTensor(w.attnNorm, C, "attn_norm", l);
      checkTensor(w.ffnNorm, C, "ffn_norm", l);
      checkTensor(w.wq, QD * C, "wq", l);
      checkTensor(w.wk, KD * C, "wk", l);
      checkTensor(w.wv, KD * C, "wv", l);
      checkTensor(w.wo, C * QD, "wo", l);
      checkTensor(w.w1, F * C, "w1", l);
      checkTensor(w.w3, F * C, "w3", l);
      checkTensor(w.w2, C * F, "w2", l);
      for (const TensorRef* m : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w1, &w.w2, &w.w3})
        if (matT(*m) != et_)
          Invalid(quant_ ? "CUDA backend: a quantized model's unquantized matrices must be BF16"
                         : "CUDA backend: all weight matrices must share one dtype");
      const bool anyBias = w.bq.present || w.bk.present || w.bv.present;
      if (anyBias) {
        checkTensor(w.bq, QD, "bq", l);
        checkTensor(w.bk, KD, "bk", l);
        checkTensor(w.bv, KD, "bv", l);
        if (w.bq.dtype != w.bk.dtype || w.bq.dtype != w.bv.dtype) Invalid("CUDA backend: q/k/v biases differ in dtype");
      }
      // One product over adjacent matrices of one dtype (quantized rows of one type are uniform too).
      fusedQkv_[l] = w.wq.dtype == w.wk.dtype && w.wk.dtype == w.wv.dtype &&
                     w.wk.offset == w.wq.offset + TensorBytes(w.wq.dtype, QD * C) &&
                     w.wv.offset == w.wk.offset + TensorBytes(w.wk.dtype, KD * C);
      fusedGu_[l] = w.w1.dtype == w.w3.dtype && w.w3.offset == w.w1.offset + TensorBytes(w.w1.dtype, F * C);
      // The quantized folds need quantized matrices (gate and up of one type); the constructor also asks that their x
      // row fit in shared memory on the device (foldFits).
      foldableQkv_[l] = IsQ(w.wq.dtype) && IsQ(w.wk.dtype) && IsQ(w.wv.dtype);
      foldableGu_[l] = IsQ(w.w1.dtype) && w.w3.dtype == w.w1.dtype;
    }
  }

  void ensureHostStage(size_t bytes) {
    if (bytes <= hostStageBytes_) return;
    if (hostStage_) SS_CUDA_CHECK(cudaFreeHost(hostStage_));
    hostStage_ = nullptr;
    hostStageBytes_ = 0;
    const size_t want = std::max(bytes, static_cast<size_t>(1) << 20);
    SS_CUDA_CHECK(cudaHostAlloc(&hostStage_, want, cudaHostAllocDefault));
    hostStageBytes_ = want;
  }

  // Activation buffers for up to T tokens and B sequences (grown, never shrunk).
  void ensureActivations(int T, int B) {
    if (T <= capT_ && B <= capB_) return;
    const int nT = std::max(T, capT_ ? capT_ * 2 : 64), nB = std::max(B, std::max(capB_, opts_.maxBatch));
    const size_t eb = cuda::EtBytes(et_);
    const size_t C = d_.hidden, F = d_.intermediate, QS = qkvStride(), QD = static_cast<size_t>(d_.heads) * d_.headDim;
    size_t off = 0;
    auto take = [&](size_t bytes) { const size_t o = off; off += AlignUp(bytes); return o; };
    // The residual stream is sized for fp32 (its type is fp32 or the activation type).
    const size_t oX = take(nT * C * 4), oXn = take(nT * C * eb), oQkv = take(nT * QS * eb), oAttn = take(nT * QD * eb),
                 oGu = take(nT * 2 * F * eb), oH = take(nT * F * eb), oLast = take(nB * C * eb),
                 oLogits = take(nB * static_cast<size_t>(d_.vocab) * 4), oNext = take(nB * 4),
                 oRope = take(nT * static_cast<size_t>(d_.headDim / 2) * 8),
                 oSs = take((2 * static_cast<size_t>(d_.layers) + 1) * 4);
    // Everything regrowable goes back first (graphs, metadata, partials: re-made on demand, all stale now anyway), so
    // the grown activations take one contiguous range instead of landing past the small blocks allocated after the
    // old ones (a profile's decode batch 128 found 2.37 GB free and no 2.29 GB range: fragmented).
    dropGraphs();
    meta_.reset();
    metaBytes_ = 0;
    partial_.reset();
    partialFloats_ = 0;
    act_.reset();
    ++epoch_;  // graphs captured on the old buffers are stale
    act_ = pool_->alloc(off);
    uint8_t* p = act_->data();
    x_ = p + oX;
    xn_ = p + oXn;
    qkv_ = p + oQkv;
    attn_ = p + oAttn;
    gu_ = p + oGu;
    h_ = p + oH;
    last_ = p + oLast;
    logits_ = reinterpret_cast<float*>(p + oLogits);
    nextDev_ = reinterpret_cast<int32_t*>(p + oNext);
    cosSin_ = reinterpret_cast<float*>(p + oRope);
    ss_ = reinterpret_cast<float*>(p + oSs);
    capT_ = nT;
    capB_ = nB;
  }

  void ensureMeta(size_t bytes) {
    if (bytes <= metaBytes_) return;
    meta_.reset();
    ++epoch_;
    const size_t want = std::max(bytes * 2, static_cast<size_t>(64) << 10);
    meta_ = pool_->alloc(want);
    metaBytes_ = want;
  }

  void ensurePartial(size_t floats) {
    if (floats <= partialFloats_) return;
    partial_.reset();
    ++epoch_;
    partial_ = pool_->alloc(floats * 2 * sizeof(float));
    partialFloats_ = floats * 2;
  }

  size_t qkvStride() const { return static_cast<size_t>(d_.heads + 2 * d_.kvHeads) * d_.headDim; }

  // Enqueues the whole forward pass; leaves (B, V) fp32 logits at logits_ on the device.
  void run(const std::vector<SeqInput>& batch) {
    if (batch.empty()) Invalid("forward: empty batch");
    SS_CUDA_CHECK(cudaSetDevice(lease_->deviceOrdinal()));
    const int B = static_cast<int>(batch.size());
    const int maxCtx0 = opts_.maxContext;
    std::unordered_set<int32_t> seen;
    std::vector<std::pair<int32_t, int>> want;
    size_t totalT = 0;
    for (const SeqInput& s : batch) {
      if (!seen.insert(s.seq).second) Invalid("forward: sequence " + std::to_string(s.seq) + " appears twice in a batch");
      if (s.n <= 0 || !s.tokens) Invalid("forward: each sequence needs at least one token");
      if (s.pos < 0 || static_cast<int64_t>(s.pos) + s.n > maxCtx0)
        Invalid("forward: positions " + std::to_string(s.pos) + ".." + std::to_string(s.pos + s.n - 1) +
                " exceed the context of " + std::to_string(maxCtx0));
      for (int i = 0; i < s.n; ++i)
        if (s.tokens[i] < 0 || s.tokens[i] >= d_.vocab)
          Invalid("forward: token id " + std::to_string(s.tokens[i]) + " is outside the vocabulary of " +
                  std::to_string(d_.vocab));
      const int len = kv_->len(s.seq);
      if (s.pos > len)  // the same rule and message as the CPU backend
        Invalid("sequence " + std::to_string(s.seq) + " starts at position " + std::to_string(s.pos) + " but holds " +
                std::to_string(len) + " positions");
      totalT += s.n;
      want.push_back({s.seq, s.pos + s.n});
    }
    if (totalT > static_cast<size_t>(1) << 20) Invalid("forward: too many tokens in one pass");
    // A graph pass (every row a one-token decode, graphs on): padded to its bucket Bk, metadata of a fixed layout.
    const int Bk = graphBucket(batch);
    const int T = Bk ? Bk : static_cast<int>(totalT), Breal = B;
    // KV blocks of the pass (before any work is enqueued, so a budget error leaves nothing half done).
    ensureActivations(T, Bk ? Bk : B);
    std::vector<KvPool::Seq*> seqState = kv_->ensure(want);
    const uint64_t kvb = reinterpret_cast<uint64_t>(kv_->base());
    const int cap = kv_->poolTokens();

    // Host-side metadata, uploaded in one copy: tokens, positions, KV bases, last rows, attention entries.
    const bool flash = cuda::FlashSupported(et_, d_.headDim);
    // Every row's and entry's cache base is the pool's; the block tables (all sequences', one after the other) map
    // positions to rows of it.
    std::vector<int32_t> tokens(T), pos(T), slot(T), lastRows(B), eRow, eCtx, eTab, tables;
    std::vector<uint64_t> kvBase(T, kvb), eKv;
    struct Prefill { int row0, n, pos0; size_t tab; };
    std::vector<Prefill> prefills;
    int row = 0, maxCtx = 0;
    if (Bk) tables.push_back(padBlock_);  // the padding rows' table (offset 0)
    for (int b = 0; b < B; ++b) {
      const SeqInput& s = batch[b];
      const std::vector<int32_t>& table = seqState[b]->blocks;
      const int tab = static_cast<int>(tables.size());
      tables.insert(tables.end(), table.begin(), table.end());
      const bool useFlash = flash && s.n > 1;
      if (useFlash) prefills.push_back({row, s.n, s.pos, static_cast<size_t>(tab)});
      for (int i = 0; i < s.n; ++i, ++row) {
        tokens[row] = s.tokens[i];
        pos[row] = s.pos + i;
        slot[row] = KvPool::Slot(table, s.pos + i);
        if (!useFlash) {
          eRow.push_back(row);
          eCtx.push_back(s.pos + i + 1);
          eKv.push_back(kvb);
          eTab.push_back(tab);
          maxCtx = std::max(maxCtx, s.pos + i + 1);
        }
      }
      lastRows[b] = row - 1;
    }
    if (Bk) {
      // Padding rows: token 0 at position 0 of the padding block; their logits are never read. The tables take a
      // fixed size and the context bound is maxContext, so every replay of the bucket sees the same layout.
      lastRows.resize(Bk);
      for (; row < Bk; ++row) {
        tokens[row] = 0;
        pos[row] = 0;
        slot[row] = padBlock_ * KvPool::kBlockTokens;
        eRow.push_back(row);
        eCtx.push_back(1);
        eKv.push_back(kvb);
        eTab.push_back(0);
        lastRows[row] = row;
      }
      tables.resize(static_cast<size_t>(Bk) * KvPool::BlocksFor(opts_.maxContext) + 1, padBlock_);
      maxCtx = opts_.maxContext;
    }
    const int E = static_cast<int>(eRow.size());
    const size_t NT = tables.size();
    size_t off = 0;
    auto place = [&](size_t bytes) { const size_t o = off; off += AlignUp(bytes); return o; };
    const size_t oTok = place(4 * T), oPos = place(4 * T), oKv = place(8 * T), oLast = place(4 * lastRows.size()),
                 oERow = place(4 * E), oECtx = place(4 * E), oEKv = place(8 * E), oSlot = place(4 * T),
                 oETab = place(4 * E), oTab = place(4 * NT);
    const int Bp = static_cast<int>(lastRows.size());  // rows of the head: the batch, padded in a graph pass
    ensureMeta(off);
    // Large enough for the logits read-back too: never regrown while this pass's upload is pending.
    ensureHostStage(std::max(off, static_cast<size_t>(Bp) * d_.vocab * sizeof(float)));
    uint8_t* hs = static_cast<uint8_t*>(hostStage_);
    std::memcpy(hs + oTok, tokens.data(), 4 * T);
    std::memcpy(hs + oPos, pos.data(), 4 * T);
    std::memcpy(hs + oKv, kvBase.data(), 8 * T);
    std::memcpy(hs + oLast, lastRows.data(), 4 * Bp);
    std::memcpy(hs + oSlot, slot.data(), 4 * T);
    std::memcpy(hs + oTab, tables.data(), 4 * NT);
    if (E) {
      std::memcpy(hs + oERow, eRow.data(), 4 * E);
      std::memcpy(hs + oECtx, eCtx.data(), 4 * E);
      std::memcpy(hs + oEKv, eKv.data(), 8 * E);
      std::memcpy(hs + oETab, eTab.data(), 4 * E);
    }
    uint8_t* md = meta_->data();
    if (trapNext_) {  // test hook: the first work of this pass on its stream traps (everything above only checks)
      trapNext_ = false;
      cuda::LaunchTrap(stream_);
    }
    SS_CUDA_CHECK(cudaMemcpyAsync(md, hs, off, cudaMemcpyHostToDevice, stream_));
    const int32_t* dTok = reinterpret_cast<const int32_t*>(md + oTok);
    const int32_t* dPos = reinterpret_cast<const int32_t*>(md + oPos);
    const uint64_t* dKv = reinterpret_cast<const uint64_t*>(md + oKv);
    const int32_t* dLast = reinterpret_cast<const int32_t*>(md + oLast);
    const int32_t* dSlot = reinterpret_cast<const int32_t*>(md + oSlot);
    const int32_t* dTab = reinterpret_cast<const int32_t*>(md + oTab);
    cuda::AttnEntries entries;
    entries.qRow = reinterpret_cast<const int32_t*>(md + oERow);
    entries.ctx = reinterpret_cast<const int32_t*>(md + oECtx);
    entries.kvBase = reinterpret_cast<const uint64_t*>(md + oEKv);
    entries.count = E;
    entries.maxCtx = maxCtx;
    entries.table = dTab;
    entries.tableOff = reinterpret_cast<const int32_t*>(md + oETab);
    const int splits = !E ? 1 : attnSplits_ ? std::min(attnSplits_, (maxCtx + 31) / 32)
                     : useV2(E) ? cuda::DecodeSplitsV2(et_, d_.heads, d_.kvHeads, d_.headDim, E, maxCtx)
                               : cuda::DecodeSplits(et_, d_.heads, d_.kvHeads, d_.headDim, E, maxCtx);
    if (E && splits > 1) ensurePartial(static_cast<size_t>(E) * d_.heads * splits * (d_.headDim + 2));

    const int C = d_.hidden, F = d_.intermediate, H = d_.heads, KVH = d_.kvHeads, D = d_.headDim;
    const int QS = static_cast<int>(qkvStride()), QD = H * D, KD = KVH * D;
    const size_t eb = cuda::EtBytes(et_);
    const float scale = 1.f / std::sqrt(static_cast<float>(D));
    const cuda::RopeParams rope{invFreq_, cosSin_, d_.ropeInterleaved, hfRound_};
    lastT_ = T;
    // A single decode row (T = 1) with a 2-byte residual stream: the folded decode kernels (decode.cu).
    const bool fused = fusedDecode_ && !quant_ && T == 1 && prefills.empty() && E == 1 && resT_ == et_ &&
                       cuda::DecodeGemvSupported(et_, C) && cuda::DecodeGemvSupported(et_, QD) &&
                       cuda::DecodeGemvSupported(et_, F);
    // A single decode row of a quantized model with a bf16 residual stream: q|k|v and gate|up fold the RMSNorm, RoPE +
    // the KV write and SwiGLU (LaunchQuantDecodeGemv) where their matrices are quantized; the rest runs as below.
    const bool qfold = quantFold_ && quant_ && T == 1 && prefills.empty() && E == 1 && resT_ == et_;
    auto mark = [&](const char* n) { prof_.mark(n, stream_); };

    // Short kernels (decode: a few rows) may start while their predecessor drains; see common.cuh.
    struct PdlScope {
      explicit PdlScope(bool on) { cuda::SetPdl(on); }
      ~PdlScope() { cuda::SetPdl(false); }
    } pdlScope(pdl_ && T <= 8 && prefills.empty());
    auto enqueue = [&] {
    mark("start");
    if (fused) {
      runDecodeStep(dTok, dPos, dKv, dSlot, entries, splits);
      return;
    }
    waitG(0);
    if (IsQ(d_.tokEmbeddings.dtype))
      cuda::LaunchQuantEmbedding(dTok, T, W(d_.tokEmbeddings), static_cast<cuda::QT>(static_cast<int>(d_.tokEmbeddings.dtype)),
                                 C, x_, resT_, stream_);
    else
      cuda::LaunchEmbedding(dTok, T, W(d_.tokEmbeddings), ToEt(d_.tokEmbeddings.dtype), C, x_, resT_, stream_);
    cuda::LaunchRopeTable(dPos, T, invFreq_, D / 2, cosSin_, stream_);
    mark("embed");
    for (int l = 0; l < d_.layers; ++l) {
      const LayerWeights& w = d_.layer[l];
      waitG(l + 1);
      mark("wait");
      if (qfold && foldableQkv_[l]) {
        foldQkv(l, dPos, dKv, dSlot, cap);
        mark("qkv+rope+kv");
      } else {
        cuda::LaunchRmsNorm(x_, resT_, nullptr, T, C, W(w.attnNorm), ToEt(w.attnNorm.dtype), d_.rmsEps, xn_, et_,
                            hfRound_, stream_);
        mark("norm");
        if (fusedQkv_[l]) {
          mm(w.wq, QS, C, xn_, C, T, qkv_, et_, QS, 0.f);
        } else {
          mm(w.wq, QD, C, xn_, C, T, qkv_, et_, QS, 0.f);
          mm(w.wk, KD, C, xn_, C, T, qkv_ + QD * eb, et_, QS, 0.f);
          mm(w.wv, KD, C, xn_, C, T, qkv_ + (QD + KD) * eb, et_, QS, 0.f);
        }
        mark("gemm.qkv");
        const bool bias = w.bq.present;
        cuda::LaunchQkvPost(qkv_, et_, T, H, KVH, D, bias ? W(w.bq) : nullptr, bias ? W(w.bk) : nullptr,
                            bias ? W(w.bv) : nullptr, bias ? ToEt(w.bq.dtype) : et_, dPos, dKv, l, cap, rope, stream_,
                            dSlot);
        mark("rope+kv");
      }
      for (const Prefill& p : prefills)
        cuda::LaunchFlashPrefill(qkv_, QS, et_, p.row0, p.n, p.pos0, reinterpret_cast<const void*>(kvb), H, KVH, D,
                                 l, cap, scale, attn_, QD, stream_, dTab + p.tab);
      if (E)
        (useV2(entries.count) ? cuda::LaunchDecodeAttentionV2 : cuda::LaunchDecodeAttention)(
            qkv_, QS, et_, entries, H, KVH, D, l, cap, scale, splits,
            splits > 1 ? static_cast<float*>(static_cast<void*>(partial_->data())) : nullptr, attn_, stream_);
      mark("attention");
      mm(w.wo, C, QD, attn_, QD, T, x_, resT_, C, 1.f);
      mark("gemm.o");
      if (qfold && foldableGu_[l]) {
        foldGateUp(l);
        mark("gate_up+swiglu");
      } else {
        cuda::LaunchRmsNorm(x_, resT_, nullptr, T, C, W(w.ffnNorm), ToEt(w.ffnNorm.dtype), d_.rmsEps, xn_, et_,
                            hfRound_, stream_);
        mark("norm");
        if (fusedGu_[l]) {
          mm(w.w1, 2 * F, C, xn_, C, T, gu_, et_, 2 * F, 0.f);
        } else {
          mm(w.w1, F, C, xn_, C, T, gu_, et_, 2 * F, 0.f);
          mm(w.w3, F, C, xn_, C, T, gu_ + static_cast<size_t>(F) * eb, et_, 2 * F, 0.f);
        }
        mark("gemm.gate_up");
        cuda::LaunchSwiGlu(gu_, T, F, h_, et_, hfRound_, stream_);
        mark("swiglu");
      }
      mm(w.w2, C, F, h_, F, T, x_, resT_, C, 1.f);
      mark("gemm.down");
    }
    waitG(d_.layers + 1);
    const TensorRef& out = d_.output.present ? d_.output : d_.tokEmbeddings;
    cuda::LaunchRmsNorm(x_, resT_, dLast, Bp, C, W(d_.norm), ToEt(d_.norm.dtype), d_.rmsEps, last_, et_, hfRound_,
                        stream_);
    mm(out, d_.vocab, C, last_, C, Bp, logits_, ET::kF32, d_.vocab, 0.f);
    mark("head");
    };
    if (!Bk || !launchGraph(Bk, enqueue)) enqueue();
    for (int b = 0; b < Breal; ++b) seqState[b]->len = batch[b].pos + batch[b].n;
  }

  // The folded q|k|v of a quantized decode step (LaunchQuantDecodeGemv): attention norm, products, bias, RoPE, q into
  // qkv_ and k, v into the cache, in one launch for up to two types (q|k|v of Q4_K_M: q|k Q4_K, v Q6_K).
  void foldQkv(int l, const int32_t* dPos, const uint64_t* dKv, const int32_t* dSlot, int cap) {
    const LayerWeights& w = d_.layer[l];
    const int QD = d_.heads * d_.headDim, KD = d_.kvHeads * d_.headDim;
    cuda::DecodeGemvArgs a = foldArgs(w.wq, w.attnNorm, qkv_);
    qkvRopeArgs(a, l, dPos, dKv, dSlot, cap);
    // Runs of one type over q, k, v; two runs go in one launch, a third (three types) in a second.
    const TensorRef* m[3] = {&w.wq, &w.wk, &w.wv};
    const int end[3] = {QD, QD + KD, QD + 2 * KD};
    cuda::QuantRows runs[3];
    int n = 0;
    for (int i = 0; i < 3; ++i) {
      const auto t = static_cast<cuda::QT>(static_cast<int>(m[i]->dtype));
      if (n > 0 && runs[n - 1].type == t) runs[n - 1].r1 = end[i];
      else runs[n++] = cuda::QuantRows{t, i == 0 ? 0 : end[i - 1], end[i]};
    }
    cuda::LaunchQuantDecodeGemv(cuda::DecodeOut::kQkvRope, a, runs, std::min(n, 2), stream_);
    if (n == 3) cuda::LaunchQuantDecodeGemv(cuda::DecodeOut::kQkvRope, a, runs + 2, 1, stream_);
  }

  // The quantized folds only where every matrix's x row fits in one block's shared memory on this device.
  void foldFits() {
    auto fits = [&](const TensorRef& t) {
      return cuda::QuantDecodeFits(static_cast<cuda::QT>(static_cast<int>(t.dtype)), d_.hidden);
    };
    for (int l = 0; l < d_.layers; ++l) {
      const LayerWeights& w = d_.layer[l];
      foldableQkv_[l] = foldableQkv_[l] && fits(w.wq) && fits(w.wk) && fits(w.wv);
      foldableGu_[l] = foldableGu_[l] && fits(w.w1);
    }
  }

  // The folded gate|up of a quantized decode step: FFN norm, both products and SwiGLU into h_, one launch.
  void foldGateUp(int l) {
    const LayerWeights& w = d_.layer[l];
    const int F = d_.intermediate;
    cuda::DecodeGemvArgs a = foldArgs(w.w1, w.ffnNorm, h_);
    a.w1 = W(w.w3);
    a.N = a.seg2 = 2 * F;
    a.seg1 = F;
    const cuda::QuantRows run{static_cast<cuda::QT>(static_cast<int>(w.w1.dtype)), 0, 2 * F};
    cuda::LaunchQuantDecodeGemv(cuda::DecodeOut::kSwiGlu, a, &run, 1, stream_);
  }

  // The q|k|v fields of a decode product's arguments (DecodeOut::kQkvRope) for layer l: the three weight segments,
  // heads, biases, the step's RoPE table, position and KV cache.
  void qkvRopeArgs(cuda::DecodeGemvArgs& a, int l, const int32_t* dPos, const uint64_t* dKv, const int32_t* dSlot,
                   int cap) {
    const LayerWeights& w = d_.layer[l];
    const int QD = d_.heads * d_.headDim, KD = d_.kvHeads * d_.headDim;
    a.w1 = W(w.wk);
    a.w2 = W(w.wv);
    a.N = QD + 2 * KD;
    a.seg1 = QD;
    a.seg2 = QD + KD;
    a.H = d_.heads;
    a.KVH = d_.kvHeads;
    a.D = d_.headDim;
    a.interleaved = d_.ropeInterleaved;
    if (w.bq.present) {
      a.bq = W(w.bq);
      a.bk = W(w.bk);
      a.bv = W(w.bv);
      a.biasT = ToEt(w.bq.dtype);
    }
    a.cosSin = cosSin_;
    a.pos = dPos;
    a.kvBase = dKv;
    a.layer = l;
    a.cap = cap;
    a.slot = dSlot;
  }

  // What the two folds share: the first weight segment, x_ normalised with `norm` inside the product, bf16 in and out.
  cuda::DecodeGemvArgs foldArgs(const TensorRef& w0, const TensorRef& norm, void* y) {
    cuda::DecodeGemvArgs a;
    a.w0 = W(w0);
    a.K = d_.hidden;
    a.wT = et_;
    a.x = x_;
    a.normW = W(norm);
    a.normT = ToEt(norm.dtype);
    a.eps = d_.rmsEps;
    a.hfRound = hfRound_;
    a.y = y;
    a.yT = et_;
    return a;
  }

  // Stream-ordered wait for weight group g; skipped while capturing a graph (captured only after a pass completed,
  // so every group has landed, and the lease keeps them there).
  void waitG(int g) {
    if (!capturing_) lease_->waitGroup(g, stream_);
  }

  // The bucket (1, 2, 4, ..., 256) of a pass that may run as a graph, else 0: graphs on, not profiling, every row a
  // one-token decode, the weights landed (a pass completed), and the bucket's third pass or later (captured lazily,
  // never on the swap-in's first passes).
  int graphBucket(const std::vector<SeqInput>& batch) {
    if (!graphsOn_ || prof_.on || !landed_) return 0;
    for (const SeqInput& s : batch)
      if (s.n != 1) return 0;
    int bk = 1;
    while (bk < static_cast<int>(batch.size())) bk *= 2;
    if (bk > kMaxGraphBatch) return 0;
    Graph& g = graphs_[bk];
    return ++g.uses >= 3 ? bk : 0;
  }

  // Replays the bucket's graph (capturing it first when missing or stale: buffers regrown since). False when the
  // capture failed: graphs are then off for this backend (one line on stderr) and the caller enqueues normally.
  bool launchGraph(int bk, const std::function<void()>& enqueue) {
    Graph& g = graphs_[bk];
    if (!g.exec || g.epoch != epoch_) {
      if (g.exec) cudaGraphExecDestroy(g.exec);
      g.exec = nullptr;
      g.mem.reset();
      g.mem = pool_->alloc(kGraphBytes);  // its memory counted in the scratch budget (budget error: the pass fails)
      cudaGraph_t graph = nullptr;
      std::string why;
      SS_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      capturing_ = true;
      try {
        enqueue();
      } catch (const std::exception& e) {
        why = e.what();
      }
      capturing_ = false;
      const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
      if (why.empty() && end != cudaSuccess) why = cudaGetErrorString(end);
      if (why.empty()) {
        const cudaError_t ie = cudaGraphInstantiate(&g.exec, graph, 0);
        if (ie != cudaSuccess) {
          why = cudaGetErrorString(ie);
          g.exec = nullptr;
        }
      }
      if (graph) cudaGraphDestroy(graph);
      if (!why.empty()) {
        (void)cudaGetLastError();
        g.mem.reset();
        dropGraphs();
        graphsOn_ = false;
        std::fprintf(stderr, "swapserve engine: CUDA graph capture of a %d-row decode step failed (%s); decode steps run without graphs\n", bk, why.c_str());
        return false;
      }
      g.epoch = epoch_;
    }
    SS_CUDA_CHECK(cudaGraphLaunch(g.exec, stream_));
    return true;
  }

  void dropGraphs() {
    for (auto& [bk, g] : graphs_) {
      if (g.exec) cudaGraphExecDestroy(g.exec);
      g.exec = nullptr;
      g.mem.reset();
    }
  }

  // One decode token (T = 1, one sequence, 2-byte types): five kernels a layer (decode.cu). Slot 2l of ss_
  // receives the sum of squares of the residual stream entering layer l's attention norm, slot 2l+1 the one entering
  // its MLP norm, slot 2L the final norm's; the embedding kernel writes slot 0 and zeroes the rest.
  void runDecodeStep(const int32_t* dTok, const int32_t* dPos, const uint64_t* dKv, const int32_t* dSlot,
                     const cuda::AttnEntries& entries, int splits) {
    const int C = d_.hidden, F = d_.intermediate, H = d_.heads, KVH = d_.kvHeads, D = d_.headDim, L = d_.layers;
    const int QD = H * D, KD = KVH * D, QS = QD + 2 * KD;
    const float scale = 1.f / std::sqrt(static_cast<float>(D));
    auto mark = [&](const char* n) { prof_.mark(n, stream_); };
    auto matrix = [&](const TensorRef& t, int N, int K, const void* x) {
      cuda::DecodeGemvArgs a;
      a.w0 = W(t);
      a.seg1 = a.seg2 = a.N = N;
      a.K = K;
      a.wT = et_;
      a.x = x;
      a.eps = d_.rmsEps;
      a.hfRound = hfRound_;
      a.yT = et_;
      return a;
    };
    waitG(0);
    cuda::LaunchDecodeEmbed(dTok, W(d_.tokEmbeddings), ToEt(d_.tokEmbeddings.dtype), C, x_, resT_, ss_, 2 * L + 1,
                            dPos, invFreq_, D / 2, cosSin_, stream_);
    mark("embed");
    for (int l = 0; l < L; ++l) {
      const LayerWeights& w = d_.layer[l];
      waitG(l + 1);
      mark("wait");
      cuda::DecodeGemvArgs qkv = matrix(w.wq, QS, C, x_);
      qkvRopeArgs(qkv, l, dPos, dKv, dSlot, kv_->poolTokens());
      qkv.ssIn = ss_ + 2 * l;
      qkv.normW = W(w.attnNorm);
      qkv.normT = ToEt(w.attnNorm.dtype);
      qkv.y = qkv_;
      cuda::LaunchDecodeGemv(cuda::DecodeIn::kNorm, cuda::DecodeOut::kQkvRope, qkv, tunes_[kQkvOp], stream_);
      mark("qkv+rope+kv");
      (useV2(entries.count) ? cuda::LaunchDecodeAttentionV2 : cuda::LaunchDecodeAttention)(
          qkv_, QS, et_, entries, H, KVH, D, l, kv_->poolTokens(), scale, splits,
          splits > 1 ? static_cast<float*>(static_cast<void*>(partial_->data())) : nullptr, attn_, stream_);
      mark("attention");
      cuda::DecodeGemvArgs o = matrix(w.wo, C, QD, attn_);
      o.y = x_;
      o.ssOut = ss_ + 2 * l + 1;
      cuda::LaunchDecodeGemv(cuda::DecodeIn::kPlain, cuda::DecodeOut::kResidual, o, tunes_[kOOp], stream_);
      mark("o+residual");
      cuda::DecodeGemvArgs gu = matrix(w.w1, 2 * F, C, x_);
      gu.w1 = W(w.w3);
      gu.seg1 = F;
      gu.seg2 = 2 * F;
      gu.ssIn = ss_ + 2 * l + 1;
      gu.normW = W(w.ffnNorm);
      gu.normT = ToEt(w.ffnNorm.dtype);
      gu.y = h_;
      cuda::LaunchDecodeGemv(cuda::DecodeIn::kNorm, cuda::DecodeOut::kSwiGlu, gu, tunes_[kGuOp], stream_);
      mark("gate_up+swiglu");
      cuda::DecodeGemvArgs down = matrix(w.w2, C, F, h_);
      down.y = x_;
      down.ssOut = ss_ + 2 * l + 2;
      cuda::LaunchDecodeGemv(cuda::DecodeIn::kPlain, cuda::DecodeOut::kResidual, down, tunes_[kDownOp], stream_);
      mark("down+residual");
    }
    waitG(L + 1);
    cuda::DecodeGemvArgs head = matrix(d_.output.present ? d_.output : d_.tokEmbeddings, d_.vocab, C, x_);
    head.ssIn = ss_ + 2 * L;
    head.normW = W(d_.norm);
    head.normT = ToEt(d_.norm.dtype);
    head.y = logits_;
    head.yT = ET::kF32;
    cuda::LaunchDecodeGemv(cuda::DecodeIn::kNorm, cuda::DecodeOut::kStore, head, tunes_[kHeadOp], stream_);
    mark("head");
  }

  ModelDesc d_;
  std::shared_ptr<WeightsLease> lease_;
  std::shared_ptr<ScratchPool> pool_;
  BackendOptions opts_;
  ET et_ = ET::kBF16;
  bool quant_ = false;       // some weight matrices are GGUF block-quantized (activations bf16)
  uint8_t* tile_ = nullptr;  // kDequantTile bytes of dequantized rows (quantized prefill products)
  std::vector<bool> fusedQkv_, fusedGu_;
  std::vector<bool> foldableQkv_, foldableGu_;  // the quantized folds apply (quant_; per layer)
  cudaStream_t stream_ = nullptr;
  std::shared_ptr<DeviceBlock> persistent_, act_, meta_, partial_;
  std::unique_ptr<cuda::Gemm> gemm_;
  float* invFreq_ = nullptr;
  int capT_ = 0, capB_ = 0;
  size_t metaBytes_ = 0, partialFloats_ = 0;
  uint8_t* x_ = nullptr;  // (T, C) residual stream, of resT_
  ET resT_ = ET::kF32;
  bool hfRound_ = true;
  bool pdl_ = true;
  bool fusedDecode_ = true;
  bool quantFold_ = false;  // tuning quantFold (and fusedDecode)
  int attnSplits_ = 0;  // 0: DecodeSplits decides
  int attnV2Min_ = 0;  // decode attention v2 for >= this many decode rows (LaunchDecodeAttentionV2; it falls back for shapes it lacks); 0 never
  bool useV2(int entries) const { return attnV2Min_ > 0 && entries >= attnV2Min_; }
  cuda::DecodeTuning tunes_[kDecodeOps];  // tuning.h: the measured defaults unless tuned
  float* ss_ = nullptr;  // (2L + 1) sums of squares of the residual stream in a fused decode step
  Profiler prof_;
  int lastT_ = 0;
  uint8_t *xn_ = nullptr, *qkv_ = nullptr, *attn_ = nullptr, *gu_ = nullptr, *h_ = nullptr, *last_ = nullptr;
  float* logits_ = nullptr;  // (B, V)
  int32_t* nextDev_ = nullptr;
  float* cosSin_ = nullptr;  // (T, D/2, 2) RoPE cos/sin of this pass's positions
  void* hostStage_ = nullptr;
  size_t hostStageBytes_ = 0;
  std::unique_ptr<KvPool> kv_;
  // CUDA graphs of decode steps by bucket (tuning cudaGraphs).
  struct Graph {
    cudaGraphExec_t exec = nullptr;
    uint64_t epoch = 0;
    int uses = 0;
    std::shared_ptr<DeviceBlock> mem;  // kGraphBytes of scratch standing for the graph's memory
  };
  std::unordered_map<int, Graph> graphs_;
  bool graphsOn_ = false, capturing_ = false, landed_ = false;
  bool trapNext_ = false;  // test hook (injectFault): the next pass enqueues a trapping kernel first
  uint64_t epoch_ = 0;   // bumped whenever a buffer a graph reads (activations, metadata, partials) is reallocated
  int32_t padBlock_ = -1;  // the KV block the graphs' padding rows write into
};

}  // namespace

std::unique_ptr<Backend> MakeCudaBackend(const ModelDesc& desc, std::shared_ptr<WeightsLease> weights,
                                         std::shared_ptr<ScratchPool> scratch, const BackendOptions& opts) {
  return std::make_unique<CudaBackend>(desc, std::move(weights), std::move(scratch), opts);
}

}  // namespace swapserve::engine
