// Registration hooks: one per concern, called by addon.cc.
#pragma once
#include <napi.h>

namespace swapserve {
// native/src/runtime/: weights tiers (disk -> pinned host -> device), moves, pools, errors.
void RegisterRuntime(Napi::Env env, Napi::Object exports);
// native/src/engine/: forward pass, sampling, KV cache, batched decode.
void RegisterEngine(Napi::Env env, Napi::Object exports);
// Test hooks, on the addon's `testing` object only (native/ts/testing.ts): runtime/testing.cc, engine/ops_binding.cc.
void RegisterRuntimeTesting(Napi::Env env, Napi::Object testing);
void RegisterEngineTesting(Napi::Env env, Napi::Object testing);
}  // namespace swapserve
