// Host arena lease and host scratch pool (see host_arena.h).
#include "engine/host_arena.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/errors.h"

namespace swapserve::engine {

HostArenaLease::HostArenaLease(const uint8_t* src, size_t bytes, int numGroups) : bytes_(bytes), groups_(numGroups) {
  const size_t rounded = (bytes + 255) / 256 * 256;
  data_ = static_cast<uint8_t*>(std::aligned_alloc(256, rounded == 0 ? 256 : rounded));
  if (!data_) throw NativeError(ErrorCode::kOom, "cannot allocate a host arena of " + std::to_string(bytes) + " bytes");
  if (bytes) std::memcpy(data_, src, bytes);
}

HostArenaLease::~HostArenaLease() { std::free(data_); }

class HostBlock final : public DeviceBlock {
 public:
  HostBlock(std::shared_ptr<HostScratchPool> pool, uint8_t* data, size_t bytes)
      : pool_(std::move(pool)), data_(data), bytes_(bytes) {}
  ~HostBlock() override {
    std::free(data_);
    pool_->Free(bytes_);
  }
  uint8_t* data() const override { return data_; }
  size_t bytes() const override { return bytes_; }

 private:
  std::shared_ptr<HostScratchPool> pool_;
  uint8_t* data_;
  size_t bytes_;
};

std::shared_ptr<DeviceBlock> HostScratchPool::alloc(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (used_ + bytes > budget_) {
      throw NativeError(ErrorCode::kBudget, "scratch pool: " + std::to_string(bytes) + " bytes requested, " +
                                                std::to_string(budget_ - used_) + " of " + std::to_string(budget_) +
                                                " left");
    }
    used_ += bytes;
  }
  const size_t rounded = (bytes + 255) / 256 * 256;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(256, rounded == 0 ? 256 : rounded));
  if (!p) {
    Free(bytes);
    throw NativeError(ErrorCode::kOom, "scratch pool: host allocation of " + std::to_string(bytes) + " bytes failed");
  }
  return std::make_shared<HostBlock>(shared_from_this(), p, bytes);
}

size_t HostScratchPool::usedBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

void HostScratchPool::Free(size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  used_ -= bytes;
}

}  // namespace swapserve::engine
