// The memory and copy primitives a runtime backend provides: pinned host memory, device memory, streams, events.
//
// CPU backend (native/src/runtime/cpu/device.cc): "device" memory is a separate anonymous mapping, copies are
// synchronous memcpy on the calling thread and events are timestamps. CUDA backend
// (native/src/runtime/cuda/device.cc): cudaHostAlloc / cudaMalloc, cudaMemcpyAsync on non-blocking streams,
// CUDA events. Every method may throw swapserve::NativeError (kOom, kSticky, kCuda).
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace swapserve::runtime {

class Event {
 public:
  virtual ~Event() = default;
  virtual void synchronize() = 0;  // blocks the calling thread until the work before record() finished
  virtual bool done() = 0;         // non-blocking query
  virtual void* handle() = 0;      // cudaEvent_t under CUDA, nullptr under CPU
};

class Stream {
 public:
  virtual ~Stream() = default;
  virtual void copyToDevice(void* dst, const void* src, size_t bytes) = 0;  // async under CUDA
  virtual void copyToHost(void* dst, const void* src, size_t bytes) = 0;    // async under CUDA
  virtual void record(Event& e) = 0;
  virtual void synchronize() = 0;
  virtual void* handle() = 0;  // cudaStream_t under CUDA, nullptr under CPU
};

class Device {
 public:
  virtual ~Device() = default;
  virtual bool cuda() const = 0;
  virtual int ordinal() const = 0;
  virtual std::string name() const = 0;
  // Makes this device current on the calling thread (cudaSetDevice); every thread that touches it calls this.
  virtual void bindThread() = 0;
  // Waits for the device's queued work and throws its error, if any (kSticky where the context is corrupted; CUDA:
  // cudaDeviceSynchronize). A failure path's question "is the device still usable?"; no-op under CPU.
  virtual void checkContext() = 0;
  // Pinned (page-locked) host memory, page aligned. Slow (~0.35 s/GiB under CUDA): done once per pool.
  virtual void* allocHost(size_t bytes) = 0;
  virtual void freeHost(void* p, size_t bytes) = 0;
  virtual void* allocDevice(size_t bytes) = 0;
  virtual void freeDevice(void* p, size_t bytes) = 0;
  virtual std::unique_ptr<Stream> newStream() = 0;
  virtual std::unique_ptr<Event> newEvent(bool timing) = 0;
  // Milliseconds between two recorded (and completed) timing events.
  virtual double elapsedMs(Event& start, Event& end) = 0;
  // Makes `stream` (a cudaStream_t, or nullptr for the legacy stream) wait for `e` (no-op under CPU).
  virtual void streamWaitEvent(void* stream, Event& e) = 0;
};

std::shared_ptr<Device> MakeCpuDevice();
#ifdef SWAPSERVE_CUDA
std::shared_ptr<Device> MakeCudaDevice(int ordinal);
int CudaDeviceCount();  // 0 when no driver or no device
// Creates the device's primary context on a background thread (a worker's start overlaps it with loading its
// JavaScript); a later open on the same device finds it made.
void CudaPrewarm(int ordinal);
#endif

}  // namespace swapserve::runtime
