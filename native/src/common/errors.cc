// Names of the native error codes: the JS-visible stable codes, snake_case like every code in contracts/errors.ts.
#include "common/errors.h"

namespace swapserve {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kBudget: return "budget";
    case ErrorCode::kOom: return "oom";
    case ErrorCode::kSticky: return "cuda_sticky";
    case ErrorCode::kCuda: return "cuda";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kNotResident: return "not_resident";
    case ErrorCode::kState: return "state";
    case ErrorCode::kAborted: return "aborted";
    case ErrorCode::kUnusable: return "unusable";
  }
  return "unknown";
}

ErrorCode ErrorCodeFromName(const std::string& name) {
  for (int c = 0; c <= static_cast<int>(ErrorCode::kUnusable); ++c)
    if (name == ErrorCodeName(static_cast<ErrorCode>(c))) return static_cast<ErrorCode>(c);
  throw NativeError(ErrorCode::kInvalidArgument, "Expected a native error code for code but received \"" + name + "\"");
}

}  // namespace swapserve
