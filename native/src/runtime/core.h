// The weights runtime, backend-agnostic: model registry, residency state machine, pools, tier moves, leases.
// Threads and ownership are described in native/src/runtime/design.md.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/weights.h"
#include "engine/cpu/thread_pool.h"
#include "runtime/codec/host_image.h"
#include "runtime/device.h"
#include "runtime/pool.h"
#include "runtime/read_pool.h"

namespace swapserve::runtime {

// One contiguous read of the layout: `bytes` of files[file] at fileOffset land at arenaOffset.
struct Segment {
  uint32_t file = 0;
  uint64_t fileOffset = 0, bytes = 0, arenaOffset = 0;
};

// A validated WeightLayout (validated in native/ts/runtime.ts; trusted here).
struct Layout {
  uint64_t totalBytes = 0;
  std::vector<std::string> files;
  std::vector<Segment> segments;                       // sorted by arenaOffset
  std::vector<std::pair<uint64_t, uint64_t>> groups;  // [start, end), ascending, contiguous
};

enum class MoveKind { kLoad, kSwapIn, kLoadToGpu, kEvict, kDrop };
const char* MoveKindName(MoveKind k);  // the names of MOVE_KINDS in contracts/vocab.ts

// Steady-clock milliseconds (move timings; core.cc).
double NowMs();

struct MoveResult {
  uint64_t bytes = 0;
  double wallMs = 0;    // start of the move thread -> done
  double deviceMs = 0;  // CUDA events around the device copies (CPU backend: the copy's own time); 0 without any
  // A load asked to read the compressed disk cache (disk_cache.cc): "hit", "miss" (no file), "stale", "corrupt" or
  // "unusable" (then the raw files were read in the same move); cacheReason says why. Empty: not asked.
  std::string cache, cacheReason;
};

struct MoveCallbacks {
  std::function<void(uint64_t done, uint64_t total)> progress;  // bytes
  std::function<void(int group)> group;                         // ascending: groups 0..g have all landed
};

// One tier copy of a model (host or gpu) and the readiness of each of its groups.
class Arena {
 public:
  Arena(std::shared_ptr<Block> block, int groups);
  std::shared_ptr<Block> block;
  std::vector<std::unique_ptr<Event>> events;  // CUDA gpu arenas: recorded after group g's copies
  // Host arenas only: the compressed image index (block holds the image, not the raw arena); null = raw.
  std::shared_ptr<const codec::HostImage> image;
  void markEnqueued(int g);                    // g's copies are in a stream behind events[g]
  void markLanded(int g);                      // g's bytes are in place
  void fail(const NativeError& e);
  void waitEnqueued(int g);  // throws the failure
  void waitLanded(int g);    // throws the failure
  int groups() const { return static_cast<int>(landed_.size()); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<char> enqueued_, landed_;
  bool failed_ = false;
  ErrorCode code_ = ErrorCode::kAborted;
  std::string msg_;
};

struct Model {
  std::string id;
  Layout layout;
  std::shared_ptr<Arena> host, gpu;  // set from the start of the move that fills them
  // Partial residency: while parked on the host tier, the gpu bytes of groups [0, prefixGroups) kept by a partial
  // evict (the block is the start of its old arena, shrunk in place); a swapIn grows it back and copies the rest.
  std::shared_ptr<Block> prefix;
  int prefixGroups = 0;
  bool busy = false;                 // a load / swapIn / loadToGpu is in flight
  MoveKind busyKind = MoveKind::kLoad;
  int leases = 0;
  // Host-tier codec (runtime/compress.cc): "none" (never measured / host copy gone), "encoding", "compressed",
  // "raw" (measured: it does not pay, or no room for the compressed copy; kept across drops), "failed".
  const char* codec = "none";
  double codecRatio = 0;          // image bytes / raw arena bytes (compressed or measured-raw)
  uint64_t codecStoredBytes = 0;  // bytes the host tier holds for it while compressed
  double codecEncodeMs = 0;
  std::string codecReason;        // why it is raw / failed
};

struct ResidencyInfo {
  const char* state;  // RESIDENCY in contracts/vocab.ts
  bool host, gpu;
  int leases;
  int prefixGroups;      // resident prefix of a parked model (0: none)
  uint64_t prefixBytes;  // its gpu pool bytes
  const char* codec;
  double codecRatio;
  uint64_t codecStoredBytes;
};

struct PoolInfo {
  uint64_t budget, used;
  bool ready;
};

struct RuntimeOptions {
  bool cuda = false;
  int device = 0;
  uint64_t hostBudget = 0, gpuBudget = 0, scratchBudget = 0;
  uint64_t stagingBytes = 0;  // pinned staging for loadToGpu, split into kStagingSlots slots
  int readThreads = 2;
  // Pin the host pool only when first needed (a move into the host tier waits for it) or when pinHostPool() is
  // called, instead of at once. A fresh worker uses this so that pinning tens of GB (page faults from every core,
  // then cudaHostRegister) does not compete with its first disk -> GPU load, which needs only the staging ring.
  bool deferHostPin = false;
  // Compressed swap-in: verify every decoded chunk's checksum on the GPU (debug; the CPU decoder always does).
  bool codecVerify = false;
  // Host-tier codec threads: the encoder (0 = all cores) and the CPU backend's swap-in decoder (0 = all cores, at
  // most kMaxDecodeThreads).
  int codecThreads = 0;
  // Device work buffer of compressed GPU swap-ins (staging slots + the image's tables; codec/design.md "Device
  // memory"), carved out of gpuBudget at open: the gpu pool gets gpuBudget - codecWorkBytes, so the device holds
  // exactly gpuBudget + scratchBudget. Allocated at open on CUDA; on the CPU backend only the pool shrinks (same
  // budgets on both backends). 0: none (the CUDA backend then refuses compress). A model whose tables do not fit
  // beside the slots stays raw (runCompress says why).
  uint64_t codecWorkBytes = 0;
};

// Holds the background pinning of the host pool until released (deferHostPin) or cancelled (close).
struct PinGate {
  std::mutex mu;
  std::condition_variable cv;
  bool released = false, cancelled = false;
  // The first call decides: a pin already released is never cancelled (close must not fail a pin under way or
  // about to start; only one that was deferred and never asked for).
  void release(bool cancel) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (released) return;
      released = true;
      cancelled = cancel;
    }
    cv.notify_all();
  }
  bool wait() {  // false: cancelled
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return released; });
    return !cancelled;
  }
};

