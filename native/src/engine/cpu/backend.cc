// The CPU backend: the forward pass over a batch of sequences (prefill chunks and decode steps mixed), with a
// per-sequence fp32 KV cache taken from the runtime's scratch pool.
#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>

#include "common/errors.h"
#include "engine/backend.h"
#include "engine/cpu/ops.h"
#include "engine/cpu/thread_pool.h"

namespace swapserve::engine {

namespace {

using cpu::AttnSeq;

// One sequence's KV cache: for each layer, K then V, each (cap, KVH*D) fp32.
struct SeqKv {
  std::shared_ptr<DeviceBlock> block;
  int cap = 0;  // positions held
  int len = 0;  // positions filled (0 .. len-1 are valid)
  float* k(int layer, int kvDim) const {
    return reinterpret_cast<float*>(block->data()) + static_cast<size_t>(2 * layer) * cap * kvDim;
  }
  float* v(int layer, int kvDim) const {
    return reinterpret_cast<float*>(block->data()) + static_cast<size_t>(2 * layer + 1) * cap * kvDim;
  }
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(const ModelDesc& d, std::shared_ptr<WeightsLease> w, std::shared_ptr<ScratchPool> s,
             const BackendOptions& o)
      : d_(d), w_(std::move(w)), scratch_(std::move(s)), opts_(o), pool_(o.threads), invFreq_(cpu::RopeInvFreq(d)) {}

  void forward(const std::vector<SeqInput>& batch, float* logits) override;
  void releaseSeq(int32_t seq) override { kv_.erase(seq); }
  void forkSeq(int32_t src, int32_t dst, int len) override;
  int vocabSize() const override { return d_.vocab; }

 private:
  const uint8_t* at(const TensorRef& t) const { return w_->base() + t.offset; }
  SeqKv& Reserve(int32_t seq, int pos, int n);

