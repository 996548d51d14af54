// Native errors with stable codes; the JS layer maps them to typed errors (native/ts/errors.ts).
#pragma once
#include <stdexcept>
#include <string>

namespace swapserve {

// Stable codes shared with native/ts/errors.ts.
enum class ErrorCode {
  kInvalidArgument,  // SWAPSERVE_INVALID_ARGUMENT
  kBudget,           // SWAPSERVE_BUDGET: a budget would be exceeded (raised before any allocation)
  kOom,              // SWAPSERVE_OOM: the device/host allocator failed (recoverable: evict and retry)
  kSticky,           // SWAPSERVE_CUDA_STICKY: the CUDA context is corrupted; the runtime is unusable
  kCuda,             // SWAPSERVE_CUDA: any other CUDA failure
  kIo,               // SWAPSERVE_IO: reading a model file failed
  kNotResident,      // SWAPSERVE_NOT_RESIDENT
  kState,            // SWAPSERVE_STATE: the move is not valid in the model's current residency
  kAborted,          // SWAPSERVE_ABORTED
  kUnusable,         // SWAPSERVE_UNUSABLE: the runtime was marked unusable by an earlier sticky error
};

const char* ErrorCodeName(ErrorCode code);

class NativeError : public std::runtime_error {
 public:
  NativeError(ErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace swapserve