class RuntimeCore : public std::enable_shared_from_this<RuntimeCore> {
 public:
  static constexpr int kStagingSlots = 16;
  static constexpr uint64_t kLoadChunkBytes = 16ull << 20;
  static constexpr int kMaxDecodeThreads = 8;

  // JS thread. Sets up the device and the gpu/scratch pools; pins the host pool and staging in the background.
  static std::shared_ptr<RuntimeCore> Open(const RuntimeOptions& o);
  ~RuntimeCore();

  // --- JS thread (bookkeeping only; never blocks on I/O or the device) ---
  void registerModel(const std::string& id, Layout layout);
  void unregisterModel(const std::string& id);
  ResidencyInfo residency(const std::string& id);
  PoolInfo hostUsage(), gpuUsage(), scratchUsage();
  uint64_t codecWorkBytes() const { return opts_.codecWorkBytes; }  // carved out of gpuBudget (gpuUsage's budget excludes it)
  // Checks the state, reserves the target block (kBudget/kOom before any allocation) and marks the model busy.
  struct Prepared {
    MoveKind kind;
    std::shared_ptr<Model> model;
    std::shared_ptr<Arena> source, target;
    int resident = 0;  // swapIn: groups [0, resident) are already in the target (a resident prefix); not copied
    // load: try this compressed disk cache file first (codec/design.md "Disk cache"); its identity must equal
    // cacheIdentity byte for byte. Empty: read the raw files.
    std::string cachePath, cacheIdentity;
  };
  // Host-tier compression (runtime/compress.cc): beginCompress on the JS thread (state check, marks "encoding"),
  // runCompress on a move thread (encode, then swap the raw host block for the compressed one when it pays).
  struct CompressJob {
    std::shared_ptr<Model> model;
    std::shared_ptr<Arena> source;
    std::vector<codec::Piece> pieces;
    double maxRatio;
  };
  struct CompressResult {
    std::string state, reason;
    double ratio = 0, encodeMs = 0, wallMs = 0;
    uint64_t rawBytes = 0, storedBytes = 0;
  };
  // Compressed disk cache (disk_cache.cc): beginSaveImage on the JS thread (the model must be compressed on the host
  // tier; its arena is held until the write ends), runSaveImage on a move thread writes the cache file at `path`
  // (created exclusively; the caller renames it into place). Returns the file's bytes.
  struct SaveJob {
    std::shared_ptr<Model> model;
    std::shared_ptr<Arena> source;
  };
  SaveJob beginSaveImage(const std::string& id);
  uint64_t runSaveImage(const SaveJob& j, const std::string& path, const std::string& identity);
  CompressJob beginCompress(const std::string& id, std::vector<codec::Piece> pieces, double maxRatio);
  CompressResult runCompress(const CompressJob& j);
  Prepared begin(MoveKind kind, const std::string& id);
  // Bookkeeping: the block returns to the pool, no cudaFree. keepGroups > 0 (partial residency; the host copy must be
  // there): the first keepGroups groups stay on the gpu as the model's resident prefix, the rest returns.
  MoveResult evict(const std::string& id, int keepGroups = 0);
  MoveResult reclaimPrefix(const std::string& id);  // the resident prefix returns to the pool (bytes freed; 0: none)
  MoveResult drop(const std::string& id);
  // For checksum: the model must be fully resident on that tier. Counts as a move until checksum() returns.
  std::pair<std::shared_ptr<Model>, std::shared_ptr<Arena>> arenaFor(const std::string& id, bool gpu);
  std::shared_ptr<WeightsLease> acquire(const std::string& id);
  std::shared_ptr<ScratchPool> scratch() { return scratchIface_; }
  bool healthy() const { return !unusable_.load(); }
  void pinHostPool() { pinGate_->release(false); }  // starts a deferred host pin (no-op once started)
  bool closed() const { return closed_.load(); }
  void failNext(ErrorCode code) { injected_.store(static_cast<int>(code)); }  // tests: next device step fails
  // An engine pass over this runtime hit a sticky device error (the context is shared): unusable, as after a move's.
  void markUnusable() { unusable_ = true; }
  // After a failure not classified sticky (an engine pass's plain `cuda` error): asks the device whether its context
  // still works (Device::checkContext); a sticky error found marks the runtime unusable. Returns healthy().
  bool probe();
  // Tests (testing.corruptOnProbe): the next probe finds a sticky error, as a context an earlier kernel corrupted.
  void corruptOnProbe() { injectedProbe_ = true; }
  // Tests (testing.failNextPass on a runtime): the next engine pass over this runtime fails with `code`, once.
  void failNextPass(ErrorCode code) { injectedPass_.store(static_cast<int>(code)); }
  int takePassFault() { return injectedPass_.exchange(-1); }
  // Tests: the next move started waits at its start until releaseHold() (or close), so "in flight" is deterministic.
  void holdNext();
  void releaseHold();