  ModelDesc d_;
  std::shared_ptr<WeightsLease> w_;
  std::shared_ptr<ScratchPool> scratch_;
  BackendOptions opts_;
  ThreadPool pool_;
  std::vector<float> invFreq_;  // (D/2)
  std::unordered_map<int32_t, SeqKv> kv_;
  // Activations, grown to the largest batch seen: x, xn (T, C); q, att (T, H*D); k, v (T, KVH*D); g, u (T, F).
  std::vector<float> x_, xn_, q_, k_, v_, att_, g_, u_, last_;
  std::vector<int32_t> posv_;
  std::vector<std::vector<float>> attnScratch_;
};

SeqKv& CpuBackend::Reserve(int32_t seq, int pos, int n) {
  const int need = pos + n;
  if (need > opts_.maxContext) {
    throw NativeError(ErrorCode::kInvalidArgument, "sequence " + std::to_string(seq) + " needs " +
                                                       std::to_string(need) + " positions; maxContext is " +
                                                       std::to_string(opts_.maxContext));
  }
  SeqKv& kv = kv_[seq];
  if (pos > kv.len) {
    throw NativeError(ErrorCode::kInvalidArgument, "sequence " + std::to_string(seq) + " starts at position " +
                                                       std::to_string(pos) + " but holds " +
                                                       std::to_string(kv.len) + " positions");
  }
  if (need > kv.cap) {
    // Grow by doubling (at least 256 positions), so a sequence costs O(length) copies in total.
    int cap = std::max(256, kv.cap);
    while (cap < need) cap *= 2;
    cap = std::min(cap, opts_.maxContext);
    const int kvDim = d_.kvHeads * d_.headDim;
    const size_t bytes = static_cast<size_t>(2) * d_.layers * cap * kvDim * sizeof(float);
    SeqKv grown;
    grown.block = scratch_->alloc(bytes);  // throws budget / oom
    grown.cap = cap;
    grown.len = kv.len;
    for (int l = 0; l < d_.layers && kv.len > 0; ++l) {
      std::memcpy(grown.k(l, kvDim), kv.k(l, kvDim), static_cast<size_t>(kv.len) * kvDim * sizeof(float));
      std::memcpy(grown.v(l, kvDim), kv.v(l, kvDim), static_cast<size_t>(kv.len) * kvDim * sizeof(float));
    }
    kv = std::move(grown);
  }
  return kv;
}

void CpuBackend::forkSeq(int32_t src, int32_t dst, int len) {
  auto it = kv_.find(src);
  if (src == dst || it == kv_.end() || len < 0 || len > it->second.len)
    throw NativeError(ErrorCode::kInvalidArgument, "fork: sequence " + std::to_string(src) + " holds no " +
                                                       std::to_string(len) + " positions to copy");
  kv_.erase(dst);
  if (len == 0) return;
  SeqKv& to = Reserve(dst, 0, len);  // may rehash: look src up again
  const SeqKv& from = kv_.at(src);
  const int kvDim = d_.kvHeads * d_.headDim;
  for (int l = 0; l < d_.layers; ++l) {
    std::memcpy(to.k(l, kvDim), from.k(l, kvDim), static_cast<size_t>(len) * kvDim * sizeof(float));
    std::memcpy(to.v(l, kvDim), from.v(l, kvDim), static_cast<size_t>(len) * kvDim * sizeof(float));
  }
  to.len = len;
}

void CpuBackend::forward(const std::vector<SeqInput>& batch, float* logits) {
  const int C = d_.hidden, F = d_.intermediate, H = d_.heads, KVH = d_.kvHeads, D = d_.headDim, V = d_.vocab;
  const int qDim = H * D, kvDim = KVH * D;
  int T = 0;
  for (const SeqInput& s : batch) T += s.n;
  if (T == 0) return;
  std::vector<SeqKv*> kvs;
  for (const SeqInput& s : batch) kvs.push_back(&Reserve(s.seq, s.pos, s.n));
  // Rehashing cannot move elements of an unordered_map, so the pointers stay valid.

  auto grow = [](std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);
  };
  grow(x_, static_cast<size_t>(T) * C);
  grow(xn_, static_cast<size_t>(T) * C);
  grow(q_, static_cast<size_t>(T) * qDim);
  grow(att_, static_cast<size_t>(T) * qDim);
  grow(k_, static_cast<size_t>(T) * kvDim);
  grow(v_, static_cast<size_t>(T) * kvDim);
  grow(g_, static_cast<size_t>(T) * F);
  grow(u_, static_cast<size_t>(T) * F);
  grow(last_, batch.size() * static_cast<size_t>(C));
  posv_.resize(T);

  // Embeddings (group 0).
  w_->waitGroup(0, nullptr);
  {
    const size_t rowBytes = static_cast<size_t>(C) * cpu::DTypeBytes(d_.tokEmbeddings.dtype);
    int t = 0;
    for (const SeqInput& s : batch) {
      for (int i = 0; i < s.n; ++i, ++t) {
        const int32_t tok = s.tokens[i];
        if (tok < 0 || tok >= V) {
          throw NativeError(ErrorCode::kInvalidArgument,
                            "token id " + std::to_string(tok) + " is outside the vocabulary (" + std::to_string(V) + ")");
        }
        cpu::ToF32(at(d_.tokEmbeddings) + rowBytes * tok, d_.tokEmbeddings.dtype, x_.data() + static_cast<size_t>(t) * C, C);
        posv_[t] = s.pos + i;
      }
    }
  }

