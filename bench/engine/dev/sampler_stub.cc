// Used by the dev harness only where the CPU engine's sampler (native/src/engine/sampler.cc) is absent: greedy.
#include "common/errors.h"
#include "engine/backend.h"

namespace swapserve::engine {
int32_t SampleLogits(const float* logits, int vocab, Sampling&) {
  int32_t best = 0;
  for (int i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}
void Backend::forwardSample(const std::vector<SeqInput>&, Sampling*, int32_t*) {
  throw NativeError(ErrorCode::kInvalidArgument, "stub");
}
}  // namespace swapserve::engine
