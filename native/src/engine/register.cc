// Registers the engine's native surface: the Engine class; the per-op test hooks go on `testing`.
#include "common/register.h"

#include "engine/bindings.h"

namespace swapserve {
void RegisterEngine(Napi::Env env, Napi::Object exports) {
  engine::RegisterEngineClass(env, exports);
#ifdef SWAPSERVE_CUDA
  engine::RegisterWarmUp(env, exports);
#endif
}
void RegisterEngineTesting(Napi::Env env, Napi::Object testing) {
  engine::RegisterEngineOps(env, testing);
  engine::RegisterEnginePassHooks(env, testing);
}
}  // namespace swapserve
