// The paged KV cache shared by the engine's backends: one allocation from the scratch pool, cut into blocks of
// kBlockTokens positions, and a block table per sequence (see native/src/engine/design.md, "KV cache").
//
// Layout (element type of the backend: fp32 on the CPU, the activation type on CUDA):
//   plane(layer, kv) = base + ((2 * layer + kv) * poolTokens) * kvDim elements,  kv = 0 keys, 1 values
//   position p of a sequence lives in row slot(p) = table[p / kBlockTokens] * kBlockTokens + p % kBlockTokens
// so a block is kBlockTokens consecutive rows of every (layer, K|V) plane, and a contiguous cache is the special
// case of an identity table.
//
// Threading: ensure/release/setLen are called with the engine's Core::mu held (a pass, or release on the JS thread);
// blocksFree() may be read from any thread (an atomic).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "common/weights.h"

namespace swapserve::engine {

class KvPool {
 public:
  // 16 positions a block: waste is at most 15 positions a sequence (< 1% of a 2K context), a 32-lane warp's
  // positions span 2 blocks, a flash tile of 64 keys spans 4, and a table of a 128K context is 32 KiB of int32.
  static constexpr int kBlockTokens = 16;

  // A pool of floor(budgetBytes / blockBytes) blocks (0 allowed: every sequence then fails with `budget`).
  KvPool(ScratchPool& scratch, int layers, int kvDim, size_t eltBytes, size_t budgetBytes)
      : layers_(layers), kvDim_(kvDim), elt_(eltBytes) {
    const size_t blockBytes = BlockBytes(layers, kvDim, eltBytes);
    const size_t n = blockBytes ? budgetBytes / blockBytes : 0;
    if (n > static_cast<size_t>(1) << 24) throw NativeError(ErrorCode::kInvalidArgument, "KV cache: too many blocks");
    numBlocks_ = static_cast<int>(n);
    if (numBlocks_ > 0) mem_ = scratch.alloc(static_cast<size_t>(numBlocks_) * blockBytes);  // throws budget / oom
    free_.reserve(numBlocks_);
    for (int b = numBlocks_ - 1; b >= 0; --b) free_.push_back(b);  // block 0 is handed out first
    freeCount_.store(numBlocks_);
  }

  static size_t BlockBytes(int layers, int kvDim, size_t eltBytes) {
    return static_cast<size_t>(2) * layers * kBlockTokens * kvDim * eltBytes;
  }
  static int BlocksFor(int64_t positions) { return static_cast<int>((positions + kBlockTokens - 1) / kBlockTokens); }

  int blocksTotal() const { return numBlocks_; }
  int blocksFree() const { return freeCount_.load(std::memory_order_relaxed); }
  int poolTokens() const { return numBlocks_ * kBlockTokens; }
  uint8_t* base() const { return mem_ ? mem_->data() : nullptr; }
  uint8_t* plane(int layer, int kv) const {
    return base() + (static_cast<size_t>(2 * layer + kv) * poolTokens()) * kvDim_ * elt_;
  }

  struct Seq {
    std::vector<int32_t> blocks;
    int len = 0;  // positions filled (0 .. len-1 are valid)
  };
  static int32_t Slot(const std::vector<int32_t>& table, int p) {
    return table[p / kBlockTokens] * kBlockTokens + p % kBlockTokens;
  }

  // Positions a sequence holds (0 when unknown).
  int len(int32_t seq) const {
    auto it = seqs_.find(seq);
    return it == seqs_.end() ? 0 : it->second.len;
  }

  // Makes every (seq, positions) of a pass hold blocks for `positions` positions: all or nothing, so a `budget`
  // error leaves the pool as it was. Returns the sequences in the order given (pointers stay valid until release).
  std::vector<Seq*> ensure(const std::vector<std::pair<int32_t, int>>& want) {
    int need = 0;
    for (const auto& [seq, positions] : want) {
      auto it = seqs_.find(seq);
      const int have = it == seqs_.end() ? 0 : static_cast<int>(it->second.blocks.size());
      need += std::max(0, BlocksFor(positions) - have);
    }
    if (need > static_cast<int>(free_.size())) {
      throw NativeError(ErrorCode::kBudget, "KV cache: the pass needs " + std::to_string(need) + " more blocks of " +
                                                std::to_string(kBlockTokens) + " positions; " +
                                                std::to_string(free_.size()) + " of " + std::to_string(numBlocks_) +
                                                " are free");
    }
    std::vector<Seq*> out;
    out.reserve(want.size());
    for (const auto& [seq, positions] : want) {
      Seq& s = seqs_[seq];
      while (static_cast<int>(s.blocks.size()) < BlocksFor(positions)) {
        s.blocks.push_back(free_.back());
        free_.pop_back();
      }
      out.push_back(&s);
    }
    freeCount_.store(static_cast<int>(free_.size()), std::memory_order_relaxed);
    return out;
  }

  // n > 1 (the choices of one request share one prefill): `dst`, released first, gets blocks of its own for the
  // first `len` positions of `src`. Returns the (src block, dst block) pairs whose rows the backend copies in every
  // plane (the last block may be partly filled: copying all of it is harmless). Throws `budget` with no block taken.
  std::vector<std::pair<int32_t, int32_t>> fork(int32_t src, int32_t dst, int len) {
    if (src == dst || len < 0 || len > this->len(src)) {
      throw NativeError(ErrorCode::kInvalidArgument, "fork: sequence " + std::to_string(src) + " holds no " +
                                                         std::to_string(len) + " positions to copy");
    }
    release(dst);
    std::vector<std::pair<int32_t, int32_t>> pairs;
    if (len == 0) return pairs;
    Seq& d = *ensure({{dst, len}})[0];
    const Seq& s = seqs_.at(src);
    d.len = len;
    for (int i = 0; i < BlocksFor(len); ++i) pairs.emplace_back(s.blocks[i], d.blocks[i]);
    return pairs;
  }

  // Bytes of one block's rows in one (layer, K|V) plane.
  size_t planeBlockBytes() const { return static_cast<size_t>(kBlockTokens) * kvDim_ * elt_; }

  // Frees every block of `seq` (no-op for an unknown sequence).
  void release(int32_t seq) {
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) return;
    for (auto b = it->second.blocks.rbegin(); b != it->second.blocks.rend(); ++b) free_.push_back(*b);
    seqs_.erase(it);
    freeCount_.store(static_cast<int>(free_.size()), std::memory_order_relaxed);
  }

 private:
  int layers_, kvDim_;
  size_t elt_;
  int numBlocks_ = 0;
  std::shared_ptr<DeviceBlock> mem_;
  std::vector<int32_t> free_;  // a stack: the block freed last is reused first
  std::atomic<int> freeCount_{0};
  std::unordered_map<int32_t, Seq> seqs_;  // rehashing never moves a Seq, so ensure's pointers stay valid
};

}  // namespace swapserve::engine