  // --- move threads (never the JS thread) ---
  MoveResult run(const Prepared& p, const MoveCallbacks& cb);  // finishes the move's bookkeeping itself
  std::string checksum(const std::shared_ptr<Model>& m, const std::shared_ptr<Arena>& a, bool gpu);
  void waitHostReady();
  // Bench floor: `reps` plain cudaMemcpyAsync of the model's host arena into a separate device buffer (allocated
  // here, outside the pools, freed after), ms each by CUDA events. The model must be on the host tier.
  std::vector<double> floorCopy(const std::shared_ptr<Arena>& host, uint64_t bytes, int reps);
  void close();  // aborts moves in flight, waits for them, stops the readers; idempotent
  void moveStarted();
  void moveEnded();

  std::shared_ptr<Device> device;

 private:
  RuntimeCore() = default;
  std::shared_ptr<Model> find(const std::string& id);  // caller holds mu_; throws kInvalidArgument
  MoveResult release(const std::string& id, bool gpu, int keepGroups = 0);  // evict (gpu) / drop (host); takes mu_
  ResidencyInfo residencyLocked(const std::string& id);
  void checkUsable();                                  // caller holds mu_
  void checkInjected();
  void doLoad(const Prepared& p, const MoveCallbacks& cb, MoveResult& r);
  void doSwapIn(const Prepared& p, const MoveCallbacks& cb, MoveResult& r);
  // load from the disk cache: true on a hit (the host arena holds the image, shrunk to it); false with r.cache and
  // r.cacheReason set when the file is missing or rejected (nothing of it is used). Throws only aborts and faults.
  bool loadFromCache(const Prepared& p, const MoveCallbacks& cb, MoveResult& r);
  void doLoadToGpu(const Prepared& p, const MoveCallbacks& cb, MoveResult& r);
  // swap_in from a compressed host image: CPU decode (compress.cc) or copy + GPU decode pipelined (codec/cuda/swap_gpu.cc).
  void doSwapInCompressedCpu(const Prepared& p, const MoveCallbacks& cb, MoveResult& r);
  void doSwapInCompressedGpu(const Prepared& p, const MoveCallbacks& cb, MoveResult& r);

