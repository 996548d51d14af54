// A ScratchPool of plain cudaMallocs, one a block, freed with it: for engines that run outside a runtime (the worker's
// start-up warm-up in warmup.cc, the dev harness in bench/engine/dev). The runtime's own pool is runtime/pool.h.
#pragma once
#include <cuda_runtime.h>

#include <memory>

#include "common/cuda_check.h"
#include "common/weights.h"

namespace swapserve::cuda {

class MallocBlock final : public DeviceBlock {
 public:
  explicit MallocBlock(size_t bytes) : bytes_(bytes) { SS_CUDA_CHECK(cudaMalloc(&p_, bytes ? bytes : 1)); }
  ~MallocBlock() override { cudaFree(p_); }
  MallocBlock(const MallocBlock&) = delete;
  MallocBlock& operator=(const MallocBlock&) = delete;
  uint8_t* data() const override { return static_cast<uint8_t*>(p_); }
  size_t bytes() const override { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_;
};

class MallocScratchPool final : public ScratchPool {
 public:
  std::shared_ptr<DeviceBlock> alloc(size_t bytes) override { return std::make_shared<MallocBlock>(bytes); }
};

}  // namespace swapserve::cuda
