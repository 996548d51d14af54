// A NativeError as a JS Error carrying its stable code in `.code` (native/ts/errors.ts maps it), for every
// N-API surface of the addon (runtime, engine, testing hooks).
#pragma once
#include <napi.h>

#include <string>

#include "common/errors.h"

namespace swapserve {

inline Napi::Error MakeError(Napi::Env env, ErrorCode code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrorCodeName(code)));
  return e;
}

// Runs `body` and converts a NativeError into a JS error with its stable code.
template <class F>
Napi::Value Guard(Napi::Env env, F&& body) {
  try {
    return body();
  } catch (const NativeError& e) {
    throw MakeError(env, e.code(), e.what());
  }
}

}  // namespace swapserve
