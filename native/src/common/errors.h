// Native errors with stable codes; the JS layer maps them to typed errors (native/ts/errors.ts).
#pragma once
#include <stdexcept>
#include <string>

namespace swapserve {

// Stable codes shared with native/ts/errors.ts.
enum class ErrorCode {
  kInvalidArgument,  // invalid_argument
  kBudget,           // budget: a budget would be exceeded (raised before any allocation)
  kOom,              // oom: the device/host allocator failed (recoverable: evict and retry)
  kSticky,           // cuda_sticky: the CUDA context is corrupted; the runtime is unusable
  kCuda,             // cuda: any other CUDA failure
  kIo,               // io: reading a model file failed
  kNotResident,      // not_resident
  kState,            // state: the move is not valid in the model's current residency
  kAborted,          // aborted
  kUnusable,         // unusable: the runtime was marked unusable by an earlier sticky error
};

const char* ErrorCodeName(ErrorCode code);
// The code named `name` (ErrorCodeName's spelling); throws NativeError(kInvalidArgument) naming it when none is.
ErrorCode ErrorCodeFromName(const std::string& name);

class NativeError : public std::runtime_error {
 public:
  NativeError(ErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace swapserve
