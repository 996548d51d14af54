// Process warm-up of the CUDA engine (exports.warmUp(device) -> Promise<number ms>, CUDA addon only).
//
// The first library matrix product of a process (the vendor BLAS-Lt, see gemm.cc) pays the library's set-up and the lazy loading of its kernels; the fleet
// replay on an H100 (bench/results/fleet/2026-12-07-h100-sim-vs-real) showed it: a worker's first prefill took
// 170 ms for 105 tokens where the same model's later prefills took 4 ms, and a model first used later in the
// process paid nothing extra. A worker runs this once at start-up, before it reports ready, so no request pays it:
// a few bf16 products of 8B-like shapes (T = 1 goes through the engine's own GEMV, T > 1 through the library, fp32 and
// bf16 outputs, beta 0 and 1), on buffers allocated here and freed before the runtime sizes its pools.
#include <napi.h>

#include <chrono>
#include <string>

#include "common/cuda_check.h"
#include "common/napi_error.h"
#include "engine/cuda/gemm.h"

namespace swapserve::engine {
namespace {

double WarmUp(int device) {
  const auto t0 = std::chrono::steady_clock::now();
  SS_CUDA_CHECK(cudaSetDevice(device));
  constexpr int kN = 4096, kK = 4096, kMaxT = 512;
  constexpr size_t kWs = 32u << 20;
  void *w = nullptr, *x = nullptr, *y = nullptr, *ws = nullptr;
  cudaStream_t s = nullptr;
  auto release = [&] {
    if (s) cudaStreamDestroy(s);
    for (void* p : {w, x, y, ws})
      if (p) cudaFree(p);
  };
  try {
    SS_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    SS_CUDA_CHECK(cudaMalloc(&w, size_t{kN} * kK * 2));
    SS_CUDA_CHECK(cudaMalloc(&x, size_t{kMaxT} * kK * 2));
    SS_CUDA_CHECK(cudaMalloc(&y, size_t{kMaxT} * kN * 4));
    SS_CUDA_CHECK(cudaMalloc(&ws, kWs));
    SS_CUDA_CHECK(cudaMemsetAsync(w, 0, size_t{kN} * kK * 2, s));
    SS_CUDA_CHECK(cudaMemsetAsync(x, 0, size_t{kMaxT} * kK * 2, s));
    SS_CUDA_CHECK(cudaMemsetAsync(y, 0, size_t{kMaxT} * kN * 4, s));
    {
      cuda::Gemm g(ws, kWs);
      for (int t : {1, 8, 64, kMaxT}) {
        g.run(w, cuda::ET::kBF16, kN, kK, x, cuda::ET::kBF16, kK, t, y, cuda::ET::kBF16, kN, 0.f, s);
        g.run(w, cuda::ET::kBF16, kN, kK, x, cuda::ET::kBF16, kK, t, y, cuda::ET::kF32, kN, 1.f, s);
      }
      SS_CUDA_CHECK(cudaStreamSynchronize(s));
    }
  } catch (...) {
    release();
    throw;
  }
  release();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

class WarmUpWorker final : public Napi::AsyncWorker {
 public:
  WarmUpWorker(Napi::Env env, int device)
      : Napi::AsyncWorker(env), device_(device), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Execute() override {
    try {
      ms_ = WarmUp(device_);
    } catch (const NativeError& e) {
      code_ = static_cast<int>(e.code());
      SetError(e.what());
    } catch (const std::exception& e) {
      SetError(std::string("warm-up: ") + e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), ms_)); }
  void OnError(const Napi::Error& e) override {
    if (code_ >= 0) e.Set("code", Napi::String::New(Env(), ErrorCodeName(static_cast<ErrorCode>(code_))));
    deferred_.Reject(e.Value());
  }

 private:
  int device_;
  Napi::Promise::Deferred deferred_;
  double ms_ = 0;
  int code_ = -1;
};

Napi::Value WarmUpJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 0)
    throw MakeError(env, ErrorCode::kInvalidArgument, "warmUp(device): expected a device ordinal >= 0");
  auto* w = new WarmUpWorker(env, info[0].As<Napi::Number>().Int32Value());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void RegisterWarmUp(Napi::Env env, Napi::Object exports) { exports.Set("warmUp", Napi::Function::New(env, WarmUpJs)); }

}  // namespace swapserve::engine
