// Pool: first-fit range allocator over one allocation, with a byte budget checked before anything else.
#include "runtime/pool.h"

#include <algorithm>

namespace swapserve::runtime {

Block::~Block() { pool_->release(offset_, bytes_); }

uint8_t* Block::data() const { return pool_->waitBase() + offset_; }

Pool::~Pool() {
  if (releaseMemory_) releaseMemory_();
}

std::shared_ptr<Block> Pool::reserve(size_t bytes) {
  size_t want = (bytes + align_ - 1) / align_ * align_;
  if (want == 0) want = align_;
  std::lock_guard<std::mutex> lock(mu_);
  if (failed_) throw NativeError(failCode_, failMsg_);
  if (used_ + want > budget_) {
    throw NativeError(ErrorCode::kBudget, "the " + name_ + " pool's budget would be exceeded: " + std::to_string(used_) +
                                              " bytes used + " + std::to_string(want) + " requested > budget " +
                                              std::to_string(budget_) + " bytes");
  }
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < want) continue;
    size_t offset = it->first, rest = it->second - want;
    free_.erase(it);
    if (rest > 0) free_[offset + want] = rest;
    used_ += want;
    return std::make_shared<Block>(shared_from_this(), offset, want);
  }
  throw NativeError(ErrorCode::kOom, "the " + name_ + " pool has " + std::to_string(budget_ - used_) +
                                         " bytes free but no contiguous range of " + std::to_string(want) +
                                         " bytes (fragmented): evict or drop a model and retry");
}

void Pool::shrink(Block& b, size_t keep) {
  size_t want = std::max(align_, (keep + align_ - 1) / align_ * align_);
  if (want >= b.bytes_) return;
  size_t tail = b.bytes_ - want;
  b.bytes_ = want;
  release(b.offset_ + want, tail);
}

Pool::Grow Pool::grow(Block& b, size_t bytes) {
  size_t want = (bytes + align_ - 1) / align_ * align_;
  std::lock_guard<std::mutex> lock(mu_);
  if (want <= b.bytes_) return Grow::kDone;
  size_t extra = want - b.bytes_;
  if (used_ + extra > budget_) return Grow::kBudget;
  auto it = free_.find(b.offset_ + b.bytes_);
  if (it == free_.end() || it->second < extra) return Grow::kNoRoom;
  size_t offset = it->first + extra, rest = it->second - extra;
  free_.erase(it);
  if (rest > 0) free_[offset] = rest;
  used_ += extra;
  b.bytes_ = want;
  return Grow::kDone;
}

void Pool::release(size_t offset, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  used_ -= bytes;
  auto next = free_.lower_bound(offset);
  if (next != free_.end() && offset + bytes == next->first) {
    bytes += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      prev->second += bytes;
      return;
    }
  }
  free_[offset] = bytes;
}

void Pool::setMemory(uint8_t* base, std::function<void()> release) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    base_ = base;
    ready_ = true;
    releaseMemory_ = std::move(release);
  }
  cv_.notify_all();
}

void Pool::setFailed(const NativeError& e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    failed_ = true;
    failCode_ = e.code();
    failMsg_ = std::string("allocating the ") + name_ + " pool failed: " + e.what();
  }
  cv_.notify_all();
}

void Pool::setOnDemand(std::function<void()> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  onDemand_ = std::move(hook);
}

uint8_t* Pool::waitBase(bool demand) {
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (demand && !ready_ && !failed_) hook = onDemand_;
  }
  if (hook) hook();  // outside the lock: the hook may wake the thread that will call setMemory
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return ready_ || failed_; });
  if (failed_) throw NativeError(failCode_, failMsg_);
  return base_;
}

bool Pool::ready() {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

size_t Pool::usedBytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

}  // namespace swapserve::runtime
