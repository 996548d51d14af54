// One check for every CUDA runtime call of the engine: records the statement, file:line and device, and throws
// swapserve::NativeError (never aborts: inside a worker process an abort would kill it silently).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "core/errors.h"

namespace swapserve::cuda {

// Errors after which the CUDA context is unusable: the process must drain and exit (see core/errors.h kSticky).
inline bool IsStickyCudaError(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
    case cudaErrorUnknown:
      return true;
    default:
      return false;
  }
}

[[noreturn]] inline void ThrowCuda(cudaError_t e, const char* stmt, const char* file, int line) {
  int dev = -1;
  cudaGetDevice(&dev);
  const ErrorCode code = e == cudaErrorMemoryAllocation ? ErrorCode::kOom
                         : IsStickyCudaError(e)        ? ErrorCode::kSticky
                                                       : ErrorCode::kCuda;
  throw NativeError(code, std::string(stmt) + " failed at " + file + ":" + std::to_string(line) + " on device " +
                              std::to_string(dev) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

[[noreturn]] inline void ThrowInvalid(const std::string& msg) { throw NativeError(ErrorCode::kInvalidArgument, msg); }

}  // namespace swapserve::cuda

#define SS_CUDA_CHECK(stmt)                                                        \
  do {                                                                             \
    cudaError_t ss_err_ = (stmt);                                                  \
    if (ss_err_ != cudaSuccess) ::swapserve::cuda::ThrowCuda(ss_err_, #stmt, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: configuration errors now, sticky errors from earlier asynchronous work too.
#define SS_CUDA_CHECK_LAUNCH(name) SS_CUDA_CHECK(cudaGetLastError())

// Shape assumptions of a launcher: a violated one is the caller's bug, reported as an invalid argument.
#define SS_REQUIRE(cond, msg)                                                      \
  do {                                                                             \
    if (!(cond)) ::swapserve::cuda::ThrowInvalid(std::string(msg) + " (" #cond ")"); \
  } while (0)
