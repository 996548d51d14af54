// Matrix products of the CUDA engine: Y = beta*Y + X W^T through cuBLASLt, in place on the model arena.
// W is a weight matrix stored row-major (N, K) as in the arena; X is (T, K) with row stride ldx; Y is (T, N) with
// row stride ldy (so q/k/v or gate/up products can write side by side into one buffer). Accumulation is fp32;
// fp32 models use true fp32 (no TF32) so that their greedy tokens match an fp32 reference. beta = 1 fuses the
// residual add (Y is the fp32 residual stream, updated in place). Each shape's algorithm is cuBLASLt's first
// heuristic; SWAPSERVE_CUDA_GEMM_AUTOTUNE=n (bench knob, gemm.cc) times its first n and keeps the fastest.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>

#include "engine/cuda/kernels.h"

namespace swapserve::cuda {

class Gemm {
 public:
  // workspace: device memory of `workspaceBytes` (owned by the caller, outlives this object).
  Gemm(void* workspace, size_t workspaceBytes);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  void run(const void* W, ET wT, int N, int K, const void* X, ET xT, int ldx, int T, void* Y, ET yT, int ldy,
           float beta, cudaStream_t s);
  // T = 1 products go to the engine's own GEMV (LaunchGemv) unless turned off (benches compare the two).
  void useGemv(bool on) { gemv_ = on; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool gemv_ = true;
};

}  // namespace swapserve::cuda
