// Process warm-up of the CUDA engine (exports.warmUp(device) -> Promise<number ms>, CUDA addon only).
//
// The first library matrix product of a process (the vendor BLAS-Lt, see gemm.cc) pays the library's set-up and the lazy loading of its kernels; the fleet
// replay on an H100 (bench/results/fleet/2026-12-07-h100-sim-vs-real) showed it: a worker's first prefill took
// 170 ms for 105 tokens where the same model's later prefills took 4 ms, and a model first used later in the
// process paid nothing extra. A worker runs this once at start-up, before it reports ready, so no request pays it:
// the products of its configured models' shapes (the worker reads them from the files' headers) and of an 8B-like
// 4096 x 4096, at pass widths 1..512 (T = 1 goes through the engine's own GEMV, T > 1 through the library, fp32 and
// model-type outputs, beta 0 and 1), on buffers allocated here and freed before the runtime sizes its pools.
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "common/cuda_check.h"
#include "common/napi_error.h"
#include "engine/backend.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/malloc_scratch.h"

namespace swapserve::engine {
namespace {

// One engine pass per model shape (warmUp's third argument, opt-in from the worker: SWAPSERVE_WARM_ENGINE=1 until
// measured): the engine's own kernels (embedding, norms, RoPE and the KV write, prefill attention and decode attention
// at the model's head size and grouping, the fused decode step, the head) load lazily at their first launch too. In
// the replay of 2026-12-07 (H100, run 15) the first cold event of a worker, after the library warm-up, still took
// 32 ms for its first 105-token prefill against 5 ms later, and its copy ran at 38.6 GB/s against ~55 (the first
// engine's loads may hold the context while the move thread issues the copies: execute-while-loading overlaps them).
// A one-layer model of the shape with zero weights and a 512-token vocabulary, a 100-token prefill and 2 decode
// steps on scratch of its own, all freed before the runtime sizes its pools.
struct WarmModel {
  int C, F, H, KVH, D;
  DType t;
};

class WarmLease final : public WeightsLease {
 public:
  WarmLease(size_t bytes, int groups, int device) : bytes_(bytes), groups_(groups), device_(device) {
    SS_CUDA_CHECK(cudaMalloc(&base_, bytes));
    SS_CUDA_CHECK(cudaMemset(base_, 0, bytes));
  }
  ~WarmLease() override { cudaFree(base_); }
  const uint8_t* base() const override { return base_; }
  size_t bytes() const override { return bytes_; }
  int numGroups() const override { return groups_; }
  void waitGroup(int, void*) override {}  // landed: the memset above was synchronous
  bool cuda() const override { return true; }
  int deviceOrdinal() const override { return device_; }