  RuntimeOptions opts_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Model>> models_;
  std::shared_ptr<Pool> host_, gpu_, scratch_, staging_;
  std::shared_ptr<PinGate> pinGate_ = std::make_shared<PinGate>();
  std::shared_ptr<ScratchPool> scratchIface_;
  std::unique_ptr<ReadPool> readers_;
  std::mutex stagingMu_;  // one loadToGpu at a time uses the staging slots
  std::mutex codecMu_;    // one compressed GPU swap-in at a time uses the codec work buffer
  std::mutex decodeMu_;   // one group's CPU decode at a time uses decodePool_
  std::unique_ptr<engine::ThreadPool> decodePool_;  // CPU swap-in decoder threads, made at first use (decodeMu_)
  struct DeviceBuffer {
    std::shared_ptr<Device> device;
    uint8_t* p = nullptr;
    uint64_t bytes = 0;
    ~DeviceBuffer() {
      if (p) device->freeDevice(p, bytes);
    }
  } codecWork_;  // opts_.codecWorkBytes of device memory (CUDA; allocated at open, part of gpuBudget)
  std::atomic<bool> abort_{false}, closed_{false}, unusable_{false};
  std::atomic<int> injected_{-1};
  std::atomic<bool> injectedProbe_{false};
  std::atomic<int> injectedPass_{-1};  // an ErrorCode for the next engine pass (tests), -1 = none
  std::mutex gateMu_;
  std::condition_variable gateCv_;
  bool holdArmed_ = false, gateOpen_ = true;
  std::mutex movesMu_;
  std::condition_variable movesCv_;
  int moves_ = 0;
  friend class LeaseImpl;
};

// The NativeRuntime JS object's core (native/src/runtime/register.cc); used by AcquireWeights/GetScratchPool.
std::shared_ptr<RuntimeCore> CoreFromObject(Napi::Object obj);

}  // namespace swapserve::runtime
