// The contract between the weights runtime (owner of the memory) and the engine (reader of it).
//
// Ownership: the runtime owns every model arena and the KV pool. The engine holds a WeightsLease while it
// computes; the runtime never frees an arena with a live lease (evict waits for / refuses it: see
// runtime/design.md). Group g of a model is a contiguous byte range of its arena: group 0 = token
// embeddings, 1..L = transformer layers 0..L-1, L+1 = final norm and output head (see native/ts/types.ts).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <napi.h>

namespace swapserve {

class WeightsLease {
 public:
  virtual ~WeightsLease() = default;
  // Arena base on the compute device: a device pointer under the CUDA backend, host memory under the CPU one.
  virtual const uint8_t* base() const = 0;
  virtual size_t bytes() const = 0;
  virtual int numGroups() const = 0;
  // Wait for group g's bytes. CPU backend: blocks the calling (non-JS) thread until they landed.
  // CUDA backend: enqueues cudaStreamWaitEvent(stream, group event) and returns at once (stream-ordered).
  // Throws swapserve::NativeError if the transfer failed or was aborted.
  virtual void waitGroup(int g, void* cudaStream) = 0;
  virtual bool cuda() const = 0;
  virtual int deviceOrdinal() const = 0;
};

// A block of the runtime's KV/activation pool (its own budget), freed when the last reference goes.
class DeviceBlock {
 public:
  virtual ~DeviceBlock() = default;
  virtual uint8_t* data() const = 0;  // device pointer under CUDA
  virtual size_t bytes() const = 0;
};

// The runtime's scratch pool (KV caches, activations) with its own budget. Thread-safe: engines allocate from
// their own threads. alloc throws NativeError budget when the budget would be exceeded (before any
// allocation), oom when the device is out of memory.
class ScratchPool {
 public:
  virtual ~ScratchPool() = default;
  virtual std::shared_ptr<DeviceBlock> alloc(size_t bytes) = 0;
};

// The process's device health as an engine over the runtime sees it: the CUDA context is the process's, so a sticky
// error in an engine pass makes the runtime unusable exactly as one in a move does (runtime/design.md), and later
// passes of every engine over it fail fast with `unusable`. Thread-safe (engine threads); implemented by the runtime.
class DeviceHealth {
 public:
  virtual ~DeviceHealth() = default;
  // An engine pass failed with a sticky device error: the runtime is unusable from now on.
  virtual void markSticky() = 0;
  virtual bool usable() const = 0;
  // Test hook (testing.failNextPass on a runtime): the ErrorCode armed for the next engine pass over this runtime,
  // taken once; -1 when none is armed.
  virtual int takePassFault() = 0;
};

// Implemented by the runtime; call on the JS thread. `runtime` is the JS object the runtime's native side
// created (Runtime.native in native/ts/runtime.ts). AcquireWeights throws NativeError not_resident
// when the model is neither on the compute tier nor being moved there.
std::shared_ptr<WeightsLease> AcquireWeights(Napi::Object runtime, const std::string& modelId);
std::shared_ptr<ScratchPool> GetScratchPool(Napi::Object runtime);
std::shared_ptr<DeviceHealth> GetDeviceHealth(Napi::Object runtime);

}  // namespace swapserve
