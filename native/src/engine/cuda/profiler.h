// Where a forward pass's time goes on the CUDA backend: events between its ops, one summary line per pass on
// stderr (engine tuning `profile`, or env SWAPSERVE_CUDA_PROFILE=1; it turns programmatic dependent launch off).
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <utility>
#include <vector>

namespace swapserve::engine {

class Profiler {
 public:
  bool on = false;
  ~Profiler();
  // Records an event on s after the previous op, named after the op that ends here.
  void mark(const char* name, cudaStream_t s);
  // After the stream has finished: the time of each op (from the previous mark to its own, ms), summed by name,
  // for a pass of T tokens over B sequences.
  void report(int T, int B);

 private:
  std::vector<std::pair<std::string, cudaEvent_t>> marks_;
};

}  // namespace swapserve::engine
