// N-API surface of the weights runtime: the NativeRuntime class (wrapped by native/ts/runtime.ts, which validates
// every argument first), AcquireWeights / GetScratchPool for the engine (test hooks: testing.cc). Long work runs on its
// own thread and settles a Promise through a thread-safe function; nothing here blocks the JS thread.
#include <napi.h>

#include <algorithm>
#include <thread>

#include "common/errors.h"
#include "common/napi_error.h"
#include "common/register.h"
#include "common/weights.h"
#include "runtime/core.h"
#include "runtime/hash.h"
#include "runtime/napi_async.h"
#include "runtime/page_cache.h"

namespace swapserve {
namespace runtime {
namespace {

// Tags NativeRuntime objects so AcquireWeights can check what it was handed (napi_type_tag, N-API 8).
const napi_type_tag kRuntimeTag = {0x5f1c2a7e93b14d60ull, 0xa8d3e1f4c2b70915ull};

Napi::Object ResultToJs(Napi::Env env, const char* kind, const std::string& id, const MoveResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", kind);
  o.Set("modelId", id);
  o.Set("bytes", static_cast<double>(r.bytes));
  o.Set("wallMs", r.wallMs);
  o.Set("deviceMs", r.deviceMs);
  if (!r.cache.empty()) {
    o.Set("cache", r.cache);
    o.Set("cacheReason", r.cacheReason);
  }
  return o;
}

Napi::Object PoolToJs(Napi::Env env, const PoolInfo& p, bool withReady) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("budgetBytes", static_cast<double>(p.budget));
  o.Set("usedBytes", static_cast<double>(p.used));
  if (withReady) o.Set("ready", p.ready);
  return o;
}

// ------------------------------------------------------------------------------------------- NativeRuntime

class NativeRuntime : public Napi::ObjectWrap<NativeRuntime> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeRuntime",
                       {
                           InstanceMethod("register", &NativeRuntime::Register),
                           InstanceMethod("unregister", &NativeRuntime::Unregister),
                           InstanceMethod("move", &NativeRuntime::Move),
                           InstanceMethod("evict", &NativeRuntime::Evict),
                          InstanceMethod("reclaimPrefix", &NativeRuntime::ReclaimPrefix),
                           InstanceMethod("drop", &NativeRuntime::Drop),
                           InstanceMethod("residency", &NativeRuntime::Residency),
                           InstanceMethod("usage", &NativeRuntime::Usage),
                           InstanceMethod("checksum", &NativeRuntime::Checksum),
                           InstanceMethod("whenHostReady", &NativeRuntime::WhenHostReady),
                           InstanceMethod("pinHostPool", &NativeRuntime::PinHostPool),
                           InstanceMethod("close", &NativeRuntime::Close),
                           InstanceMethod("benchFloor", &NativeRuntime::BenchFloor),
                           InstanceMethod("compress", &NativeRuntime::Compress),
                           InstanceMethod("saveHostImage", &NativeRuntime::SaveHostImage),
                           InstanceMethod("probe", &NativeRuntime::Probe),
                           InstanceAccessor("healthy", &NativeRuntime::Healthy, nullptr),
                           InstanceAccessor("backend", &NativeRuntime::Backend, nullptr),
                           InstanceAccessor("deviceName", &NativeRuntime::DeviceName, nullptr),
                       });
  }

  // new NativeRuntime({ backend, device, hostBudgetBytes, gpuBudgetBytes, scratchBudgetBytes, stagingBytes, readThreads })
  explicit NativeRuntime(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeRuntime>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    RuntimeOptions opts;
    opts.cuda = o.Get("backend").As<Napi::String>().Utf8Value() == "cuda";
    opts.device = o.Get("device").As<Napi::Number>().Int32Value();
    opts.hostBudget = U64(o.Get("hostBudgetBytes"));
    opts.gpuBudget = U64(o.Get("gpuBudgetBytes"));
    opts.scratchBudget = U64(o.Get("scratchBudgetBytes"));
    opts.stagingBytes = U64(o.Get("stagingBytes"));
    opts.readThreads = o.Get("readThreads").As<Napi::Number>().Int32Value();
    opts.deferHostPin = o.Get("deferHostPin").ToBoolean().Value();
    opts.codecVerify = o.Get("codecVerify").ToBoolean().Value();
    if (o.Get("codecThreads").IsNumber()) opts.codecThreads = o.Get("codecThreads").As<Napi::Number>().Int32Value();
    if (o.Get("codecWorkBytes").IsNumber()) opts.codecWorkBytes = U64(o.Get("codecWorkBytes"));
    try {
      core = RuntimeCore::Open(opts);
    } catch (const NativeError& e) {
      throw MakeError(env, e.code(), e.what());
    }
    napi_type_tag_object(env, info.This(), &kRuntimeTag);
  }

  std::shared_ptr<RuntimeCore> core;

 private:
  // register(id, { totalBytes, files: string[], segments: [file, fileOffset, bytes, arenaOffset][], groups: [start, end][] })
  Napi::Value Register(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      std::string id = info[0].As<Napi::String>();
      Napi::Object l = info[1].As<Napi::Object>();
      Layout layout;
      layout.totalBytes = U64(l.Get("totalBytes"));
      Napi::Array files = l.Get("files").As<Napi::Array>();
      for (uint32_t i = 0; i < files.Length(); ++i) layout.files.push_back(files.Get(i).As<Napi::String>());
      Napi::Array segs = l.Get("segments").As<Napi::Array>();
      for (uint32_t i = 0; i < segs.Length(); ++i) {
        Napi::Array s = segs.Get(i).As<Napi::Array>();
        layout.segments.push_back({static_cast<uint32_t>(U64(s.Get(0u))), U64(s.Get(1u)), U64(s.Get(2u)), U64(s.Get(3u))});
      }
      Napi::Array groups = l.Get("groups").As<Napi::Array>();
      for (uint32_t i = 0; i < groups.Length(); ++i) {
        Napi::Array g = groups.Get(i).As<Napi::Array>();
        layout.groups.emplace_back(U64(g.Get(0u)), U64(g.Get(1u)));
      }
      core->registerModel(id, std::move(layout));
      return info.Env().Undefined();
    });
  }

  Napi::Value Unregister(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      core->unregisterModel(info[0].As<Napi::String>());
      return info.Env().Undefined();
    });
  }

  // move(kind: 'load' | 'swap_in' | 'load_to_gpu', id, onProgress?, onGroup?, cache?: {path, identity}) -> Promise<result>
  // (cache: load only, the compressed disk cache file to try first; the result then says how it went)
  Napi::Value Move(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      std::string kind = info[0].As<Napi::String>();
      std::string id = info[1].As<Napi::String>();
      MoveKind k = kind == "load" ? MoveKind::kLoad : kind == "swap_in" ? MoveKind::kSwapIn : MoveKind::kLoadToGpu;
      auto c = core;
      std::string cachePath, cacheIdentity;
      if (k == MoveKind::kLoad && info.Length() > 4 && info[4].IsObject()) {
        Napi::Object cache = info[4].As<Napi::Object>();
        cachePath = cache.Get("path").As<Napi::String>().Utf8Value();
        cacheIdentity = cache.Get("identity").As<Napi::String>().Utf8Value();
      }
      RuntimeCore::Prepared p = c->begin(k, id);  // state check and reservation, now (throws synchronously)
      p.cachePath = std::move(cachePath);
      p.cacheIdentity = std::move(cacheIdentity);
      return RunAsync<MoveResult>(
          info.Env(), [c, p](const MoveCallbacks& cb) { return c->run(p, cb); },
          [k, id](Napi::Env env, const MoveResult& r) { return ResultToJs(env, MoveKindName(k), id, r); }, info[2],
          info[3]);
    });
  }

  Napi::Value Evict(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      std::string id = info[0].As<Napi::String>();
      int keep = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
      return ResultToJs(info.Env(), "evict", id, core->evict(id, keep));
    });
  }

  // reclaimPrefix(id) -> result: a parked model's resident gpu prefix returns to the pool (bytes: what it held).
  Napi::Value ReclaimPrefix(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      std::string id = info[0].As<Napi::String>();
      return ResultToJs(info.Env(), "evict", id, core->reclaimPrefix(id));
    });
  }

  Napi::Value Drop(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      std::string id = info[0].As<Napi::String>();
      return ResultToJs(info.Env(), "drop", id, core->drop(id));
    });
  }

  Napi::Value Residency(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      ResidencyInfo r = core->residency(info[0].As<Napi::String>());
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("state", r.state);
      o.Set("host", r.host);
      o.Set("gpu", r.gpu);
      o.Set("leases", r.leases);
      o.Set("prefixGroups", r.prefixGroups);
      o.Set("prefixBytes", static_cast<double>(r.prefixBytes));
      o.Set("codec", r.codec);
      o.Set("codecRatio", r.codecRatio);
      o.Set("codecStoredBytes", static_cast<double>(r.codecStoredBytes));
      return o;
    });
  }

  Napi::Value Usage(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("host", PoolToJs(env, core->hostUsage(), true));
    o.Set("gpu", PoolToJs(env, core->gpuUsage(), false));
    o.Set("scratch", PoolToJs(env, core->scratchUsage(), false));
    o.Set("codecWorkBytes", Napi::Number::New(env, static_cast<double>(core->codecWorkBytes())));
    return o;
  }

  // checksum(id, 'host' | 'gpu') -> Promise<hex>: hash of the segments' bytes in arena order.
  Napi::Value Checksum(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      bool gpu = info[1].As<Napi::String>().Utf8Value() == "gpu";
      auto c = core;
      auto [m, a] = c->arenaFor(info[0].As<Napi::String>(), gpu);
      return RunAsync<std::string>(
          info.Env(), [c, m = m, a = a, gpu](const MoveCallbacks&) { return c->checksum(m, a, gpu); },
          [](Napi::Env env, const std::string& s) { return Napi::String::New(env, s); });
    });
  }

  // benchFloor(id, reps, bytes?) -> Promise<number[]>: ms of plain host-arena -> device copies of the model's bytes.
  Napi::Value BenchFloor(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      auto c = core;
      auto [m, a] = c->arenaFor(info[0].As<Napi::String>(), false);
      int reps = info[1].As<Napi::Number>().Int32Value();
      uint64_t bytes = m->layout.totalBytes;
      // Optional: the first `bytes` of the arena only (partial residency: the floor of the bytes a swap moves).
      if (info.Length() > 2 && info[2].IsNumber()) bytes = std::min<uint64_t>(bytes, U64(info[2]));
      if (bytes == 0) bytes = 1;
      return RunAsync<std::vector<double>>(
          info.Env(), [c, a = a, bytes, reps](const MoveCallbacks&) { return c->floorCopy(a, bytes, reps); },
          [](Napi::Env env, const std::vector<double>& v) {
            Napi::Array arr = Napi::Array::New(env, v.size());
            for (size_t i = 0; i < v.size(); ++i) arr.Set(static_cast<uint32_t>(i), v[i]);
            return arr;
          });
    });
  }

  // compress(id, pieces: [arenaOffset, bytes, dtype (0 bf16, 1 fp16, 2 fp32, -1 stored raw)][], maxRatio)
  //   -> Promise<{state, reason, ratio, rawBytes, storedBytes, encodeMs, wallMs}>
  Napi::Value Compress(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      std::string id = info[0].As<Napi::String>();
      Napi::Array arr = info[1].As<Napi::Array>();
      std::vector<codec::Piece> pieces;
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        Napi::Array t = arr.Get(i).As<Napi::Array>();
        codec::Piece pc;
        pc.arenaOffset = U64(t.Get(0u));
        pc.bytes = U64(t.Get(1u));
        int d = t.Get(2u).As<Napi::Number>().Int32Value();
        pc.coded = d >= 0;
        pc.dtype = static_cast<codec::DType>(d >= 0 ? d : 0);
        pieces.push_back(pc);
      }
      double maxRatio = info[2].As<Napi::Number>().DoubleValue();
      auto c = core;
      auto job = c->beginCompress(id, std::move(pieces), maxRatio);
      return RunAsync<RuntimeCore::CompressResult>(
          info.Env(), [c, job](const MoveCallbacks&) { return c->runCompress(job); },
          [](Napi::Env env, const RuntimeCore::CompressResult& r) {
            Napi::Object o = Napi::Object::New(env);
            o.Set("state", r.state);
            o.Set("reason", r.reason);
            o.Set("ratio", r.ratio);
            o.Set("rawBytes", static_cast<double>(r.rawBytes));
            o.Set("storedBytes", static_cast<double>(r.storedBytes));
            o.Set("encodeMs", r.encodeMs);
            o.Set("wallMs", r.wallMs);
            return o;
          });
    });
  }

  // saveHostImage(id, path, identity) -> Promise<bytes>: writes the model's compressed host image to a new cache file.
  Napi::Value SaveHostImage(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      std::string id = info[0].As<Napi::String>();
      std::string path = info[1].As<Napi::String>();
      std::string identity = info[2].As<Napi::String>();
      auto c = core;
      auto job = c->beginSaveImage(id);
      return RunAsync<uint64_t>(
          info.Env(), [c, job, path, identity](const MoveCallbacks&) { return c->runSaveImage(job, path, identity); },
          [](Napi::Env env, const uint64_t& n) { return Napi::Number::New(env, static_cast<double>(n)); });
    });
  }

  Napi::Value PinHostPool(const Napi::CallbackInfo& info) {
    core->pinHostPool();
    return info.Env().Undefined();
  }

  Napi::Value WhenHostReady(const Napi::CallbackInfo& info) {
    auto c = core;
    return RunAsync<Unit>(
        info.Env(),
        [c](const MoveCallbacks&) {
          c->waitHostReady();
          return Unit{};
        },
        [](Napi::Env env, const Unit&) { return env.Undefined(); });
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    auto c = core;
    return RunAsync<Unit>(
        info.Env(),
        [c](const MoveCallbacks&) {
          c->close();
          return Unit{};
        },
        [](Napi::Env env, const Unit&) { return env.Undefined(); });
  }

  Napi::Value Healthy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), core->healthy()); }
  // probe(): synchronous; waits for the device's queued work (a failure path only). Returns healthy.
  Napi::Value Probe(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), core->probe()); });
  }
  Napi::Value Backend(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), core->device->cuda() ? "cuda" : "cpu");
  }
  Napi::Value DeviceName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), core->device->name()); }
};

