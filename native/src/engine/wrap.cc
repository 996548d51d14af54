// The native Engine class: constructed on the JS thread (acquires the weights lease and the scratch pool, picks
// the backend); step() and logits() run one forward pass on a libuv worker thread and resolve a Promise.
//
// Arguments are validated by native/ts/engine.ts; this layer re-checks only what would corrupt memory (types,
// lengths, tensor offsets inside the arena). One step at a time per engine: a second concurrent call rejects.
//
// Device health: an engine over the runtime shares its CUDA context, so a pass that fails with a sticky error marks
// the runtime unusable (DeviceHealth, common/weights.h), and every later pass over it fails fast with `unusable`, as
// the runtime's own moves do. Test hook: testing.failNextPass (an engine's, or the runtime's for all its engines).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/weights.h"
#include "engine/backend.h"
#include "engine/bindings.h"
#include "engine/cpu/quant.h"
#include "engine/host_arena.h"

namespace swapserve::engine {

namespace {

// Everything a forward pass touches; shared by the wrap and any in-flight worker, so close() while a step runs
// frees the backend only when that step is done (the worker is destroyed on the JS thread).
struct Core {
  std::unique_ptr<Backend> backend;
  std::shared_ptr<WeightsLease> lease;
  std::shared_ptr<ScratchPool> scratch;
  std::shared_ptr<DeviceHealth> health;  // the runtime's; null in arena mode (no runtime)
  std::atomic<int> injected{-1};         // tests (testing.failNextEnginePass): an ErrorCode for the next pass, -1 = none
  std::string backendName;
  int vocab = 0;
  std::mutex mu;  // held for a whole forward pass, and to free a sequence
  std::mutex deferredMu;
  std::vector<int32_t> deferred;  // releases asked for while a pass ran; applied before the next one

