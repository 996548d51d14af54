// The engine's N-API surface, split by concern; register.cc calls each.
#pragma once
#include <napi.h>

#include "common/errors.h"
#include "common/napi_error.h"
#include "engine/backend.h"

namespace swapserve::engine {

// exports.Engine: the native engine class (wrap.cc).
void RegisterEngineClass(Napi::Env env, Napi::Object exports);
// testing.engineOps: the CPU ops one by one, synchronous, for tests against scalar references (ops_binding.cc);
// registered on the addon's `testing` object, not on its production exports.
void RegisterEngineOps(Napi::Env env, Napi::Object testing);
// testing.failNextEnginePass: the next pass of one engine fails with a given native code (wrap.cc).
void RegisterEnginePassHooks(Napi::Env env, Napi::Object testing);
#ifdef SWAPSERVE_CUDA
// exports.warmUp(device): the process's first library products, run at worker start (cuda/warmup.cc).
void RegisterWarmUp(Napi::Env env, Napi::Object exports);
#endif

}  // namespace swapserve::engine
