// Names of the native error codes (the strings are the JS-visible stable codes).
#include "common/errors.h"

namespace swapserve {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "SWAPSERVE_INVALID_ARGUMENT";
    case ErrorCode::kBudget: return "SWAPSERVE_BUDGET";
    case ErrorCode::kOom: return "SWAPSERVE_OOM";
    case ErrorCode::kSticky: return "SWAPSERVE_CUDA_STICKY";
    case ErrorCode::kCuda: return "SWAPSERVE_CUDA";
    case ErrorCode::kIo: return "SWAPSERVE_IO";
    case ErrorCode::kNotResident: return "SWAPSERVE_NOT_RESIDENT";
    case ErrorCode::kState: return "SWAPSERVE_STATE";
    case ErrorCode::kAborted: return "SWAPSERVE_ABORTED";
    case ErrorCode::kUnusable: return "SWAPSERVE_UNUSABLE";
  }
  return "SWAPSERVE_UNKNOWN";
}

}  // namespace swapserve