  std::vector<AttnSeq> attn(batch.size());
  for (int l = 0; l < d_.layers; ++l) {
    w_->waitGroup(l + 1, nullptr);  // execute while loading: layer l's bytes only
    const LayerWeights& lw = d_.layer[l];
    cpu::RmsNorm(xn_.data(), x_.data(), at(lw.attnNorm), lw.attnNorm.dtype, T, C, d_.rmsEps);
    auto bias = [&](const TensorRef& b) { return b.present ? at(b) : nullptr; };
    cpu::MatMul(pool_, q_.data(), xn_.data(), at(lw.wq), lw.wq.dtype, bias(lw.bq), lw.bq.dtype, T, C, qDim, false);
    cpu::MatMul(pool_, k_.data(), xn_.data(), at(lw.wk), lw.wk.dtype, bias(lw.bk), lw.bk.dtype, T, C, kvDim, false);
    cpu::MatMul(pool_, v_.data(), xn_.data(), at(lw.wv), lw.wv.dtype, bias(lw.bv), lw.bv.dtype, T, C, kvDim, false);
    cpu::Rope(q_.data(), posv_.data(), T, H, D, invFreq_.data(), d_.ropeInterleaved);
    cpu::Rope(k_.data(), posv_.data(), T, KVH, D, invFreq_.data(), d_.ropeInterleaved);
    int t = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
      const SeqInput& s = batch[b];
      SeqKv& kv = *kvs[b];
      float* kc = kv.k(l, kvDim);
      float* vc = kv.v(l, kvDim);
      std::memcpy(kc + static_cast<size_t>(s.pos) * kvDim, k_.data() + static_cast<size_t>(t) * kvDim,
                  static_cast<size_t>(s.n) * kvDim * sizeof(float));
      std::memcpy(vc + static_cast<size_t>(s.pos) * kvDim, v_.data() + static_cast<size_t>(t) * kvDim,
                  static_cast<size_t>(s.n) * kvDim * sizeof(float));
      attn[b] = AttnSeq{q_.data() + static_cast<size_t>(t) * qDim, kc, vc, att_.data() + static_cast<size_t>(t) * qDim,
                        s.n, s.pos};
      t += s.n;
    }
    cpu::Attention(pool_, attn, H, KVH, D, attnScratch_);
    cpu::MatMul(pool_, x_.data(), att_.data(), at(lw.wo), lw.wo.dtype, nullptr, DType::kF32, T, qDim, C, true);

    cpu::RmsNorm(xn_.data(), x_.data(), at(lw.ffnNorm), lw.ffnNorm.dtype, T, C, d_.rmsEps);
    cpu::MatMul(pool_, g_.data(), xn_.data(), at(lw.w1), lw.w1.dtype, nullptr, DType::kF32, T, C, F, false);
    cpu::MatMul(pool_, u_.data(), xn_.data(), at(lw.w3), lw.w3.dtype, nullptr, DType::kF32, T, C, F, false);
    cpu::SwiGLU(g_.data(), u_.data(), static_cast<size_t>(T) * F);
    cpu::MatMul(pool_, x_.data(), g_.data(), at(lw.w2), lw.w2.dtype, nullptr, DType::kF32, T, F, C, true);
  }
  for (size_t b = 0; b < batch.size(); ++b) kvs[b]->len = batch[b].pos + batch[b].n;

  // Final norm and head (group L+1) on each sequence's last token only.
  w_->waitGroup(d_.layers + 1, nullptr);
  int t = 0;
  for (size_t b = 0; b < batch.size(); ++b) {
    t += batch[b].n;
    std::memcpy(last_.data() + b * C, x_.data() + static_cast<size_t>(t - 1) * C, C * sizeof(float));
  }
  const int B = static_cast<int>(batch.size());
  cpu::RmsNorm(last_.data(), last_.data(), at(d_.norm), d_.norm.dtype, B, C, d_.rmsEps);
  cpu::MatMul(pool_, logits, last_.data(), at(d_.output), d_.output.dtype, nullptr, DType::kF32, B, C, V, false);
}

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend(const ModelDesc& desc, std::shared_ptr<WeightsLease> weights,
                                        std::shared_ptr<ScratchPool> scratch, const BackendOptions& opts) {
  return std::make_unique<CpuBackend>(desc, std::move(weights), std::move(scratch), opts);
}

}  // namespace swapserve::engine
