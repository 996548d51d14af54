// The runtime's test hooks, registered on the addon's `testing` object only (reached through native/ts/testing.ts;
// production modules never import it): fail or hold the next move, fail the next engine pass over the runtime, hold
// an engine lease from JS.
#include <napi.h>

#include "common/errors.h"
#include "common/napi_error.h"
#include "common/register.h"
#include "common/weights.h"
#include "runtime/core.h"
#include "runtime/hash.h"
#include "runtime/napi_async.h"

namespace swapserve {
namespace runtime {
namespace {

// A WeightsLease held from JS (tests only): the same path the engine takes, observable from a test.
class TestLease : public Napi::ObjectWrap<TestLease> {
 public:
  static Napi::FunctionReference* ctor;
  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "TestLease",
                                   {InstanceMethod("release", &TestLease::Release),
                                    InstanceMethod("checksum", &TestLease::Checksum),
                                    InstanceAccessor("groups", &TestLease::Groups, nullptr)});
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }
  explicit TestLease(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TestLease>(info) {}
  std::shared_ptr<WeightsLease> lease;
  std::shared_ptr<RuntimeCore> core;
  std::vector<Segment> segments;

 private:
  Napi::Value Release(const Napi::CallbackInfo& info) {
    lease.reset();
    return info.Env().Undefined();
  }
  Napi::Value Groups(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), lease ? lease->numGroups() : 0);
  }
  // Waits for every group as the engine would (waitGroup on a stream), then hashes the segments' bytes.
  Napi::Value Checksum(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      if (!lease) throw NativeError(ErrorCode::kState, "the lease was released");
      auto l = lease;
      auto c = core;
      auto segs = segments;
      return RunAsync<std::string>(
          info.Env(),
          [l, c, segs](const MoveCallbacks&) {
            c->device->bindThread();
            auto stream = c->device->newStream();
            for (int g = 0; g < l->numGroups(); ++g) l->waitGroup(g, stream->handle());
            Hasher h;
            std::vector<uint8_t> buf;
            for (const Segment& s : segs) {
              buf.resize(s.bytes);
              stream->copyToHost(buf.data(), l->base() + s.arenaOffset, s.bytes);
              stream->synchronize();
              h.update(buf.data(), s.bytes);
            }
            return h.hex();
          },
          [](Napi::Env env, const std::string& s) { return Napi::String::New(env, s); });
    });
  }
};
Napi::FunctionReference* TestLease::ctor = nullptr;

// Each hook takes the NativeRuntime object first (tagged; anything else is an invalid argument).

// failNextMove(runtime, code): the next move's device step throws NativeError(code) (error mapping, sticky codes).
Napi::Value FailNextMove(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    auto core = CoreFromObject(info[0].As<Napi::Object>());
    core->failNext(ErrorCodeFromName(info[1].As<Napi::String>()));
    return info.Env().Undefined();
  });
}

// failNextPass(runtime, code): the next engine pass over this runtime (any of its engines) fails with `code`; the
// CUDA engine turns cuda_sticky into a genuine sticky error inside that pass (engine/cuda/backend.cc).
Napi::Value FailNextPass(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    auto core = CoreFromObject(info[0].As<Napi::Object>());
    core->failNextPass(ErrorCodeFromName(info[1].As<Napi::String>()));
    return info.Env().Undefined();
  });
}

// corruptOnProbe(runtime): the runtime's next probe finds a sticky error (a context an earlier kernel corrupted,
// reported first by a call that did not classify it, as cuBLAS does).
Napi::Value CorruptOnProbe(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    CoreFromObject(info[0].As<Napi::Object>())->corruptOnProbe();
    return info.Env().Undefined();
  });
}

// holdNextMove(runtime): the next move waits at its start until releaseHold(runtime) (or close).
Napi::Value HoldNextMove(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    CoreFromObject(info[0].As<Napi::Object>())->holdNext();
    return info.Env().Undefined();
  });
}

Napi::Value ReleaseHold(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    CoreFromObject(info[0].As<Napi::Object>())->releaseHold();
    return info.Env().Undefined();
  });
}

// acquireLease(runtime, id, [[arenaOffset, bytes], ...]): a TestLease over the model's weights.
Napi::Value AcquireLease(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Object rt = info[0].As<Napi::Object>();
    auto core = CoreFromObject(rt);
    std::string id = info[1].As<Napi::String>();
    auto lease = AcquireWeights(rt, id);
    Napi::Object obj = TestLease::ctor->New({});
    TestLease* t = TestLease::Unwrap(obj);
    t->lease = lease;
    t->core = core;
    Napi::Array segs = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < segs.Length(); ++i) {
      Napi::Array s = segs.Get(i).As<Napi::Array>();
      t->segments.push_back({0, 0, U64(s.Get(1u)), U64(s.Get(0u))});  // [arenaOffset, bytes]
    }
    return obj;
  });
}

}  // namespace
}  // namespace runtime

void RegisterCodecTesting(Napi::Env env, Napi::Object testing);  // runtime/codec/binding.cc

void RegisterRuntimeTesting(Napi::Env env, Napi::Object testing) {
  runtime::TestLease::Init(env);
  RegisterCodecTesting(env, testing);
  testing.Set("failNextMove", Napi::Function::New(env, runtime::FailNextMove));
  testing.Set("failNextPass", Napi::Function::New(env, runtime::FailNextPass));
  testing.Set("corruptOnProbe", Napi::Function::New(env, runtime::CorruptOnProbe));
  testing.Set("holdNextMove", Napi::Function::New(env, runtime::HoldNextMove));
  testing.Set("releaseHold", Napi::Function::New(env, runtime::ReleaseHold));
  testing.Set("acquireLease", Napi::Function::New(env, runtime::AcquireLease));
}

}  // namespace swapserve
