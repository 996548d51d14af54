// A WeightsLease over a host buffer the engine owns, and a budgeted host ScratchPool: lets tests, benchmarks
// and tools run the CPU engine on a model arena filled from JS without the weights runtime. Every group is
// ready at once (waitGroup returns immediately).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "common/weights.h"

namespace swapserve::engine {

class HostArenaLease final : public WeightsLease {
 public:
  // Copies `bytes` bytes from `src` into a 256-byte aligned buffer.
  HostArenaLease(const uint8_t* src, size_t bytes, int numGroups);
  ~HostArenaLease() override;
  const uint8_t* base() const override { return data_; }
  size_t bytes() const override { return bytes_; }
  int numGroups() const override { return groups_; }
  void waitGroup(int, void*) override {}
  bool cuda() const override { return false; }
  int deviceOrdinal() const override { return -1; }

 private:
  uint8_t* data_ = nullptr;
  size_t bytes_ = 0;
  int groups_ = 0;
};

class HostScratchPool final : public ScratchPool, public std::enable_shared_from_this<HostScratchPool> {
 public:
  explicit HostScratchPool(size_t budgetBytes) : budget_(budgetBytes) {}
  std::shared_ptr<DeviceBlock> alloc(size_t bytes) override;
  size_t usedBytes() const;

 private:
  friend class HostBlock;
  void Free(size_t bytes);
  mutable std::mutex mu_;
  size_t budget_;
  size_t used_ = 0;
};

}  // namespace swapserve::engine
