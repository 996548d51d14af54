// Shared pieces of the op checks (dev_ops.cc, dev_ops_decode.cc): device buffers, host reads of each element
// type, and the relative-error report that counts failures.
#pragma once
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "dev_common.h"
#include "engine/cuda/kernels.h"

namespace swapserve::dev {

extern int g_failures;  // checks failed so far (Report counts them)

float HostF(const void* p, cuda::ET t, size_t i);
// v rounded to t's precision (what hfRound does on the device).
double HostRnd(double v, cuda::ET t);
const char* EtName(cuda::ET t);

struct Buf {
  void* d = nullptr;
  size_t bytes = 0;
  explicit Buf(size_t b) : bytes(b) { SS_CUDA_CHECK(cudaMalloc(&d, b)); }
  ~Buf() { cudaFree(d); }
  std::vector<uint8_t> host() const {
    std::vector<uint8_t> h(bytes);
    SS_CUDA_CHECK(cudaMemcpy(h.data(), d, bytes, cudaMemcpyDeviceToHost));
    return h;
  }
  void poison() { SS_CUDA_CHECK(cudaMemset(d, 0xff, bytes)); }  // NaN in every float type
};

// ||got - ref|| / ||ref|| against tol; NaN anywhere fails. One CHECK line per call.
void Report(const std::string& name, const std::vector<double>& got, const std::vector<double>& ref, double tol);

// The folded decode kernels (decode.cu) at every launch shape the backend can pick, the decode embedding and the
// launcher's refusals (dev_ops_decode.cc).
void RunDecodeOpChecks(cudaStream_t s);

// Decode attention v2 (LaunchDecodeAttentionV2) on paged and contiguous caches (dev_ops_attn2.cc).
void RunAttnV2Checks(cudaStream_t s);

}  // namespace swapserve::dev
