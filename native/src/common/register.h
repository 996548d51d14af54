// Registration hooks: one per concern, called by addon.cc.
#pragma once
#include <napi.h>

namespace swapserve {
// native/src/runtime/: weights tiers (disk -> pinned host -> device), moves, pools, errors.
void RegisterRuntime(Napi::Env env, Napi::Object exports);
// native/src/engine/: forward pass, sampling, KV cache, batched decode.
void RegisterEngine(Napi::Env env, Napi::Object exports);
}  // namespace swapserve
