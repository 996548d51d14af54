// cuBLASLt behind the engine's Gemm: one descriptor set and heuristic pick per distinct shape, cached.
#include "engine/cuda/gemm.h"

#include <cublasLt.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>

#include "common/cuda_check.h"

#define SS_CUBLAS_CHECK(stmt)                                                                              \
  do {                                                                                                     \
    cublasStatus_t ss_st_ = (stmt);                                                                        \
    if (ss_st_ != CUBLAS_STATUS_SUCCESS) ::swapserve::cuda::ThrowCublas(ss_st_, #stmt, __FILE__, __LINE__); \
  } while (0)

namespace swapserve::cuda {

namespace {

// A failed cuBLASLt call: an allocation failure is kOom; otherwise CUDA is asked whether the context is corrupted
// (ClassifyLibraryFailure), and its error, if any, is named beside cuBLAS's status.
[[noreturn]] void ThrowCublas(cublasStatus_t st, const char* stmt, const char* file, int line) {
  std::string msg = std::string(stmt) + " failed at " + file + ":" + std::to_string(line) + ": " + cublasLtGetStatusString(st);
  if (st == CUBLAS_STATUS_ALLOC_FAILED) throw NativeError(ErrorCode::kOom, msg);
  cudaError_t seen = cudaSuccess;
  const ErrorCode code = ClassifyLibraryFailure(&seen);
  if (seen != cudaSuccess) msg += std::string("; CUDA: ") + cudaGetErrorName(seen) + " (" + cudaGetErrorString(seen) + ")";
  throw NativeError(code, msg);
}

cudaDataType_t CudaType(ET t) {
  switch (t) {
    case ET::kF32: return CUDA_R_32F;
    case ET::kF16: return CUDA_R_16F;
    default: return CUDA_R_16BF;
  }
}

// Largest power of two (up to 256) dividing the address: cuBLASLt's fast kernels need aligned operands, and its
// heuristic assumes 256 bytes unless told otherwise.
uint32_t Alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && (a % al) != 0) al >>= 1;
  return al;
}

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
};

}  // namespace

struct Gemm::Impl {
  cublasLtHandle_t handle = nullptr;
  void* ws = nullptr;
  size_t wsBytes = 0;
  // (N, K, T, ldx, ldy, types, beta != 0, alignments)
  using Key = std::tuple<int, int, int, int, int, int, int, uint32_t>;
  std::map<Key, Plan> plans;

