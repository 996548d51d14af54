// The engine's N-API surface, split by concern; register.cc calls each.
#pragma once
#include <napi.h>

#include "common/errors.h"
#include "engine/backend.h"

namespace swapserve::engine {

// exports.Engine: the native engine class (engine_wrap.cc).
void RegisterEngineClass(Napi::Env env, Napi::Object exports);
// exports.engineOps: the CPU ops one by one, synchronous, for tests against scalar references (ops_binding.cc).
void RegisterEngineOps(Napi::Env env, Napi::Object exports);

// A JS Error carrying the native error's stable code in `.code`.
Napi::Error MakeError(Napi::Env env, ErrorCode code, const std::string& msg);

}  // namespace swapserve::engine
