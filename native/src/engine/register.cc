// Registers the engine's native surface: the Engine class and the per-op test hooks.
#include "common/register.h"

#include "engine/bindings.h"

namespace swapserve {
void RegisterEngine(Napi::Env env, Napi::Object exports) {
  engine::RegisterEngineClass(env, exports);
  engine::RegisterEngineOps(env, exports);
}
}  // namespace swapserve