  ~Impl() {
    for (auto& [k, p] : plans) {
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.c);
      cublasLtMatmulDescDestroy(p.desc);
    }
    if (handle) cublasLtDestroy(handle);
  }

  Plan& plan(const void* W, ET wT, int N, int K, const void* X, ET xT, int ldx, int T, void* Y, ET yT, int ldy,
             bool accumulate) {
    const uint32_t alA = Alignment(W), alB = Alignment(X), alC = Alignment(Y);
    const int types = static_cast<int>(wT) * 9 + static_cast<int>(xT) * 3 + static_cast<int>(yT);
    const Key key{N, K, T, ldx, ldy, types, accumulate ? 1 : 0, (alA << 16) | (alB << 8) | (alC & 0xff)};
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    Plan p;
    // Column-major view: W row-major (N, K) is a (K, N) matrix, used transposed; X is (K, T); Y is (N, T).
    SS_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    SS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
    SS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
    SS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CudaType(wT), K, N, K));
    SS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CudaType(xT), K, T, ldx));
    SS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, CudaType(yT), N, T, ldy));
    cublasLtMatmulPreference_t pref = nullptr;
    SS_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint32_t alD = alC;
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsBytes,
                                                             sizeof(wsBytes));
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alA, sizeof(alA));
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alB, sizeof(alB));
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alC, sizeof(alC));
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alD, sizeof(alD));
    cublasLtMatmulHeuristicResult_t res[kMaxCandidates]{};
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(handle, p.desc, p.a, p.b, p.c, p.c, pref, candidates, res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.c);
      cublasLtMatmulDescDestroy(p.desc);
      throw NativeError(ErrorCode::kCuda, "cuBLASLt has no algorithm for a (" + std::to_string(T) + " x " +
                                              std::to_string(K) + ") x (" + std::to_string(K) + " x " +
                                              std::to_string(N) + ") product: " + cublasLtGetStatusString(st));
    }
    const int pick = found > 1 ? fastest(p, res, found, W, X, T, yT, ldy, accumulate, N, K) : 0;
    p.algo = res[pick].algo;
    p.workspace = res[pick].workspaceSize;
    return plans.emplace(key, p).first->second;
  }

  // SWAPSERVE_CUDA_GEMM_AUTOTUNE=n (2..8; a bench knob, off by default): each new product shape times cuBLASLt's
  // first n heuristic algorithms on the real weights and activations, writing into a scratch Y (so an accumulating
  // product's real Y is untouched; a transient cudaMalloc outside the scratch budget, which is why it is a bench
  // knob), and keeps the fastest; one line on stderr a shape. Skipped while a CUDA graph is being captured.
  int fastest(const Plan& p, const cublasLtMatmulHeuristicResult_t* res, int found, const void* W, const void* X, int T,
              ET yT, int ldy, bool accumulate, int N, int K) {
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &cap) != cudaSuccess || cap != cudaStreamCaptureStatusNone) return 0;
    void* y = nullptr;
    SS_CUDA_CHECK(cudaMalloc(&y, static_cast<size_t>(T) * ldy * EtBytes(yT)));
    SS_CUDA_CHECK(cudaMemsetAsync(y, 0, static_cast<size_t>(T) * ldy * EtBytes(yT), stream));
    cudaEvent_t a, b;
    SS_CUDA_CHECK(cudaEventCreate(&a));
    SS_CUDA_CHECK(cudaEventCreate(&b));
    const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
    int best = 0;
    float bestUs = 0, firstUs = 0;
    std::string line;
    for (int i = 0; i < found; ++i) {
      if (res[i].state != CUBLAS_STATUS_SUCCESS || res[i].workspaceSize > wsBytes) continue;
      float us = 0;
      bool ok = true;
      for (int r = 0; r < 2 + kTimedReps && ok; ++r) {
        if (r == 2) SS_CUDA_CHECK(cudaEventRecord(a, stream));
        ok = cublasLtMatmul(handle, p.desc, &alpha, W, p.a, X, p.b, &beta, y, p.c, y, p.c, &res[i].algo, ws, wsBytes,
                            stream) == CUBLAS_STATUS_SUCCESS;
      }
      if (!ok) continue;  // an algorithm the heuristic offered but that refuses to run: not a candidate
      SS_CUDA_CHECK(cudaEventRecord(b, stream));
      SS_CUDA_CHECK(cudaEventSynchronize(b));
      SS_CUDA_CHECK(cudaEventElapsedTime(&us, a, b));
      us *= 1000.f / kTimedReps;
      if (i == 0) firstUs = us;
      line += " #" + std::to_string(i) + " " + std::to_string(us).substr(0, 6);
      if (bestUs == 0 || us < bestUs) { bestUs = us; best = i; }
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    SS_CUDA_CHECK(cudaStreamSynchronize(stream));
    cudaFree(y);
    std::fprintf(stderr, "swapserve gemm autotune T=%d N=%d K=%d: heuristic #0 %.1f us, kept #%d %.1f us (%.2fx); us:%s\n",
                 T, N, K, firstUs, best, bestUs, bestUs > 0 ? firstUs / bestUs : 0.0, line.c_str());
    return best;
  }

  static constexpr int kMaxCandidates = 8, kTimedReps = 5;
  int candidates = 1;
  cudaStream_t stream = nullptr;  // the stream of the product being planned (autotune times on it)
};

Gemm::Gemm(void* workspace, size_t workspaceBytes) : impl_(std::make_unique<Impl>()) {
  impl_->ws = workspace;
  impl_->wsBytes = workspaceBytes;
  if (const char* n = std::getenv("SWAPSERVE_CUDA_GEMM_AUTOTUNE")) {
    const int c = std::atoi(n);
    SS_REQUIRE(c >= 1 && c <= Impl::kMaxCandidates, "SWAPSERVE_CUDA_GEMM_AUTOTUNE must be 1..8 (heuristic algorithms timed a shape)");
    impl_->candidates = c;
  }
  SS_CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
}

Gemm::~Gemm() = default;

void Gemm::run(const void* W, ET wT, int N, int K, const void* X, ET xT, int ldx, int T, void* Y, ET yT, int ldy,
               float beta, cudaStream_t s) {
  SS_REQUIRE(N > 0 && K > 0 && T > 0 && ldx >= K && ldy >= N, "gemm: bad shape");
  SS_REQUIRE(wT == xT, "gemm: weights and activations must share a dtype");
  // Measured on an H200 (bench/results/engine-*.md): the GEMV beats cuBLASLt at T = 1 only.
  if (gemv_ && T == 1 && LaunchGemv(W, wT, N, K, X, ldx, T, Y, yT, ldy, beta, s)) return;
  impl_->stream = s;
  Plan& p = impl_->plan(W, wT, N, K, X, xT, ldx, T, Y, yT, ldy, beta != 0.f);
  const float alpha = 1.f;
  SS_CUBLAS_CHECK(cublasLtMatmul(impl_->handle, p.desc, &alpha, W, p.a, X, p.b, &beta, Y, p.c, Y, p.c, &p.algo,
                                 impl_->ws, impl_->wsBytes, s));
}

}  // namespace swapserve::cuda