  void ApplyDeferred() {
    std::vector<int32_t> seqs;
    {
      std::lock_guard<std::mutex> lock(deferredMu);
      seqs.swap(deferred);
    }
    for (int32_t s : seqs) backend->releaseSeq(s);
  }
};

[[noreturn]] void ThrowArg(Napi::Env env, const std::string& msg) {
  throw MakeError(env, ErrorCode::kInvalidArgument, msg);
}

double NumberField(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) ThrowArg(o.Env(), std::string("Expected a number for desc.") + key);
  return v.As<Napi::Number>().DoubleValue();
}

int IntField(Napi::Object o, const char* key, int min) {
  double d = NumberField(o, key);
  if (d != static_cast<int>(d) || d < min) ThrowArg(o.Env(), std::string("Expected an integer >= ") + std::to_string(min) + " for " + key);
  return static_cast<int>(d);
}

// options.tuning (optional; native/ts/tuning.ts validated it): the CUDA backend's tuning, defaults for missing keys.
CudaTuning ParseTuning(Napi::Env env, Napi::Value v) {
  CudaTuning t;
  if (v.IsUndefined() || v.IsNull()) return t;
  if (!v.IsObject()) ThrowArg(env, "Expected an object for options.tuning");
  Napi::Object o = v.As<Napi::Object>();
  auto flag = [&](const char* key, bool& out) {
    Napi::Value f = o.Get(key);
    if (f.IsUndefined()) return;
    if (!f.IsBoolean()) ThrowArg(env, std::string("Expected a boolean for options.tuning.") + key);
    out = f.As<Napi::Boolean>().Value();
  };
  flag("exact", t.exact);
  flag("profile", t.profile);
  flag("pdl", t.pdl);
  flag("fusedDecode", t.fusedDecode);
  flag("cudaGraphs", t.cudaGraphs);
  flag("quantFold", t.quantFold);
  Napi::Value g = o.Get("decodeGemv");
  if (!g.IsUndefined()) {
    if (!g.IsString()) ThrowArg(env, "Expected a string for options.tuning.decodeGemv");
    t.decodeGemv = g.As<Napi::String>().Utf8Value();
  }
  if (!o.Get("l2PrefetchBytes").IsUndefined()) t.l2PrefetchBytes = IntField(o, "l2PrefetchBytes", -1);
  if (!o.Get("attnSplits").IsUndefined()) t.attnSplits = IntField(o, "attnSplits", 0);
  return t;
}

TensorRef ParseTensor(Napi::Env env, Napi::Value v, const std::string& name, bool required, size_t arenaBytes) {
  TensorRef t;
  if (v.IsNull() || v.IsUndefined()) {
    if (required) ThrowArg(env, "Expected a tensor for " + name);
    return t;
  }
  if (!v.IsObject()) ThrowArg(env, "Expected {offset, dtype} for " + name);
  Napi::Object o = v.As<Napi::Object>();
  double off = NumberField(o, "offset");
  double dt = NumberField(o, "dtype");
  if (off < 0 || off != static_cast<double>(static_cast<size_t>(off)) || static_cast<size_t>(off) >= arenaBytes)
    ThrowArg(env, "Tensor " + name + " offset " + std::to_string(off) + " is outside the arena");
  if (dt != static_cast<double>(static_cast<int>(dt)) || dt < 0 || dt > 7)
    ThrowArg(env, "Expected dtype 0 (f32), 1 (f16), 2 (bf16) or 3..7 (q8_0, q4_0, q4_k, q5_k, q6_k) for " + name);
  t.offset = static_cast<size_t>(off);
  t.dtype = static_cast<DType>(static_cast<int>(dt));
  t.present = true;
  return t;
}

// Block-quantized types: only for matrices, whose rows (the input dimension) must be whole blocks.
void CheckQuantized(Napi::Env env, const ModelDesc& d) {
  const int qDim = d.heads * d.headDim;
  auto check = [&](const TensorRef& t, int row, const std::string& name) {
    if (!t.present || !cpu::IsQuant(t.dtype)) return;
    if (row <= 0) ThrowArg(env, "Tensor " + name + " is quantized but only weight matrices may be");
    if (row % cpu::BlockElems(t.dtype) != 0)
      ThrowArg(env, "Tensor " + name + " is quantized with rows of " + std::to_string(row) +
                        " values, not a multiple of its block size " + std::to_string(cpu::BlockElems(t.dtype)));
  };
  check(d.tokEmbeddings, d.hidden, "tokEmbeddings");
  check(d.output, d.hidden, "output");
  check(d.norm, 0, "norm");
  for (size_t i = 0; i < d.layer.size(); ++i) {
    const LayerWeights& w = d.layer[i];
    const std::string p = "layer[" + std::to_string(i) + "].";
    for (const auto& [t, n] : {std::pair{&w.attnNorm, "attnNorm"}, {&w.ffnNorm, "ffnNorm"}, {&w.bq, "bq"}, {&w.bk, "bk"}, {&w.bv, "bv"}})
      check(*t, 0, p + n);
    for (const auto& [t, n] : {std::pair{&w.wq, "wq"}, {&w.wk, "wk"}, {&w.wv, "wv"}, {&w.w1, "w1"}, {&w.w3, "w3"}})
      check(*t, d.hidden, p + n);
    check(w.wo, qDim, p + "wo");
    check(w.w2, d.intermediate, p + "w2");
  }
}

ModelDesc ParseDesc(Napi::Env env, Napi::Value v, size_t arenaBytes) {
  if (!v.IsObject()) ThrowArg(env, "Expected an object for desc");
  Napi::Object o = v.As<Napi::Object>();
  ModelDesc d;
  d.hidden = IntField(o, "hidden", 1);
  d.intermediate = IntField(o, "intermediate", 1);
  d.layers = IntField(o, "layers", 1);
  d.heads = IntField(o, "heads", 1);
  d.kvHeads = IntField(o, "kvHeads", 1);
  d.headDim = IntField(o, "headDim", 2);
  d.vocab = IntField(o, "vocab", 1);
  d.maxPositions = IntField(o, "maxPositions", 1);
  if (d.heads % d.kvHeads != 0) ThrowArg(env, "heads must be a multiple of kvHeads");
  if (d.headDim % 2 != 0) ThrowArg(env, "headDim must be even");
  d.rmsEps = static_cast<float>(NumberField(o, "rmsEps"));
  d.ropeTheta = static_cast<float>(NumberField(o, "ropeTheta"));
  d.ropeInterleaved = o.Get("ropeInterleaved").ToBoolean().Value();
  int scaling = IntField(o, "ropeScaling", 0);
  if (scaling > 2) ThrowArg(env, "ropeScaling must be 0, 1 or 2");
  d.ropeScaling = static_cast<RopeScaling>(scaling);
  d.ropeFactor = static_cast<float>(NumberField(o, "ropeFactor"));
  d.ropeLowFreqFactor = static_cast<float>(NumberField(o, "ropeLowFreqFactor"));
  d.ropeHighFreqFactor = static_cast<float>(NumberField(o, "ropeHighFreqFactor"));
  d.ropeOriginalMaxPositions = IntField(o, "ropeOriginalMaxPositions", 1);
  d.tokEmbeddings = ParseTensor(env, o.Get("tokEmbeddings"), "tokEmbeddings", true, arenaBytes);
  d.norm = ParseTensor(env, o.Get("norm"), "norm", true, arenaBytes);
  d.output = ParseTensor(env, o.Get("output"), "output", true, arenaBytes);
  Napi::Value lv = o.Get("layer");
  if (!lv.IsArray() || lv.As<Napi::Array>().Length() != static_cast<uint32_t>(d.layers))
    ThrowArg(env, "Expected desc.layer to be an array of `layers` entries");
  Napi::Array la = lv.As<Napi::Array>();
  for (uint32_t i = 0; i < la.Length(); ++i) {
    Napi::Value e = la.Get(i);
    if (!e.IsObject()) ThrowArg(env, "Expected an object for desc.layer[" + std::to_string(i) + "]");
    Napi::Object lo = e.As<Napi::Object>();
    const std::string p = "layer[" + std::to_string(i) + "].";
    LayerWeights w;
    w.attnNorm = ParseTensor(env, lo.Get("attnNorm"), p + "attnNorm", true, arenaBytes);
    w.wq = ParseTensor(env, lo.Get("wq"), p + "wq", true, arenaBytes);
    w.wk = ParseTensor(env, lo.Get("wk"), p + "wk", true, arenaBytes);
    w.wv = ParseTensor(env, lo.Get("wv"), p + "wv", true, arenaBytes);
    w.bq = ParseTensor(env, lo.Get("bq"), p + "bq", false, arenaBytes);
    w.bk = ParseTensor(env, lo.Get("bk"), p + "bk", false, arenaBytes);
    w.bv = ParseTensor(env, lo.Get("bv"), p + "bv", false, arenaBytes);
    w.wo = ParseTensor(env, lo.Get("wo"), p + "wo", true, arenaBytes);
    w.ffnNorm = ParseTensor(env, lo.Get("ffnNorm"), p + "ffnNorm", true, arenaBytes);
    w.w1 = ParseTensor(env, lo.Get("w1"), p + "w1", true, arenaBytes);
    w.w2 = ParseTensor(env, lo.Get("w2"), p + "w2", true, arenaBytes);
    w.w3 = ParseTensor(env, lo.Get("w3"), p + "w3", true, arenaBytes);
    d.layer.push_back(w);
  }
  CheckQuantized(env, d);
  return d;
}

template <typename T>
std::vector<T> CopyTyped(Napi::Env env, Napi::Value v, napi_typedarray_type type, const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    ThrowArg(env, std::string("Expected a typed array of the right type for batch.") + name);
  Napi::TypedArrayOf<T> a = v.As<Napi::TypedArrayOf<T>>();
  return std::vector<T>(a.Data(), a.Data() + a.ElementLength());
}

// One forward pass on a worker thread: samples (step) or returns logits (logits).
class PassWorker final : public Napi::AsyncWorker {
 public:
  PassWorker(Napi::Env env, std::shared_ptr<Core> core, Napi::Object wrap, bool wantLogits)
      : Napi::AsyncWorker(env), core_(std::move(core)), deferred_(Napi::Promise::Deferred::New(env)),
        wantLogits_(wantLogits) {
    wrap_ = Napi::Persistent(wrap);
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  std::vector<int32_t> seqs, counts, positions, tokens, topK;
  std::vector<float> temperature, topP;
  std::vector<uint64_t> rng;
  Napi::ObjectReference rngRef;  // written back with the advanced PRNG states
  // Optional sampling extras (native/ts/engine-native.ts NativeBatch documents each; absent = off).
  int vocabLimit = 0;
  std::vector<float> minP, presence, frequency, repetition, biasVals;
  std::vector<int32_t> biasOff, biasIds, histOff, histIds, histCounts, maskOff, numLogprobs, forks;
  std::vector<uint32_t> mask;
  size_t maskWords = 0;  // per masked sequence
  std::vector<float> logprob, topLogprobs;  // outputs: (B), (B, kMaxTopLogprobs)
  std::vector<int32_t> topIds;
  Napi::ObjectReference logprobRef, topIdsRef, topLogprobsRef;

  void Execute() override {
    try {
      std::lock_guard<std::mutex> lock(core_->mu);
      // A sticky error earlier (a move's, or a pass's of any engine over this runtime): the context is gone.
      if (core_->health && !core_->health->usable())
        throw NativeError(ErrorCode::kUnusable,
                          "the runtime is unusable after a sticky CUDA error: drain this worker and restart the process");
      core_->ApplyDeferred();
      int fault = core_->injected.exchange(-1);
      if (fault < 0 && core_->health) fault = core_->health->takePassFault();
      if (fault >= 0) core_->backend->injectFault(static_cast<ErrorCode>(fault));
      for (size_t i = 0; i + 2 < forks.size(); i += 3) core_->backend->forkSeq(forks[i], forks[i + 1], forks[i + 2]);
      std::vector<SeqInput> batch(seqs.size());
      size_t off = 0;
      for (size_t b = 0; b < seqs.size(); ++b) {
        batch[b] = SeqInput{seqs[b], tokens.data() + off, counts[b], positions[b]};
        off += counts[b];
      }
      if (wantLogits_) {
        logits_.resize(seqs.size() * static_cast<size_t>(core_->vocab));
        core_->backend->forward(batch, logits_.data());
      } else {
        std::vector<Sampling> s(seqs.size());
        for (size_t b = 0; b < seqs.size(); ++b) {
          s[b] = Sampling{temperature[b], topP[b], topK[b], rng[b]};
          FillExtras(b, s[b]);
        }
        next_.resize(seqs.size());
        core_->backend->forwardSample(batch, s.data(), next_.data());
        for (size_t b = 0; b < seqs.size(); ++b) rng[b] = s[b].rngState;
      }
    } catch (const NativeError& e) {
      code_ = e.code();
      if (e.code() == ErrorCode::kSticky && core_->health) core_->health->markSticky();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = ErrorCode::kOom;
      SetError("engine: host allocation failed");
    } catch (const std::exception& e) {
      SetError(std::string("engine: ") + e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Done();
    if (wantLogits_) {
      Napi::Float32Array out = Napi::Float32Array::New(env, logits_.size());
      std::memcpy(out.Data(), logits_.data(), logits_.size() * sizeof(float));
      deferred_.Resolve(out);
      return;
    }
    if (!rngRef.IsEmpty()) {
      Napi::BigUint64Array r = rngRef.Value().As<Napi::BigUint64Array>();
      for (size_t b = 0; b < rng.size() && b < r.ElementLength(); ++b) r[b] = rng[b];
    }
    auto writeBack = [](Napi::ObjectReference& ref, const auto& from) {
      if (ref.IsEmpty()) return;
      Napi::TypedArray a = ref.Value().As<Napi::TypedArray>();
      std::memcpy(static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(), from.data(),
                  std::min(a.ByteLength(), from.size() * sizeof(from[0])));
    };
    writeBack(logprobRef, logprob);
    writeBack(topIdsRef, topIds);
    writeBack(topLogprobsRef, topLogprobs);
    Napi::Int32Array out = Napi::Int32Array::New(env, next_.size());
    std::memcpy(out.Data(), next_.data(), next_.size() * sizeof(int32_t));
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override {
    Done();
    if (code_) e.Set("code", Napi::String::New(Env(), ErrorCodeName(*code_)));
    deferred_.Reject(e.Value());
  }

 private:
  void FillExtras(size_t b, Sampling& s) {
    s.vocabLimit = vocabLimit;
    if (!minP.empty()) s.minP = minP[b];
    if (!presence.empty()) s.presence = presence[b];
    if (!frequency.empty()) s.frequency = frequency[b];
    if (!repetition.empty()) s.repetition = repetition[b];
    if (!biasOff.empty() && biasOff[b + 1] > biasOff[b]) {
      s.biasIds = biasIds.data() + biasOff[b];
      s.biasVals = biasVals.data() + biasOff[b];
      s.nBias = biasOff[b + 1] - biasOff[b];
    }
    if (!histOff.empty() && histOff[b + 1] > histOff[b]) {
      s.histIds = histIds.data() + histOff[b];
      s.histCounts = histCounts.data() + histOff[b];
      s.nHist = histOff[b + 1] - histOff[b];
    }
    if (!maskOff.empty() && maskOff[b] >= 0) s.mask = mask.data() + maskOff[b];
    if (!numLogprobs.empty() && numLogprobs[b] >= 0) {
      s.numLogprobs = numLogprobs[b];
      s.logprob = logprob.data() + b;
      s.topIds = topIds.data() + b * kMaxTopLogprobs;
      s.topLogprobs = topLogprobs.data() + b * kMaxTopLogprobs;
    }
  }

  void Done();
  std::shared_ptr<Core> core_;
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference wrap_;
  bool wantLogits_;
  std::vector<float> logits_;
  std::vector<int32_t> next_;
  std::optional<ErrorCode> code_;
};

class EngineWrap final : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine", {
      InstanceMethod<&EngineWrap::Step>("step"),
      InstanceMethod<&EngineWrap::Logits>("logits"),
      InstanceMethod<&EngineWrap::Release>("release"),
      InstanceMethod<&EngineWrap::Close>("close"),
      InstanceAccessor<&EngineWrap::Backend>("backend"),
      InstanceAccessor<&EngineWrap::Busy>("busy"),
      InstanceAccessor<&EngineWrap::ScratchUsed>("scratchUsedBytes"),
      InstanceMethod<&EngineWrap::KvStats>("kvStats"),
    });
  }

