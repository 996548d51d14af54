// Shared pieces of the CUDA engine's dev harness: a WeightsLease over a cudaMalloc'd arena (optionally filled
// group by group from pinned host memory, the way the runtime swaps a model in), a ScratchPool of plain
// cudaMallocs, timing and comparison helpers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "common/weights.h"
#include "engine/cuda/malloc_scratch.h"
#include "common/cuda_check.h"

namespace swapserve::dev {

// KV and activations for the dev harness's engines: plain cudaMallocs (engine/cuda/malloc_scratch.h).
using DevPool = cuda::MallocScratchPool;

// groups: byte ranges [start, end) of each group in the arena.
class DevLease final : public WeightsLease {
 public:
  DevLease(size_t bytes, std::vector<std::pair<size_t, size_t>> groups) : bytes_(bytes), groups_(std::move(groups)) {
    SS_CUDA_CHECK(cudaMalloc(&base_, bytes));
    events_.resize(groups_.size());
    for (auto& e : events_) SS_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  ~DevLease() override {
    for (auto e : events_) cudaEventDestroy(e);
    cudaFree(base_);
  }
  const uint8_t* base() const override { return base_; }
  uint8_t* mutableBase() { return base_; }
  size_t bytes() const override { return bytes_; }
  int numGroups() const override { return static_cast<int>(groups_.size()); }
  void waitGroup(int g, void* stream) override {
    if (g < 0 || g >= numGroups()) throw NativeError(ErrorCode::kInvalidArgument, "waitGroup: no such group");
    if (streaming_) SS_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), events_[g], 0));
  }
  bool cuda() const override { return true; }
  int deviceOrdinal() const override { return 0; }
  // Swap-in as the runtime does it: one copy per group on `copy`, an event after each.
  void startSwapIn(const uint8_t* hostPinned, cudaStream_t copy) {
    streaming_ = true;
    for (size_t g = 0; g < groups_.size(); ++g) {
      const auto [s, e] = groups_[g];
      SS_CUDA_CHECK(cudaMemcpyAsync(base_ + s, hostPinned + s, e - s, cudaMemcpyHostToDevice, copy));
      SS_CUDA_CHECK(cudaEventRecord(events_[g], copy));
    }
  }

 private:
  uint8_t* base_ = nullptr;
  size_t bytes_;
  std::vector<std::pair<size_t, size_t>> groups_;
  std::vector<cudaEvent_t> events_;
  bool streaming_ = false;
};

inline double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace swapserve::dev