 private:
  uint8_t* base_ = nullptr;
  size_t bytes_;
  int groups_, device_;
};

void WarmEngine(const WarmModel& m, int device) {
  constexpr int kV = 512, kPrompt = 100;
  ModelDesc d;
  d.hidden = m.C; d.intermediate = m.F; d.layers = 1; d.heads = m.H; d.kvHeads = m.KVH; d.headDim = m.D;
  d.vocab = kV; d.maxPositions = 4096;
  size_t off = 0;
  auto take = [&](size_t elems) {
    TensorRef r{off, m.t, true};
    off += (elems * 2 + 255) / 256 * 256;
    return r;
  };
  const size_t C = m.C, F = m.F, QD = size_t(m.H) * m.D, KD = size_t(m.KVH) * m.D;
  d.tokEmbeddings = take(kV * C);  // group 0
  d.layer.resize(1);
  LayerWeights& w = d.layer[0];  // group 1: q|k|v and gate|up adjacent, as the model planner lays them out
  w.attnNorm = take(C);
  w.wq = take(QD * C); w.wk = take(KD * C); w.wv = take(KD * C); w.wo = take(C * QD);
  w.ffnNorm = take(C);
  w.w1 = take(F * C); w.w3 = take(F * C); w.w2 = take(C * F);
  d.norm = take(C);  // group 2
  d.output = take(kV * C);
  auto lease = std::make_shared<WarmLease>(off, 3, device);
  BackendOptions o;
  o.maxBatch = 2;
  o.maxContext = 256;
  auto be = MakeCudaBackend(d, lease, std::make_shared<cuda::MallocScratchPool>(), o);
  std::vector<int32_t> prompt(kPrompt);
  for (int i = 0; i < kPrompt; ++i) prompt[i] = (i * 37) % kV;
  std::vector<float> logits(2 * kV);
  be->forward({SeqInput{0, prompt.data(), kPrompt, 0}}, logits.data());
  for (int step = 0; step < 2; ++step) {
    const int32_t tok = 1 + step;
    be->forward({SeqInput{0, &tok, 1, kPrompt + step}}, logits.data());
  }
  be->releaseSeq(0);
}

// A product shape of a model the worker serves: W is (n, k) of element type t.
struct WarmShape {
  int n, k;
  cuda::ET t;
};

// The library's kernels are picked per shape: the configured models' own shapes are warmed, not only 8B-like ones
// (the replay of 2026-12-07 on an H100, run 15: a worker warmed on 4096 x 4096 still took 32 ms for its first
// 105-token prefill of a 2048-wide model against 5 ms later).
double WarmUp(int device, std::vector<WarmShape> shapes, const std::vector<WarmModel>& models) {
  const auto t0 = std::chrono::steady_clock::now();
  SS_CUDA_CHECK(cudaSetDevice(device));
  constexpr int kMaxT = 512;
  // Elements of W: larger shapes are skipped (the 128K-vocabulary heads, 70B products), so the transient buffers stay
  // near 0.3 GB: a worker starting beside another on one GPU (MPS co-location) must not take the memory it sizes.
  constexpr size_t kMaxW = size_t{1} << 27;
  constexpr size_t kWs = 32u << 20;
  shapes.push_back({4096, 4096, cuda::ET::kBF16});
  shapes.erase(std::remove_if(shapes.begin(), shapes.end(),
                              [&](const WarmShape& x) { return x.n <= 0 || x.k <= 0 || size_t(x.n) * x.k > kMaxW; }),
               shapes.end());
  size_t wMax = 0, nMax = 0, kMax = 0;
  for (const auto& x : shapes) {
    wMax = std::max(wMax, size_t(x.n) * x.k);
    nMax = std::max(nMax, size_t(x.n));
    kMax = std::max(kMax, size_t(x.k));
  }
  void *w = nullptr, *x = nullptr, *y = nullptr, *ws = nullptr;
  cudaStream_t s = nullptr;
  auto release = [&] {
    if (s) cudaStreamDestroy(s);
    for (void* p : {w, x, y, ws})
      if (p) cudaFree(p);
  };
  try {
    SS_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    SS_CUDA_CHECK(cudaMalloc(&w, wMax * 2));
    SS_CUDA_CHECK(cudaMalloc(&x, size_t{kMaxT} * kMax * 2));
    SS_CUDA_CHECK(cudaMalloc(&y, size_t{kMaxT} * nMax * 4));
    SS_CUDA_CHECK(cudaMalloc(&ws, kWs));
    SS_CUDA_CHECK(cudaMemsetAsync(w, 0, wMax * 2, s));
    SS_CUDA_CHECK(cudaMemsetAsync(x, 0, size_t{kMaxT} * kMax * 2, s));
    SS_CUDA_CHECK(cudaMemsetAsync(y, 0, size_t{kMaxT} * nMax * 4, s));
    {
      cuda::Gemm g(ws, kWs);
      for (const auto& sh : shapes) {
        for (int t : {1, 8, 64, 128, 256, kMaxT}) {
          g.run(w, sh.t, sh.n, sh.k, x, sh.t, sh.k, t, y, sh.t, sh.n, 0.f, s);
          g.run(w, sh.t, sh.n, sh.k, x, sh.t, sh.k, t, y, cuda::ET::kF32, sh.n, 1.f, s);
        }
      }
      SS_CUDA_CHECK(cudaStreamSynchronize(s));
    }
  } catch (...) {
    release();
    throw;
  }
  release();
  for (const WarmModel& m : models) WarmEngine(m, device);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

class WarmUpWorker final : public Napi::AsyncWorker {
 public:
  WarmUpWorker(Napi::Env env, int device, std::vector<WarmShape> shapes, std::vector<WarmModel> models)
      : Napi::AsyncWorker(env), device_(device), shapes_(std::move(shapes)), models_(std::move(models)),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Execute() override {
    try {
      ms_ = WarmUp(device_, shapes_, models_);
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
  std::vector<WarmShape> shapes_;
  std::vector<WarmModel> models_;
  Napi::Promise::Deferred deferred_;
  double ms_ = 0;
  int code_ = -1;
};

// Argument `arg` of warmUp, if given: an array of [int x ints, "bf16" | "f16"] entries, each checked by `valid` (its
// integers); throws kInvalidArgument naming the entry and `form` (validated in JS too: native/ts/warm-shapes.ts).
struct WarmTuple {
  std::vector<int> n;
  bool bf16;
};
std::vector<WarmTuple> WarmTuples(const Napi::CallbackInfo& info, size_t arg, const std::string& name, uint32_t ints,
                                  const std::string& form, bool (*valid)(const std::vector<int>&)) {
  Napi::Env env = info.Env();
  std::vector<WarmTuple> out;
  if (info.Length() <= arg || info[arg].IsUndefined()) return out;
  if (!info[arg].IsArray()) throw MakeError(env, ErrorCode::kInvalidArgument, "warmUp: " + name + " must be an array");
  const Napi::Array a = info[arg].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value v = a.Get(i);
    const Napi::Array e = v.IsArray() ? v.As<Napi::Array>() : Napi::Array::New(env);
    bool ok = e.Length() == ints + 1 && e.Get(ints).IsString();
    WarmTuple t{std::vector<int>(ints, 0), false};
    for (uint32_t k = 0; ok && k < ints; ++k) {
      ok = e.Get(k).IsNumber();
      if (ok) t.n[k] = e.Get(k).As<Napi::Number>().Int32Value();
    }
    const std::string dt = ok ? e.Get(ints).As<Napi::String>().Utf8Value() : "";
    if (!ok || (dt != "bf16" && dt != "f16") || !valid(t.n))
      throw MakeError(env, ErrorCode::kInvalidArgument, "warmUp: " + name + "[" + std::to_string(i) + "] must be " + form);
    t.bf16 = dt == "bf16";
    out.push_back(std::move(t));
  }
  return out;
}

Napi::Value WarmUpJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 0)
    throw MakeError(env, ErrorCode::kInvalidArgument, "warmUp(device, shapes?, models?): expected a device ordinal >= 0");
  // shapes: [[n, k, dtype], ...]: library products (WarmUp).
  std::vector<WarmShape> shapes;
  for (const WarmTuple& t : WarmTuples(info, 1, "shapes", 2, "[n > 0, k > 0, \"bf16\" | \"f16\"]",
                                       [](const std::vector<int>& n) { return n[0] > 0 && n[1] > 0; }))
    shapes.push_back({t.n[0], t.n[1], t.bf16 ? cuda::ET::kBF16 : cuda::ET::kF16});
  // models: [[C, F, H, KVH, D, dtype], ...], one engine pass each (WarmEngine).
  std::vector<WarmModel> models;
  for (const WarmTuple& t : WarmTuples(info, 2, "models", 5, "[C, F, H, KVH (dividing H), D (even, <= 256), \"bf16\" | \"f16\"]",
                                       [](const std::vector<int>& n) {
                                         return n[0] > 0 && n[1] > 0 && n[2] > 0 && n[3] > 0 && n[2] % n[3] == 0 &&
                                                n[4] > 0 && n[4] % 2 == 0 && n[4] <= 256;
                                       }))
    models.push_back({t.n[0], t.n[1], t.n[2], t.n[3], t.n[4], t.bf16 ? DType::kBF16 : DType::kF16});
  auto* w = new WarmUpWorker(env, info[0].As<Napi::Number>().Int32Value(), std::move(shapes), std::move(models));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void RegisterWarmUp(Napi::Env env, Napi::Object exports) { exports.Set("warmUp", Napi::Function::New(env, WarmUpJs)); }

}  // namespace swapserve::engine