Napi::Value HashBytes(const Napi::CallbackInfo& info) {
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  Hasher h;
  h.update(b.Data(), b.Length());
  return Napi::String::New(info.Env(), h.hex());
}

Napi::Value DropCache(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    DropPageCache(info[0].As<Napi::String>());
    return info.Env().Undefined();
  });
}

Napi::Value Cached(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), CachedFraction(info[0].As<Napi::String>())); });
}

Napi::Value DeviceCount(const Napi::CallbackInfo& info) {
#ifdef SWAPSERVE_CUDA
  return Napi::Number::New(info.Env(), CudaDeviceCount());
#else
  return Napi::Number::New(info.Env(), 0);
#endif
}

Napi::Value Prewarm(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw NativeError(ErrorCode::kInvalidArgument, "prewarm: Expected a device ordinal");
#ifdef SWAPSERVE_CUDA
    const double d = info[0].As<Napi::Number>().DoubleValue();
    if (d >= 0 && d <= 255 && d == static_cast<int>(d)) CudaPrewarm(static_cast<int>(d));
#endif
    return info.Env().Undefined();
  });
}

}  // namespace

std::shared_ptr<RuntimeCore> CoreFromObject(Napi::Object obj) {
  bool ok = false;
  napi_check_object_type_tag(obj.Env(), obj, &kRuntimeTag, &ok);
  if (!ok) throw NativeError(ErrorCode::kInvalidArgument, "Expected a NativeRuntime (Runtime.native) but received another object");
  auto core = NativeRuntime::Unwrap(obj)->core;
  if (!core) throw NativeError(ErrorCode::kState, "the runtime is not open");
  return core;
}

}  // namespace runtime

