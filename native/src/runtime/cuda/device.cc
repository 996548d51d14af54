// The CUDA backend's device: pinned host pools (mmap + parallel page faulting + cudaHostRegister, much faster
// than cudaHostAlloc's ~0.35 s/GiB), one cudaMalloc per pool, non-blocking streams, CUDA events. Every CUDA
// call goes through the addon's one CUDA check (common/cuda_check.h), which throws a typed NativeError.
#include <cuda_runtime.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/cuda_check.h"
#include "common/errors.h"
#include "runtime/device.h"

namespace swapserve::runtime {
namespace {

// Every call on this device's objects names the device in its error (device_ of the enclosing object).
#define SWAPSERVE_CUDA_CHECK(stmt) SS_CUDA_CHECK_ON(stmt, device_)

class CudaEvent : public Event {
 public:
  CudaEvent(int device, bool timing) : device_(device) {
    SWAPSERVE_CUDA_CHECK(cudaEventCreateWithFlags(&ev_, timing ? cudaEventDefault : cudaEventDisableTiming));
  }
  ~CudaEvent() override { cudaEventDestroy(ev_); }
  void synchronize() override { SWAPSERVE_CUDA_CHECK(cudaEventSynchronize(ev_)); }
  bool done() override {
    cudaError_t e = cudaEventQuery(ev_);
    if (e == cudaErrorNotReady) return false;
    SWAPSERVE_CUDA_CHECK(e);
    return true;
  }
  void* handle() override { return ev_; }
  cudaEvent_t ev_ = nullptr;

 private:
  int device_;
};

class CudaStream : public Stream {
 public:
  explicit CudaStream(int device) : device_(device) {
    SWAPSERVE_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
  }
  ~CudaStream() override { cudaStreamDestroy(s_); }
  void copyToDevice(void* dst, const void* src, size_t bytes) override {
    SWAPSERVE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s_));
  }
  void copyToHost(void* dst, const void* src, size_t bytes) override {
    SWAPSERVE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s_));
  }
  void record(Event& e) override { SWAPSERVE_CUDA_CHECK(cudaEventRecord(static_cast<CudaEvent&>(e).ev_, s_)); }
  void synchronize() override { SWAPSERVE_CUDA_CHECK(cudaStreamSynchronize(s_)); }
  void* handle() override { return s_; }

 private:
  int device_;
  cudaStream_t s_ = nullptr;
};

class CudaDevice : public Device {
 public:
  explicit CudaDevice(int device) : device_(device) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw NativeError(ErrorCode::kCuda, std::string("no usable CUDA device: cudaGetDeviceCount failed: ") +
                                              cudaGetErrorName(e) + ": " + cudaGetErrorString(e) +
                                              " (use backend 'cpu' or SWAPSERVE_BACKEND=cpu on machines without a GPU)");
    }
    if (device < 0 || device >= count) {
      throw NativeError(ErrorCode::kInvalidArgument, "Expected a CUDA device ordinal in [0, " + std::to_string(count) +
                                                         ") for device but received " + std::to_string(device));
    }
    cudaDeviceProp prop;
    SWAPSERVE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    name_ = prop.name;
    SWAPSERVE_CUDA_CHECK(cudaSetDevice(device));
  }
  bool cuda() const override { return true; }
  int ordinal() const override { return device_; }
  std::string name() const override { return name_; }
  void bindThread() override { SWAPSERVE_CUDA_CHECK(cudaSetDevice(device_)); }
  void checkContext() override {
    SWAPSERVE_CUDA_CHECK(cudaSetDevice(device_));
    SWAPSERVE_CUDA_CHECK(cudaDeviceSynchronize());
  }

  void* allocHost(size_t bytes) override {
    // Fault the pages in from several threads (the kernel zeroes each page; one thread manages a few GB/s), then
    // register them with the driver. Falls back to cudaHostAlloc if registering fails.
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw NativeError(ErrorCode::kOom, "mmap of " + std::to_string(bytes) + " bytes failed");
    madvise(p, bytes, MADV_HUGEPAGE);
    // Not inherited by children: Linux copies DMA-pinned anonymous pages eagerly at fork(), so without this every
    // fork/spawn from a process holding the pool copies it (about 7 s for 15 GiB seen on the H200 machine).
    madvise(p, bytes, MADV_DONTFORK);
    unsigned n = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
    size_t slice = (bytes / n + 4095) / 4096 * 4096;
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < n; ++t) {
      ts.emplace_back([=] {
        uint8_t* b = static_cast<uint8_t*>(p);
        for (size_t off = t * slice; off < std::min(bytes, (t + 1) * slice); off += 4096) b[off] = 0;
      });
    }
    for (auto& t : ts) t.join();
    cudaError_t e = cudaHostRegister(p, bytes, cudaHostRegisterDefault);
    if (e == cudaSuccess) return p;
    cudaGetLastError();
    munmap(p, bytes);
    void* q = nullptr;
    SWAPSERVE_CUDA_CHECK(cudaHostAlloc(&q, bytes, cudaHostAllocDefault));
    std::lock_guard<std::mutex> l(mu_);
    hostAlloced_.insert(q);
    return q;
  }
  void freeHost(void* p, size_t bytes) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (hostAlloced_.erase(p)) {
        cudaFreeHost(p);
        return;
      }
    }
    cudaHostUnregister(p);
    munmap(p, bytes);
  }
  void* allocDevice(size_t bytes) override {
    void* p = nullptr;
    SWAPSERVE_CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
  }
  void freeDevice(void* p, size_t) override { cudaFree(p); }
  std::unique_ptr<Stream> newStream() override { return std::make_unique<CudaStream>(device_); }
  std::unique_ptr<Event> newEvent(bool timing) override { return std::make_unique<CudaEvent>(device_, timing); }
  double elapsedMs(Event& a, Event& b) override {
    float ms = 0;
    SWAPSERVE_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<CudaEvent&>(a).ev_, static_cast<CudaEvent&>(b).ev_));
    return ms;
  }
  void streamWaitEvent(void* stream, Event& e) override {
    SWAPSERVE_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<CudaEvent&>(e).ev_, 0));
  }

 private:
  int device_;
  std::string name_;
  std::mutex mu_;
  std::set<void*> hostAlloced_;  // pools that fell back to cudaHostAlloc
};

}  // namespace

std::shared_ptr<Device> MakeCudaDevice(int ordinal) { return std::make_shared<CudaDevice>(ordinal); }

void CudaPrewarm(int ordinal) {
  // Detached: the process may exit before it ends; errors are left for the runtime's open to report.
  std::thread([ordinal] {
    if (cudaSetDevice(ordinal) != cudaSuccess || cudaFree(nullptr) != cudaSuccess) cudaGetLastError();
  }).detach();
}

int CudaDeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace swapserve::runtime
