// The runtime's N-API async plumbing: long work runs on its own thread and settles a Promise through a
// thread-safe function (progress and group callbacks on the JS thread); shared by register.cc and testing.cc.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <thread>

#include "common/errors.h"
#include "common/napi_error.h"
#include "runtime/core.h"

namespace swapserve::runtime {

struct Msg {
  enum Type { kProgress, kGroup, kDone } type;
  uint64_t done = 0, total = 0;
  int group = 0;
  bool ok = true;
  ErrorCode code = ErrorCode::kIo;
  std::string error;
  std::function<Napi::Value(Napi::Env)> value;  // builds the resolution value on the JS thread
};

struct Ctx {
  explicit Ctx(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise::Deferred deferred;
  Napi::FunctionReference onProgress, onGroup;
};

inline void CallJs(Napi::Env env, Napi::Function, Ctx* ctx, Msg* msg) {
  std::unique_ptr<Msg> m(msg);
  if (env == nullptr || m == nullptr) return;  // tearing down
  Napi::HandleScope scope(env);
  try {
    switch (m->type) {
      case Msg::kProgress:
        if (!ctx->onProgress.IsEmpty()) {
          ctx->onProgress.Call({Napi::Number::New(env, static_cast<double>(m->done)),
                                Napi::Number::New(env, static_cast<double>(m->total))});
        }
        break;
      case Msg::kGroup:
        if (!ctx->onGroup.IsEmpty()) ctx->onGroup.Call({Napi::Number::New(env, m->group)});
        break;
      case Msg::kDone:
        if (m->ok) ctx->deferred.Resolve(m->value ? m->value(env) : env.Undefined());
        else ctx->deferred.Reject(MakeError(env, m->code, m->error).Value());
        break;
    }
  } catch (const Napi::Error&) {
    // A throwing progress/group callback must not break the move (the JS wrapper already guards them).
  }
}

using Tsfn = Napi::TypedThreadSafeFunction<Ctx, Msg, CallJs>;

// Runs work(callbacks) on a new thread; the Promise settles with toJs(result) or the NativeError it threw.
template <class R>
Napi::Promise RunAsync(Napi::Env env, std::function<R(const MoveCallbacks&)> work,
                       std::function<Napi::Value(Napi::Env, const R&)> toJs, Napi::Value onProgress = Napi::Value(),
                       Napi::Value onGroup = Napi::Value()) {
  Ctx* ctx = new Ctx(env);
  if (!onProgress.IsEmpty() && onProgress.IsFunction()) ctx->onProgress = Napi::Persistent(onProgress.As<Napi::Function>());
  if (!onGroup.IsEmpty() && onGroup.IsFunction()) ctx->onGroup = Napi::Persistent(onGroup.As<Napi::Function>());
  Napi::Promise promise = ctx->deferred.Promise();
  Tsfn tsfn = Tsfn::New(env, "swapserve.runtime", 0, 1, ctx, [](Napi::Env, void*, Ctx* c) { delete c; });
  bool wantProgress = !ctx->onProgress.IsEmpty(), wantGroup = !ctx->onGroup.IsEmpty();
  std::thread([tsfn, work = std::move(work), toJs = std::move(toJs), wantProgress, wantGroup]() mutable {
    MoveCallbacks cb;
    if (wantProgress) {
      cb.progress = [tsfn](uint64_t done, uint64_t total) mutable {
        Msg* m = new Msg{Msg::kProgress};
        m->done = done;
        m->total = total;
        if (tsfn.NonBlockingCall(m) != napi_ok) delete m;
      };
    }
    if (wantGroup) {
      cb.group = [tsfn](int g) mutable {
        Msg* m = new Msg{Msg::kGroup};
        m->group = g;
        if (tsfn.NonBlockingCall(m) != napi_ok) delete m;
      };
    }
    Msg* done = new Msg{Msg::kDone};
    try {
      // The work (and what it captured: arenas, blocks) is destroyed before the Promise settles, so a caller that
      // continues at once sees the pools as the work left them.
      auto w = std::move(work);
      auto r = std::make_shared<R>(w(cb));
      w = nullptr;
      done->value = [r, toJs](Napi::Env env) { return toJs(env, *r); };
    } catch (const NativeError& e) {
      done->ok = false;
      done->code = e.code();
      done->error = e.what();
    } catch (const std::exception& e) {
      done->ok = false;
      done->code = ErrorCode::kIo;
      done->error = e.what();
    }
    if (tsfn.BlockingCall(done) != napi_ok) delete done;
    tsfn.Release();
  }).detach();
  return promise;
}

struct Unit {};

inline uint64_t U64(Napi::Value v) { return static_cast<uint64_t>(v.As<Napi::Number>().DoubleValue()); }

}  // namespace swapserve::runtime
