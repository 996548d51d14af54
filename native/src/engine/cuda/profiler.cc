// The CUDA backend's per-op profiler (profiler.h): events between ops, summed by op name per forward pass.
#include "engine/cuda/profiler.h"

#include <algorithm>
#include <cstdio>

#include "common/cuda_check.h"

namespace swapserve::engine {

Profiler::~Profiler() {
  for (auto& m : marks_) cudaEventDestroy(m.second);
}

void Profiler::mark(const char* name, cudaStream_t s) {
  if (!on) return;
  cudaEvent_t e;
  SS_CUDA_CHECK(cudaEventCreate(&e));
  SS_CUDA_CHECK(cudaEventRecord(e, s));
  marks_.push_back({name, e});
}

void Profiler::report(int T, int B) {
  if (!on || marks_.empty()) return;
  std::vector<std::pair<std::string, double>> totals;  // ms per op name
  double all = 0;                                      // ms
  for (size_t i = 1; i < marks_.size(); ++i) {
    float ms = 0;
    cudaEventElapsedTime(&ms, marks_[i - 1].second, marks_[i].second);
    all += ms;
    auto it = std::find_if(totals.begin(), totals.end(), [&](auto& p) { return p.first == marks_[i].first; });
    if (it == totals.end()) totals.push_back({marks_[i].first, ms});
    else it->second += ms;
  }
  std::string line = "PROFILE T=" + std::to_string(T) + " B=" + std::to_string(B) + " total " + std::to_string(all) + " ms:";
  for (auto& [n, ms] : totals) line += " " + n + " " + std::to_string(ms).substr(0, 6);
  std::fprintf(stderr, "%s\n", line.c_str());
  for (auto& m : marks_) cudaEventDestroy(m.second);
  marks_.clear();
}

}  // namespace swapserve::engine
