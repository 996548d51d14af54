// The CUDA engine backend: a Llama-family forward pass (Llama 2/3/3.1, Mistral, Qwen2) that reads the weights in
// place from the runtime's GPU arena, keeps each sequence's KV cache in the runtime's scratch pool, and runs every
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
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/cuda_check.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/kernels.h"
#include "engine/cuda/profiler.h"
#include "engine/cuda/tuning.h"
#include "engine/backend.h"

namespace swapserve::engine {

namespace {

using cuda::ET;

constexpr size_t kAlign = 256;
constexpr size_t kGemmWorkspace = 32u << 20;  // bytes

size_t AlignUp(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
ET ToEt(DType d) { return static_cast<ET>(static_cast<int>(d)); }
size_t DBytes(DType d) { return d == DType::kF32 ? 4 : 2; }

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

struct SeqState {
  std::shared_ptr<DeviceBlock> kv;  // (L, 2, cap, KVH, D) of the activation type
  int len = 0;                      // positions filled (0 .. len-1 are valid), as the CPU backend counts them
};

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
    ResolveDecodeTunings(t, tunes_);
    attnSplits_ = t.attnSplits;
    SS_CUDA_CHECK(cudaSetDevice(lease_->deviceOrdinal()));
    SS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    persistent_ = pool_->alloc(AlignUp(kGemmWorkspace) + AlignUp(sizeof(float) * d_.headDim));
    uint8_t* p = persistent_->data();
    gemm_ = std::make_unique<cuda::Gemm>(p, kGemmWorkspace);
    invFreq_ = reinterpret_cast<float*>(p + AlignUp(kGemmWorkspace));
    const std::vector<float> inv = RopeInvFreq(d_);
    SS_CUDA_CHECK(cudaMemcpyAsync(invFreq_, inv.data(), inv.size() * sizeof(float), cudaMemcpyHostToDevice, stream_));
    SS_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  ~CudaBackend() override {
    cudaSetDevice(lease_->deviceOrdinal());  // the engine thread may have another device current
    if (stream_) cudaStreamSynchronize(stream_);
    gemm_.reset();
    seqs_.clear();
    if (hostStage_) cudaFreeHost(hostStage_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  int vocabSize() const { return d_.vocab; }

  void forward(const std::vector<SeqInput>& batch, float* logits) override {
    if (!logits) Invalid("forward: logits must not be null");
    run(batch);
    const size_t bytes = batch.size() * static_cast<size_t>(d_.vocab) * sizeof(float);
    ensureHostStage(bytes);
    SS_CUDA_CHECK(cudaMemcpyAsync(hostStage_, logits_, bytes, cudaMemcpyDeviceToHost, stream_));
    SS_CUDA_CHECK(cudaStreamSynchronize(stream_));
    prof_.report(lastT_, static_cast<int>(batch.size()));
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
    std::memcpy(next, hostStage_, sizeof(int32_t) * B);
  }

  void releaseSeq(int32_t seq) override { seqs_.erase(seq); }

  // n > 1: a device-to-device copy of the first `len` positions of src's (L, 2, cap, KVH, D) cache into a new
  // block for dst (one strided copy, ordered on the engine's stream before the next pass).
  void forkSeq(int32_t src, int32_t dst, int len) override {
    auto it = seqs_.find(src);
    if (src == dst || it == seqs_.end() || len < 0 || len > it->second.len)
      Invalid("fork: sequence " + std::to_string(src) + " holds no " + std::to_string(len) + " positions to copy");
    SS_CUDA_CHECK(cudaSetDevice(lease_->deviceOrdinal()));
    seqs_.erase(dst);
    SeqState st{pool_->alloc(kvBytesPerSeq()), len};
    const SeqState& from = seqs_.at(src);
    if (len > 0) {
      const size_t row = static_cast<size_t>(d_.kvHeads) * d_.headDim * cuda::EtBytes(et_);
      const size_t pitch = row * opts_.maxContext;
      SS_CUDA_CHECK(cudaMemcpy2DAsync(st.kv->data(), pitch, from.kv->data(), pitch, row * len,
                                      static_cast<size_t>(d_.layers) * 2, cudaMemcpyDeviceToDevice, stream_));
    }
    seqs_.emplace(dst, std::move(st));
  }

 private:
  const uint8_t* W(const TensorRef& t) const { return lease_->base() + t.offset; }

  void checkTensor(const TensorRef& t, size_t elems, const char* name, int layer) const {
    const std::string where = std::string(name) + (layer >= 0 ? " of layer " + std::to_string(layer) : "");
    if (!t.present) Invalid("CUDA backend: tensor " + where + " is missing");
    if (t.offset % 16 != 0) Invalid("CUDA backend: tensor " + where + " is not 16-byte aligned in the arena");
    if (t.offset + elems * DBytes(t.dtype) > lease_->bytes())
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
    et_ = ToEt(d.layer[0].wq.dtype);
    const size_t C = d.hidden, F = d.intermediate, QD = static_cast<size_t>(d.heads) * d.headDim,
                 KD = static_cast<size_t>(d.kvHeads) * d.headDim;
    checkTensor(d.tokEmbeddings, static_cast<size_t>(d.vocab) * C, "tok_embeddings", -1);
    checkTensor(d.norm, C, "norm", -1);
    const TensorRef& out = d.output.present ? d.output : d.tokEmbeddings;
    checkTensor(out, static_cast<size_t>(d.vocab) * C, "output", -1);
    if (ToEt(out.dtype) != et_) Invalid("CUDA backend: the output head's dtype differs from the layer matrices'");
    fusedQkv_.assign(d.layers, false);
    fusedGu_.assign(d.layers, false);
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
        if (ToEt(m->dtype) != et_) Invalid("CUDA backend: all weight matrices must share one dtype");
      const bool anyBias = w.bq.present || w.bk.present || w.bv.present;
      if (anyBias) {
        checkTensor(w.bq, QD, "bq", l);
        checkTensor(w.bk, KD, "bk", l);
        checkTensor(w.bv, KD, "bv", l);
        if (w.bq.dtype != w.bk.dtype || w.bq.dtype != w.bv.dtype) Invalid("CUDA backend: q/k/v biases differ in dtype");
      }
      const size_t eb = cuda::EtBytes(et_);
      fusedQkv_[l] = w.wk.offset == w.wq.offset + QD * C * eb && w.wv.offset == w.wk.offset + KD * C * eb;
      fusedGu_[l] = w.w3.offset == w.w1.offset + F * C * eb;
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
    act_.reset();
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
    const size_t want = std::max(bytes * 2, static_cast<size_t>(64) << 10);
    meta_ = pool_->alloc(want);
    metaBytes_ = want;
  }

  void ensurePartial(size_t floats) {
    if (floats <= partialFloats_) return;
    partial_.reset();
    partial_ = pool_->alloc(floats * 2 * sizeof(float));
    partialFloats_ = floats * 2;
  }

  size_t qkvStride() const { return static_cast<size_t>(d_.heads + 2 * d_.kvHeads) * d_.headDim; }
  size_t kvBytesPerSeq() const {
    return static_cast<size_t>(d_.layers) * 2 * opts_.maxContext * d_.kvHeads * d_.headDim * cuda::EtBytes(et_);
  }

  // Enqueues the whole forward pass; leaves (B, V) fp32 logits at logits_ on the device.
  void run(const std::vector<SeqInput>& batch) {
    if (batch.empty()) Invalid("forward: empty batch");
    SS_CUDA_CHECK(cudaSetDevice(lease_->deviceOrdinal()));
    const int B = static_cast<int>(batch.size());
    const int cap = opts_.maxContext;
    std::unordered_set<int32_t> seen;
    size_t totalT = 0;
    for (const SeqInput& s : batch) {
      if (!seen.insert(s.seq).second) Invalid("forward: sequence " + std::to_string(s.seq) + " appears twice in a batch");
      if (s.n <= 0 || !s.tokens) Invalid("forward: each sequence needs at least one token");
      if (s.pos < 0 || static_cast<int64_t>(s.pos) + s.n > cap)
        Invalid("forward: positions " + std::to_string(s.pos) + ".." + std::to_string(s.pos + s.n - 1) +
                " exceed the context of " + std::to_string(cap));
      for (int i = 0; i < s.n; ++i)
        if (s.tokens[i] < 0 || s.tokens[i] >= d_.vocab)
          Invalid("forward: token id " + std::to_string(s.tokens[i]) + " is outside the vocabulary of " +
                  std::to_string(d_.vocab));
      const auto it = seqs_.find(s.seq);
      const int len = it == seqs_.end() ? 0 : it->second.len;
      if (s.pos > len)  // the same rule and message as the CPU backend
        Invalid("sequence " + std::to_string(s.seq) + " starts at position " + std::to_string(s.pos) + " but holds " +
                std::to_string(len) + " positions");
      totalT += s.n;
    }
    if (totalT > static_cast<size_t>(1) << 20) Invalid("forward: too many tokens in one pass");
    const int T = static_cast<int>(totalT);
    // KV caches of new sequences (before any work is enqueued, so a budget error leaves nothing half done).
    std::vector<uint64_t> seqKv(B);
    std::vector<SeqState*> seqState(B);
    for (int b = 0; b < B; ++b) {
      auto it = seqs_.find(batch[b].seq);
      if (it == seqs_.end()) it = seqs_.emplace(batch[b].seq, SeqState{pool_->alloc(kvBytesPerSeq()), 0}).first;
      seqKv[b] = reinterpret_cast<uint64_t>(it->second.kv->data());
      seqState[b] = &it->second;
    }
    ensureActivations(T, B);

    // Host-side metadata, uploaded in one copy: tokens, positions, KV bases, last rows, attention entries.
    const bool flash = cuda::FlashSupported(et_, d_.headDim);
    std::vector<int32_t> tokens(T), pos(T), lastRows(B), eRow, eCtx;
    std::vector<uint64_t> kvBase(T), eKv;
    struct Prefill { int row0, n, pos0; uint64_t kv; };
    std::vector<Prefill> prefills;
    int row = 0, maxCtx = 0;
    for (int b = 0; b < B; ++b) {
      const SeqInput& s = batch[b];
      const bool useFlash = flash && s.n > 1;
      if (useFlash) prefills.push_back({row, s.n, s.pos, seqKv[b]});
      for (int i = 0; i < s.n; ++i, ++row) {
        tokens[row] = s.tokens[i];
        pos[row] = s.pos + i;
        kvBase[row] = seqKv[b];
        if (!useFlash) {
          eRow.push_back(row);
          eCtx.push_back(s.pos + i + 1);
          eKv.push_back(seqKv[b]);
          maxCtx = std::max(maxCtx, s.pos + i + 1);
        }
      }
      lastRows[b] = row - 1;
    }
    const int E = static_cast<int>(eRow.size());
    size_t off = 0;
    auto place = [&](size_t bytes) { const size_t o = off; off += AlignUp(bytes); return o; };
    const size_t oTok = place(4 * T), oPos = place(4 * T), oKv = place(8 * T), oLast = place(4 * B),
                 oERow = place(4 * E), oECtx = place(4 * E), oEKv = place(8 * E);
    ensureMeta(off);
    // Large enough for the logits read-back too: never regrown while this pass's upload is pending.
    ensureHostStage(std::max(off, static_cast<size_t>(B) * d_.vocab * sizeof(float)));
    uint8_t* hs = static_cast<uint8_t*>(hostStage_);
    std::memcpy(hs + oTok, tokens.data(), 4 * T);
    std::memcpy(hs + oPos, pos.data(), 4 * T);
    std::memcpy(hs + oKv, kvBase.data(), 8 * T);
    std::memcpy(hs + oLast, lastRows.data(), 4 * B);
    if (E) {
      std::memcpy(hs + oERow, eRow.data(), 4 * E);
      std::memcpy(hs + oECtx, eCtx.data(), 4 * E);
      std::memcpy(hs + oEKv, eKv.data(), 8 * E);
    }
    uint8_t* md = meta_->data();
    SS_CUDA_CHECK(cudaMemcpyAsync(md, hs, off, cudaMemcpyHostToDevice, stream_));
    const int32_t* dTok = reinterpret_cast<const int32_t*>(md + oTok);
    const int32_t* dPos = reinterpret_cast<const int32_t*>(md + oPos);
    const uint64_t* dKv = reinterpret_cast<const uint64_t*>(md + oKv);
    const int32_t* dLast = reinterpret_cast<const int32_t*>(md + oLast);
    cuda::AttnEntries entries;
    entries.qRow = reinterpret_cast<const int32_t*>(md + oERow);
    entries.ctx = reinterpret_cast<const int32_t*>(md + oECtx);
    entries.kvBase = reinterpret_cast<const uint64_t*>(md + oEKv);
    entries.count = E;
    entries.maxCtx = maxCtx;
    const int splits = !E ? 1 : attnSplits_ ? std::min(attnSplits_, (maxCtx + 31) / 32) : cuda::DecodeSplits(et_, d_.heads, d_.kvHeads, d_.headDim, E, maxCtx);
    if (E && splits > 1) ensurePartial(static_cast<size_t>(E) * d_.heads * splits * (d_.headDim + 2));

    const int C = d_.hidden, F = d_.intermediate, H = d_.heads, KVH = d_.kvHeads, D = d_.headDim;
    const int QS = static_cast<int>(qkvStride()), QD = H * D, KD = KVH * D;
    const size_t eb = cuda::EtBytes(et_);
    const float scale = 1.f / std::sqrt(static_cast<float>(D));
    const cuda::RopeParams rope{invFreq_, cosSin_, d_.ropeInterleaved, hfRound_};
    lastT_ = T;
    // A single decode row (T = 1) with a 2-byte residual stream: the folded decode kernels (decode.cu).
    const bool fused = fusedDecode_ && T == 1 && prefills.empty() && E == 1 && resT_ == et_ &&
                       cuda::DecodeGemvSupported(et_, C) && cuda::DecodeGemvSupported(et_, QD) &&
                       cuda::DecodeGemvSupported(et_, F);
    auto mark = [&](const char* n) { prof_.mark(n, stream_); };

    // Short kernels (decode: a few rows) may start while their predecessor drains; see common.cuh.
    struct PdlScope {
      explicit PdlScope(bool on) { cuda::SetPdl(on); }
      ~PdlScope() { cuda::SetPdl(false); }
    } pdlScope(pdl_ && T <= 8 && prefills.empty());
    mark("start");
    if (fused) {
      runDecodeStep(dTok, dPos, dKv, entries, splits);
      seqState[0]->len = batch[0].pos + 1;
      return;
    }
    lease_->waitGroup(0, stream_);
    cuda::LaunchEmbedding(dTok, T, W(d_.tokEmbeddings), ToEt(d_.tokEmbeddings.dtype), C, x_, resT_, stream_);
    cuda::LaunchRopeTable(dPos, T, invFreq_, D / 2, cosSin_, stream_);
    mark("embed");
    for (int l = 0; l < d_.layers; ++l) {
      const LayerWeights& w = d_.layer[l];
      lease_->waitGroup(l + 1, stream_);
      mark("wait");
      if (fusedQkv_[l]) {
        cuda::LaunchRmsNorm(x_, resT_, nullptr, T, C, W(w.attnNorm), ToEt(w.attnNorm.dtype), d_.rmsEps, xn_, et_,
                            hfRound_, stream_);
        mark("norm");
        gemm_->run(W(w.wq), et_, QS, C, xn_, et_, C, T, qkv_, et_, QS, 0.f, stream_);
      } else {
        cuda::LaunchRmsNorm(x_, resT_, nullptr, T, C, W(w.attnNorm), ToEt(w.attnNorm.dtype), d_.rmsEps, xn_, et_,
                            hfRound_, stream_);
        mark("norm");
        gemm_->run(W(w.wq), et_, QD, C, xn_, et_, C, T, qkv_, et_, QS, 0.f, stream_);
        gemm_->run(W(w.wk), et_, KD, C, xn_, et_, C, T, qkv_ + QD * eb, et_, QS, 0.f, stream_);
        gemm_->run(W(w.wv), et_, KD, C, xn_, et_, C, T, qkv_ + (QD + KD) * eb, et_, QS, 0.f, stream_);
      }
      mark("gemm.qkv");
      const bool bias = w.bq.present;
      cuda::LaunchQkvPost(qkv_, et_, T, H, KVH, D, bias ? W(w.bq) : nullptr, bias ? W(w.bk) : nullptr,
                          bias ? W(w.bv) : nullptr, bias ? ToEt(w.bq.dtype) : et_, dPos, dKv, l, cap, rope, stream_);
      mark("rope+kv");
      for (const Prefill& p : prefills)
        cuda::LaunchFlashPrefill(qkv_, QS, et_, p.row0, p.n, p.pos0, reinterpret_cast<const void*>(p.kv), H, KVH, D,
                                 l, cap, scale, attn_, QD, stream_);
      if (E)
        cuda::LaunchDecodeAttention(qkv_, QS, et_, entries, H, KVH, D, l, cap, scale, splits,
                                    splits > 1 ? static_cast<float*>(static_cast<void*>(partial_->data())) : nullptr,
                                    attn_, stream_);
      mark("attention");
      gemm_->run(W(w.wo), et_, C, QD, attn_, et_, QD, T, x_, resT_, C, 1.f, stream_);
      mark("gemm.o");
      if (fusedGu_[l]) {
        cuda::LaunchRmsNorm(x_, resT_, nullptr, T, C, W(w.ffnNorm), ToEt(w.ffnNorm.dtype), d_.rmsEps, xn_, et_,
                            hfRound_, stream_);
        mark("norm");
        gemm_->run(W(w.w1), et_, 2 * F, C, xn_, et_, C, T, gu_, et_, 2 * F, 0.f, stream_);
      } else {
        cuda::LaunchRmsNorm(x_, resT_, nullptr, T, C, W(w.ffnNorm), ToEt(w.ffnNorm.dtype), d_.rmsEps, xn_, et_,
                            hfRound_, stream_);
        mark("norm");
        gemm_->run(W(w.w1), et_, F, C, xn_, et_, C, T, gu_, et_, 2 * F, 0.f, stream_);
        gemm_->run(W(w.w3), et_, F, C, xn_, et_, C, T, gu_ + static_cast<size_t>(F) * eb, et_, 2 * F, 0.f, stream_);
      }
      mark("gemm.gate_up");
      cuda::LaunchSwiGlu(gu_, T, F, h_, et_, hfRound_, stream_);
      mark("swiglu");
      gemm_->run(W(w.w2), et_, C, F, h_, et_, F, T, x_, resT_, C, 1.f, stream_);
      mark("gemm.down");
    }
    lease_->waitGroup(d_.layers + 1, stream_);
    const TensorRef& out = d_.output.present ? d_.output : d_.tokEmbeddings;
    cuda::LaunchRmsNorm(x_, resT_, dLast, B, C, W(d_.norm), ToEt(d_.norm.dtype), d_.rmsEps, last_, et_, hfRound_,
                        stream_);
    gemm_->run(W(out), et_, d_.vocab, C, last_, et_, C, B, logits_, ET::kF32, d_.vocab, 0.f, stream_);
    mark("head");
    for (int b = 0; b < B; ++b) seqState[b]->len = batch[b].pos + batch[b].n;
  }

  // One decode token (T = 1, one sequence, 2-byte types): five kernels a layer (decode.cu). Slot 2l of ss_
  // receives the sum of squares of the residual stream entering layer l's attention norm, slot 2l+1 the one entering
  // its MLP norm, slot 2L the final norm's; the embedding kernel writes slot 0 and zeroes the rest.
  void runDecodeStep(const int32_t* dTok, const int32_t* dPos, const uint64_t* dKv, const cuda::AttnEntries& entries,
                     int splits) {
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
    lease_->waitGroup(0, stream_);
    cuda::LaunchDecodeEmbed(dTok, W(d_.tokEmbeddings), ToEt(d_.tokEmbeddings.dtype), C, x_, resT_, ss_, 2 * L + 1,
                            dPos, invFreq_, D / 2, cosSin_, stream_);
    mark("embed");
    for (int l = 0; l < L; ++l) {
      const LayerWeights& w = d_.layer[l];
      lease_->waitGroup(l + 1, stream_);
      mark("wait");
      cuda::DecodeGemvArgs qkv = matrix(w.wq, QS, C, x_);
      qkv.w1 = W(w.wk);
      qkv.w2 = W(w.wv);
      qkv.seg1 = QD;
      qkv.seg2 = QD + KD;
      qkv.ssIn = ss_ + 2 * l;
      qkv.normW = W(w.attnNorm);
      qkv.normT = ToEt(w.attnNorm.dtype);
      qkv.y = qkv_;
      qkv.H = H;
      qkv.KVH = KVH;
      qkv.D = D;
      qkv.interleaved = d_.ropeInterleaved;
      if (w.bq.present) {
        qkv.bq = W(w.bq);
        qkv.bk = W(w.bk);
        qkv.bv = W(w.bv);
        qkv.biasT = ToEt(w.bq.dtype);
      }
      qkv.cosSin = cosSin_;
      qkv.pos = dPos;
      qkv.kvBase = dKv;
      qkv.layer = l;
      qkv.cap = opts_.maxContext;
      cuda::LaunchDecodeGemv(cuda::DecodeIn::kNorm, cuda::DecodeOut::kQkvRope, qkv, tunes_[kQkvOp], stream_);
      mark("qkv+rope+kv");
      cuda::LaunchDecodeAttention(qkv_, QS, et_, entries, H, KVH, D, l, opts_.maxContext, scale, splits,
                                  splits > 1 ? static_cast<float*>(static_cast<void*>(partial_->data())) : nullptr,
                                  attn_, stream_);
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
    lease_->waitGroup(L + 1, stream_);
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
  std::vector<bool> fusedQkv_, fusedGu_;
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
  int attnSplits_ = 0;  // 0: DecodeSplits decides
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
  std::unordered_map<int32_t, SeqState> seqs_;
};

}  // namespace

std::unique_ptr<Backend> MakeCudaBackend(const ModelDesc& desc, std::shared_ptr<WeightsLease> weights,
                                         std::shared_ptr<ScratchPool> scratch, const BackendOptions& opts) {
  return std::make_unique<CudaBackend>(desc, std::move(weights), std::move(scratch), opts);
}

}  // namespace swapserve::engine
