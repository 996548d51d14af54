// Placeholder until the engine lands (owned by the engine's author; replace whole).
#include "core/register.h"

namespace swapserve {
void RegisterEngine(Napi::Env, Napi::Object) {}
}  // namespace swapserve