  // new Engine(runtimeNativeOrArena, modelId, desc, options)
  //   runtimeNativeOrArena: Runtime.native, or a Uint8Array holding a whole arena (host lease, CPU backend)
  //   options: { maxBatch, maxContext, threads, tuning? (CUDA backend), scratchBudgetBytes (arena mode only),
  //              numGroups (arena mode) }
  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[1].IsString() || !info[3].IsObject())
      ThrowArg(env, "Expected (runtime | arena, modelId: string, desc, options)");
    const std::string modelId = info[1].As<Napi::String>();
    Napi::Object opt = info[3].As<Napi::Object>();
    BackendOptions bo;
    bo.maxBatch = IntField(opt, "maxBatch", 1);
    bo.maxContext = IntField(opt, "maxContext", 1);
    bo.threads = IntField(opt, "threads", 0);
    if (!opt.Get("kvCacheBytes").IsUndefined()) {
      const double kb = NumberField(opt, "kvCacheBytes");
      if (kb < 0 || kb != static_cast<double>(static_cast<size_t>(kb))) ThrowArg(env, "Expected an integer >= 0 for kvCacheBytes");
      bo.kvCacheBytes = static_cast<size_t>(kb);
    }
    bo.cuda = ParseTuning(env, opt.Get("tuning"));
    auto core = std::make_shared<Core>();
    try {
      if (info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
        Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
        core->lease = std::make_shared<HostArenaLease>(a.Data(), a.ByteLength(), IntField(opt, "numGroups", 1));
        scratch_ = std::make_shared<HostScratchPool>(static_cast<size_t>(NumberField(opt, "scratchBudgetBytes")));
        core->scratch = scratch_;
      } else if (info[0].IsObject()) {
        core->lease = AcquireWeights(info[0].As<Napi::Object>(), modelId);
        core->scratch = GetScratchPool(info[0].As<Napi::Object>());
        core->health = GetDeviceHealth(info[0].As<Napi::Object>());
      } else {
        ThrowArg(env, "Expected Runtime.native or a Uint8Array arena as the first argument");
      }
      ModelDesc desc = ParseDesc(env, info[2], core->lease->bytes());
      core->vocab = desc.vocab;
      if (core->lease->cuda()) {
#ifdef SWAPSERVE_CUDA
        core->backend = MakeCudaBackend(desc, core->lease, core->scratch, bo);
        core->backendName = "cuda";
#else
        throw NativeError(ErrorCode::kState, "the model's arena is on a CUDA device but this addon has no CUDA engine");
#endif
      } else {
        core->backend = MakeCpuBackend(desc, core->lease, core->scratch, bo);
        core->backendName = "cpu";
      }
    } catch (const NativeError& e) {
      throw MakeError(env, e.code(), e.what());
    }
    core_ = std::move(core);
    napi_type_tag_object(env, info.This(), &kEngineTag);
  }

  static constexpr napi_type_tag kEngineTag = {0x3b9e0c41d27a4f18ull, 0x96c2e7a05f1d8b34ull};

  // testing.failNextEnginePass(engine, code): this engine's next pass fails with `code` (Backend::injectFault).
  static Napi::Value FailNextPass(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool ok = false;
    if (info.Length() >= 2 && info[0].IsObject()) napi_check_object_type_tag(env, info[0], &kEngineTag, &ok);
    if (!ok) ThrowArg(env, "Expected a native Engine for engine but received another value");
    if (!info[1].IsString()) ThrowArg(env, "Expected a string for code");
    return Guard(env, [&]() -> Napi::Value {
      const ErrorCode code = ErrorCodeFromName(info[1].As<Napi::String>());
      Unwrap(info[0].As<Napi::Object>())->Live(env)->injected.store(static_cast<int>(code));
      return env.Undefined();
    });
  }

 private:
  std::shared_ptr<Core> Live(Napi::Env env) {
    if (!core_) throw MakeError(env, ErrorCode::kState, "engine is closed");
    return core_;
  }

  Napi::Value Pass(const Napi::CallbackInfo& info, bool wantLogits) {
    Napi::Env env = info.Env();
    auto core = Live(env);
    if (inFlight_) throw MakeError(env, ErrorCode::kState, "a step is already running on this engine");
    if (info.Length() < 1 || !info[0].IsObject()) ThrowArg(env, "Expected a batch object");
    Napi::Object b = info[0].As<Napi::Object>();
    auto* w = new PassWorker(env, core, info.This().As<Napi::Object>(), wantLogits);
    try {
      w->seqs = CopyTyped<int32_t>(env, b.Get("seqs"), napi_int32_array, "seqs");
      w->counts = CopyTyped<int32_t>(env, b.Get("counts"), napi_int32_array, "counts");
      w->positions = CopyTyped<int32_t>(env, b.Get("positions"), napi_int32_array, "positions");
      w->tokens = CopyTyped<int32_t>(env, b.Get("tokens"), napi_int32_array, "tokens");
      const size_t n = w->seqs.size();
      if (n == 0) ThrowArg(env, "Expected at least one sequence in the batch");
      if (w->counts.size() != n || w->positions.size() != n) ThrowArg(env, "batch arrays differ in length");
      size_t total = 0;
      for (size_t i = 0; i < n; ++i) {
        if (w->counts[i] < 1 || w->positions[i] < 0) ThrowArg(env, "Expected counts >= 1 and positions >= 0");
        for (size_t j = 0; j < i; ++j)
          if (w->seqs[j] == w->seqs[i]) ThrowArg(env, "sequence " + std::to_string(w->seqs[i]) + " appears twice in the batch");
        total += w->counts[i];
      }
      if (w->tokens.size() != total) ThrowArg(env, "batch.tokens length must equal the sum of counts");
      if (!wantLogits) {
        w->temperature = CopyTyped<float>(env, b.Get("temperature"), napi_float32_array, "temperature");
        w->topP = CopyTyped<float>(env, b.Get("topP"), napi_float32_array, "topP");
        w->topK = CopyTyped<int32_t>(env, b.Get("topK"), napi_int32_array, "topK");
        w->rng = CopyTyped<uint64_t>(env, b.Get("rng"), napi_biguint64_array, "rng");
        if (w->temperature.size() != n || w->topP.size() != n || w->topK.size() != n || w->rng.size() != n)
          ThrowArg(env, "batch sampling arrays differ in length");
        w->rngRef = Napi::Persistent(b.Get("rng").As<Napi::Object>());
        ParseExtras(env, b, *w, n);
      }
    } catch (...) {
      delete w;
      throw;
    }
    inFlight_ = true;
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

  // The optional sampling fields of a step's batch; every offset and id is checked against its array (the JS
  // layer validated the values, this only keeps memory safe).
  void ParseExtras(Napi::Env env, Napi::Object b, PassWorker& w, size_t n) {
    const int vocab = core_->vocab;
    auto has = [&](const char* k) { Napi::Value v = b.Get(k); return !v.IsUndefined() && !v.IsNull(); };
    if (has("vocabLimit")) {
      const double v = b.Get("vocabLimit").ToNumber().DoubleValue();
      if (!(v >= 0 && v <= vocab)) ThrowArg(env, "Expected batch.vocabLimit in [0, vocab]");
      w.vocabLimit = static_cast<int>(v);
    }
    auto perSeqF = [&](const char* k, std::vector<float>& out) {
      if (!has(k)) return;
      out = CopyTyped<float>(env, b.Get(k), napi_float32_array, k);
      if (out.size() != n) ThrowArg(env, std::string("batch.") + k + " must have one entry per sequence");
    };
    perSeqF("minP", w.minP);
    perSeqF("presencePenalty", w.presence);
    perSeqF("frequencyPenalty", w.frequency);
    perSeqF("repetitionPenalty", w.repetition);
    // Ragged lists: off (B+1), non-decreasing from 0 to the lists' length; ids inside the vocabulary.
    auto ragged = [&](const char* offK, const char* idK, std::vector<int32_t>& off, std::vector<int32_t>& ids) {
      if (!has(offK)) return false;
      off = CopyTyped<int32_t>(env, b.Get(offK), napi_int32_array, offK);
      ids = CopyTyped<int32_t>(env, b.Get(idK), napi_int32_array, idK);
      if (off.size() != n + 1 || off[0] != 0 || static_cast<size_t>(off[n]) != ids.size())
        ThrowArg(env, std::string("batch.") + offK + " must hold B+1 offsets from 0 to the length of batch." + idK);
      for (size_t i = 0; i < n; ++i)
        if (off[i + 1] < off[i]) ThrowArg(env, std::string("batch.") + offK + " must not decrease");
      for (int32_t id : ids)
        if (id < 0 || id >= vocab) ThrowArg(env, std::string("batch.") + idK + " holds an id outside the vocabulary");
      return true;
    };
    if (ragged("biasOff", "biasIds", w.biasOff, w.biasIds)) {
      w.biasVals = CopyTyped<float>(env, b.Get("biasVals"), napi_float32_array, "biasVals");
      if (w.biasVals.size() != w.biasIds.size()) ThrowArg(env, "batch.biasVals and batch.biasIds differ in length");
    }
    if (ragged("histOff", "histIds", w.histOff, w.histIds)) {
      w.histCounts = CopyTyped<int32_t>(env, b.Get("histCounts"), napi_int32_array, "histCounts");
      if (w.histCounts.size() != w.histIds.size()) ThrowArg(env, "batch.histCounts and batch.histIds differ in length");
    }
    if (has("maskOff")) {
      w.maskOff = CopyTyped<int32_t>(env, b.Get("maskOff"), napi_int32_array, "maskOff");
      w.mask = CopyTyped<uint32_t>(env, b.Get("mask"), napi_uint32_array, "mask");
      const size_t words = (static_cast<size_t>(vocab) + 31) / 32;
      if (w.maskOff.size() != n) ThrowArg(env, "batch.maskOff must have one entry per sequence");
      for (int32_t o : w.maskOff)
        if (o >= 0 && static_cast<size_t>(o) + words > w.mask.size())
          ThrowArg(env, "batch.maskOff points past the end of batch.mask (each mask is ceil(vocab / 32) words)");
    }
    if (has("numLogprobs")) {
      w.numLogprobs = CopyTyped<int32_t>(env, b.Get("numLogprobs"), napi_int32_array, "numLogprobs");
      if (w.numLogprobs.size() != n) ThrowArg(env, "batch.numLogprobs must have one entry per sequence");
      for (int32_t k : w.numLogprobs)
        if (k > kMaxTopLogprobs) ThrowArg(env, "batch.numLogprobs entries must be <= " + std::to_string(kMaxTopLogprobs));
      auto out = [&](const char* k, napi_typedarray_type type, size_t len, Napi::ObjectReference& ref) {
        Napi::Value v = b.Get(k);
        if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type ||
            v.As<Napi::TypedArray>().ElementLength() != len)
          ThrowArg(env, std::string("batch.") + k + " must be an output typed array of " + std::to_string(len) + " entries");
        ref = Napi::Persistent(v.As<Napi::Object>());
      };
      out("logprob", napi_float32_array, n, w.logprobRef);
      out("topIds", napi_int32_array, n * kMaxTopLogprobs, w.topIdsRef);
      out("topLogprobs", napi_float32_array, n * kMaxTopLogprobs, w.topLogprobsRef);
      w.logprob.assign(n, 0.f);
      w.topIds.assign(n * kMaxTopLogprobs, -1);
      w.topLogprobs.assign(n * kMaxTopLogprobs, 0.f);
    }
    if (has("forks")) {
      w.forks = CopyTyped<int32_t>(env, b.Get("forks"), napi_int32_array, "forks");
      if (w.forks.size() % 3 != 0) ThrowArg(env, "batch.forks must hold (src, dst, len) triples");
    }
  }

  Napi::Value Step(const Napi::CallbackInfo& info) { return Pass(info, false); }
  Napi::Value Logits(const Napi::CallbackInfo& info) { return Pass(info, true); }

  // release(seq): frees the sequence's KV now, or before the next pass if one is running.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!core_) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsNumber()) ThrowArg(env, "Expected a sequence id");
    const int32_t seq = info[0].As<Napi::Number>().Int32Value();
    std::unique_lock<std::mutex> lock(core_->mu, std::try_to_lock);
    if (lock.owns_lock()) {
      core_->backend->releaseSeq(seq);
    } else {
      std::lock_guard<std::mutex> dl(core_->deferredMu);
      core_->deferred.push_back(seq);
    }
    return env.Undefined();
  }

  // close(): drops the backend, KV caches and lease (after the running pass, if any); idempotent.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    core_.reset();
    scratch_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Backend(const Napi::CallbackInfo& info) {
    return core_ ? Napi::String::New(info.Env(), core_->backendName) : info.Env().Null();
  }
  Napi::Value Busy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), inFlight_); }
  Napi::Value ScratchUsed(const Napi::CallbackInfo& info) {
    return scratch_ ? Napi::Number::New(info.Env(), static_cast<double>(scratch_->usedBytes())) : info.Env().Null();
  }

  // kvStats(): { blockTokens, blocksTotal, blocksFree } of the paged KV cache (null once closed). Releases queued
  // while a pass ran are applied first when no pass holds the engine, so the count is exact between passes.
  Napi::Value KvStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!core_) return env.Null();
    if (!inFlight_) {
      std::unique_lock<std::mutex> lock(core_->mu, std::try_to_lock);
      if (lock.owns_lock()) core_->ApplyDeferred();
    }
    const swapserve::engine::Backend::KvStats k = core_->backend->kvStats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("blockTokens", k.blockTokens);
    o.Set("blocksTotal", k.blocksTotal);
    o.Set("blocksFree", k.blocksFree);
    return o;
  }

  friend class PassWorker;
  std::shared_ptr<Core> core_;
  std::shared_ptr<HostScratchPool> scratch_;  // arena mode only (its usage is visible to tests)
  bool inFlight_ = false;
};

void PassWorker::Done() {
  if (wrap_.IsEmpty()) return;
  EngineWrap* w = Napi::ObjectWrap<EngineWrap>::Unwrap(wrap_.Value());
  if (w) w->inFlight_ = false;
}

}  // namespace

void RegisterEngineClass(Napi::Env env, Napi::Object exports) { exports.Set("Engine", EngineWrap::Define(env)); }
void RegisterEnginePassHooks(Napi::Env env, Napi::Object testing) {
  testing.Set("failNextEnginePass", Napi::Function::New(env, EngineWrap::FailNextPass));
}

}  // namespace swapserve::engine
