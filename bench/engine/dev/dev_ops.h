// Shared pieces of the op checks (dev_ops.cc, dev_ops_decode.cc): device buffers, host reads of each element
// type, and the relative-error report that counts failures.
#pragma once
#include <algorithm>
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

// Reference attention of one query head over ctx positions in double: q(d), k(p, d) and v(p, d) read the inputs;
// appends the D outputs to out.
template <typename Q, typename K, typename V>
void RefAttention(int ctx, int D, double scale, Q q, K k, V v, std::vector<double>& out) {
  std::vector<double> s(ctx);
  double mx = -1e300;
  for (int p = 0; p < ctx; ++p) {
    double dot = 0;
    for (int d = 0; d < D; ++d) dot += double(q(d)) * k(p, d);
    s[p] = dot * scale;
    mx = std::max(mx, s[p]);
  }
  double sum = 0;
  for (double& x : s) sum += (x = std::exp(x - mx));
  for (int d = 0; d < D; ++d) {
    double o = 0;
    for (int p = 0; p < ctx; ++p) o += s[p] * v(p, d);
    out.push_back(o / sum);
  }
}

// ||got - ref|| / ||ref|| against tol; NaN anywhere fails. One CHECK line per call.
void Report(const std::string& name, const std::vector<double>& got, const std::vector<double>& ref, double tol);

// The folded decode kernels (decode.cu) at every launch shape the backend can pick, the decode embedding and the
// launcher's refusals (dev_ops_decode.cc).
void RunDecodeOpChecks(cudaStream_t s);

// Decode attention v2 (LaunchDecodeAttentionV2) on paged and contiguous caches (dev_ops_attn2.cc).
void RunAttnV2Checks(cudaStream_t s);

}  // namespace swapserve::dev
