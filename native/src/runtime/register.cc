// Placeholder until the weights runtime lands (owned by the runtime's author; replace whole).
#include "core/register.h"
#include "core/weights.h"
#include "core/errors.h"

namespace swapserve {
void RegisterRuntime(Napi::Env, Napi::Object) {}
std::shared_ptr<WeightsLease> AcquireWeights(Napi::Object, const std::string&) {
  throw NativeError(ErrorCode::kNotResident, "runtime not built yet");
}
std::shared_ptr<ScratchPool> GetScratchPool(Napi::Object) {
  throw NativeError(ErrorCode::kNotResident, "runtime not built yet");
}
}  // namespace swapserve