void RegisterRuntime(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeRuntime", runtime::NativeRuntime::Init(env));
  exports.Set("hashBytes", Napi::Function::New(env, runtime::HashBytes));
  exports.Set("deviceCount", Napi::Function::New(env, runtime::DeviceCount));
  exports.Set("prewarm", Napi::Function::New(env, runtime::Prewarm));
  exports.Set("dropPageCache", Napi::Function::New(env, runtime::DropCache));
  exports.Set("cachedFraction", Napi::Function::New(env, runtime::Cached));
}

std::shared_ptr<WeightsLease> AcquireWeights(Napi::Object runtimeObj, const std::string& modelId) {
  return runtime::CoreFromObject(runtimeObj)->acquire(modelId);
}

std::shared_ptr<ScratchPool> GetScratchPool(Napi::Object runtimeObj) {
  auto core = runtime::CoreFromObject(runtimeObj);
  if (core->closed()) throw NativeError(ErrorCode::kState, "the runtime is closed");
  return core->scratch();
}

namespace {
// The engine's view of the runtime's health; a weak reference, so an engine outliving its runtime keeps nothing alive
// (a closed runtime counts as usable here: its own calls report that it is closed).
class RuntimeHealth final : public DeviceHealth {
 public:
  explicit RuntimeHealth(std::weak_ptr<runtime::RuntimeCore> core) : core_(std::move(core)) {}
  void markSticky() override {
    if (auto c = core_.lock()) c->markUnusable();
  }
  bool usable() const override {
    auto c = core_.lock();
    return !c || c->healthy();
  }
  int takePassFault() override {
    auto c = core_.lock();
    return c ? c->takePassFault() : -1;
  }

 private:
  std::weak_ptr<runtime::RuntimeCore> core_;
};
}  // namespace

std::shared_ptr<DeviceHealth> GetDeviceHealth(Napi::Object runtimeObj) {
  return std::make_shared<RuntimeHealth>(runtime::CoreFromObject(runtimeObj));
}

}  // namespace swapserve
