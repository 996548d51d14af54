// A memory pool with a budget: one allocation made once (pinned host, device, or scratch), carved into
// aligned blocks by a first-fit range allocator. Reserving a block is bookkeeping only (safe on the JS thread);
// the memory itself may still be being allocated/pinned in the background (waitBase blocks until it exists).
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/errors.h"

namespace swapserve::runtime {

class Pool;

// A reserved range of a pool; returns it to the pool when the last reference goes.
class Block {
 public:
  Block(std::shared_ptr<Pool> pool, size_t offset, size_t bytes) : pool_(std::move(pool)), offset_(offset), bytes_(bytes) {}
  ~Block();
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
  uint8_t* data() const;  // blocks until the pool's memory exists; throws if allocating it failed
  size_t offset() const { return offset_; }
  size_t bytes() const { return bytes_; }

 private:
  friend class Pool;  // shrink / grow change bytes_ under the pool's lock (JS thread, with no move on the block)
  std::shared_ptr<Pool> pool_;
  size_t offset_, bytes_;
};

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  // `name` appears in errors ("gpu", "host", "scratch"); `align` is the block alignment in bytes.
  Pool(std::string name, size_t budgetBytes, size_t align) : name_(std::move(name)), budget_(budgetBytes), align_(align) {
    if (budget_ > 0) free_[0] = budget_;
  }
  ~Pool();
  // Throws kBudget when used + bytes would exceed the budget, kOom when no contiguous range is free.
  std::shared_ptr<Block> reserve(size_t bytes);
  // Partial residency (a parked model's resident prefix). shrink: keeps the block's first `keep` bytes (rounded up
  // to the alignment) and returns the rest to the pool. grow: extends the block in place to `bytes` (rounded up)
  // when the range right after it is free.
  void shrink(Block& b, size_t keep);
  enum class Grow { kDone, kBudget, kNoRoom };
  Grow grow(Block& b, size_t bytes);
  // Called once by whoever allocates the memory (possibly another thread). `release` frees it at destruction.
  void setMemory(uint8_t* base, std::function<void()> release);
  void setFailed(const NativeError& e);
  // Blocks until setMemory/setFailed; throws the failure. A `demand` wait first runs the on-demand hook (a pool
  // whose allocation is deferred starts it then); readiness probes pass demand = false.
  uint8_t* waitBase(bool demand = true);
  void setOnDemand(std::function<void()> hook);
  bool ready();
  size_t usedBytes();
  size_t budgetBytes() const { return budget_; }
  const std::string& name() const { return name_; }

 private:
  friend class Block;
  void release(size_t offset, size_t bytes);

  std::string name_;
  size_t budget_, align_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<size_t, size_t> free_;  // offset -> bytes, coalesced
  size_t used_ = 0;
  uint8_t* base_ = nullptr;
  bool ready_ = false;
  bool failed_ = false;
  ErrorCode failCode_ = ErrorCode::kOom;
  std::string failMsg_;
  std::function<void()> releaseMemory_;
  std::function<void()> onDemand_;
};

}  // namespace swapserve::runtime
