// The one CUDA check of the addon (runtime device and engine alike): every CUDA runtime call's error becomes a
// swapserve::NativeError with the statement, file:line and device (never an abort: inside a worker process an
// abort would kill it silently), classified by the one sticky-error table below.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "common/errors.h"

namespace swapserve::cuda {

// Errors after which the CUDA context is unusable: every later call fails, so the process must drain and exit
// (ErrorCode::kSticky, cuda_sticky on the TS side). The union of the runtime's and the engine's former
// tables: cudaErrorContextIsDestroyed (the runtime's) and cudaErrorUnknown (the engine's: an unknown error
// after a kernel cannot be told apart from a corrupted context, so it is treated as one).
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
    case cudaErrorContextIsDestroyed:
    case cudaErrorUnknown:
      return true;
    default:
      return false;
  }
}

inline ErrorCode ClassifyCudaError(cudaError_t e) {
  if (e == cudaErrorMemoryAllocation) return ErrorCode::kOom;
  return IsStickyCudaError(e) ? ErrorCode::kSticky : ErrorCode::kCuda;
}

// A CUDA library call (cuBLASLt) that failed with anything but an allocation failure may have met a context an
// earlier kernel corrupted (a sticky error cuBLAS reports only as "failed to launch"): ask the runtime, so the
// failure is classified sticky where it is (the worker then drains and puts its jobs back rather than failing them).
// Failure path only: the synchronize waits for the device's queued work. Returns the code and CUDA's own error.
inline ErrorCode ClassifyLibraryFailure(cudaError_t* seen) {
  const cudaError_t e = cudaDeviceSynchronize();
  *seen = e;
  if (IsStickyCudaError(e)) return ErrorCode::kSticky;
  cudaGetLastError();  // a non-sticky error read here is not reported again by the next launch check
  return ErrorCode::kCuda;
}

// device < 0: the calling thread's current device.
[[noreturn]] inline void ThrowCuda(cudaError_t e, const char* stmt, const char* file, int line, int device = -1) {
  const ErrorCode code = ClassifyCudaError(e);
  // A non-sticky error stays as the thread's "last error" until read: clear it so the next launch check does not
  // report it a second time.
  if (code != ErrorCode::kSticky) cudaGetLastError();
  if (device < 0) cudaGetDevice(&device);
  throw NativeError(code, std::string(stmt) + " failed at " + file + ":" + std::to_string(line) + " on device " +
                              std::to_string(device) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

[[noreturn]] inline void ThrowInvalid(const std::string& msg) { throw NativeError(ErrorCode::kInvalidArgument, msg); }

}  // namespace swapserve::cuda

// On the calling thread's current device.
#define SS_CUDA_CHECK(stmt) SS_CUDA_CHECK_ON(stmt, -1)

// On a named device (the runtime's move threads name theirs; the message then says which GPU failed).
#define SS_CUDA_CHECK_ON(stmt, device)                                                       \
  do {                                                                                       \
    cudaError_t ss_err_ = (stmt);                                                            \
    if (ss_err_ != cudaSuccess) ::swapserve::cuda::ThrowCuda(ss_err_, #stmt, __FILE__, __LINE__, (device)); \
  } while (0)

// After a kernel launch: configuration errors now, sticky errors from earlier asynchronous work too.
#define SS_CUDA_CHECK_LAUNCH(name) SS_CUDA_CHECK(cudaGetLastError())

// Shape assumptions of a launcher: a violated one is the caller's bug, reported as an invalid argument.
#define SS_REQUIRE(cond, msg)                                                      \
  do {                                                                             \
    if (!(cond)) ::swapserve::cuda::ThrowInvalid(std::string(msg) + " (" #cond ")"); \
  } while (0)
