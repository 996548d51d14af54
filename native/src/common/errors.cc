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

}  // namespace swapserve
