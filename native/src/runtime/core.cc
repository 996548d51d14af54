// RuntimeCore: the residency state machine (JS thread, under mu_), leases and open/close; the tier moves that
// run on move threads are in moves.cc.
#include "runtime/core.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace swapserve::runtime {

const char* MoveKindName(MoveKind k) {
  switch (k) {
    case MoveKind::kLoad: return "load";
    case MoveKind::kSwapIn: return "swap_in";
    case MoveKind::kLoadToGpu: return "load_to_gpu";
    case MoveKind::kEvict: return "evict";
    case MoveKind::kDrop: return "drop";
  }
  return "?";
}

double NowMs() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// ---------------------------------------------------------------------------------------------- Arena

Arena::Arena(std::shared_ptr<Block> b, int groups)
    : block(std::move(b)), events(groups), enqueued_(groups, 0), landed_(groups, 0) {}

void Arena::markEnqueued(int g) {
  {
    std::lock_guard<std::mutex> l(mu_);
    enqueued_[g] = 1;
  }
  cv_.notify_all();
}

void Arena::markLanded(int g) {
  {
    std::lock_guard<std::mutex> l(mu_);
    enqueued_[g] = 1;
    landed_[g] = 1;
  }
  cv_.notify_all();
}

void Arena::fail(const NativeError& e) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (failed_) return;
    failed_ = true;
    code_ = e.code();
    msg_ = std::string("the transfer of this model's weights failed: ") + e.what();
  }
  cv_.notify_all();
}

void Arena::waitEnqueued(int g) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return enqueued_[g] || failed_; });
  if (failed_) throw NativeError(code_, msg_);
}

void Arena::waitLanded(int g) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return landed_[g] || failed_; });
  if (failed_) throw NativeError(code_, msg_);
}

// ---------------------------------------------------------------------------------------------- leases

class LeaseImpl : public WeightsLease {
 public:
  LeaseImpl(std::shared_ptr<RuntimeCore> core, std::shared_ptr<Model> m, std::shared_ptr<Arena> a)
      : core_(std::move(core)), model_(std::move(m)), arena_(std::move(a)), base_(arena_->block->data()) {}
  ~LeaseImpl() override {
    std::lock_guard<std::mutex> l(core_->mu_);
    --model_->leases;
  }
  const uint8_t* base() const override { return base_; }
  size_t bytes() const override { return model_->layout.totalBytes; }
  int numGroups() const override { return arena_->groups(); }
  void waitGroup(int g, void* stream) override {
    if (g < 0 || g >= arena_->groups()) {
      throw NativeError(ErrorCode::kInvalidArgument, "Expected a group in [0, " + std::to_string(arena_->groups()) +
                                                         ") for waitGroup but received " + std::to_string(g));
    }
    if (core_->device->cuda()) {
      arena_->waitEnqueued(g);
      // No event: a group of a resident prefix, in place before the move began (never written after).
      if (arena_->events[g]) core_->device->streamWaitEvent(stream, *arena_->events[g]);
    } else {
      arena_->waitLanded(g);
    }
  }
  bool cuda() const override { return core_->device->cuda(); }
  int deviceOrdinal() const override { return core_->device->ordinal(); }

 private:
  std::shared_ptr<RuntimeCore> core_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<Arena> arena_;
  const uint8_t* base_;
};

namespace {
class DeviceBlockImpl : public DeviceBlock {
 public:
  explicit DeviceBlockImpl(std::shared_ptr<Block> b) : block_(std::move(b)), data_(block_->data()), bytes_(0) {}
  DeviceBlockImpl(std::shared_ptr<Block> b, size_t bytes) : block_(std::move(b)), data_(block_->data()), bytes_(bytes) {}
  uint8_t* data() const override { return data_; }
  size_t bytes() const override { return bytes_; }

 private:
  std::shared_ptr<Block> block_;
  uint8_t* data_;
  size_t bytes_;
};

class ScratchPoolImpl : public ScratchPool {
 public:
  explicit ScratchPoolImpl(std::shared_ptr<Pool> p) : pool_(std::move(p)) {}
  std::shared_ptr<DeviceBlock> alloc(size_t bytes) override {
    return std::make_shared<DeviceBlockImpl>(pool_->reserve(bytes), bytes);
  }

 private:
  std::shared_ptr<Pool> pool_;
};
}  // namespace

// ---------------------------------------------------------------------------------------------- open / close

std::shared_ptr<RuntimeCore> RuntimeCore::Open(const RuntimeOptions& o) {
  std::shared_ptr<RuntimeCore> c(new RuntimeCore());
  c->opts_ = o;
#ifdef SWAPSERVE_CUDA
  c->device = o.cuda ? MakeCudaDevice(o.device) : MakeCpuDevice();
#else
  if (o.cuda) throw NativeError(ErrorCode::kInvalidArgument, "this addon was built without the CUDA backend");
  c->device = MakeCpuDevice();
#endif
  std::shared_ptr<Device> dev = c->device;
  dev->bindThread();
  c->host_ = std::make_shared<Pool>("host", o.hostBudget, 4096);
  c->staging_ = std::make_shared<Pool>("staging", o.stagingBytes, 4096);
  // The codec work buffer is part of the gpu budget (codec/design.md "Device memory"): the pool gets the rest.
  if (o.codecWorkBytes > 0 && (o.codecWorkBytes < codec::kMinWorkBytes || o.codecWorkBytes > o.gpuBudget)) {
    throw NativeError(ErrorCode::kInvalidArgument, "codecWorkBytes must be 0 or in [" + std::to_string(codec::kMinWorkBytes) + ", gpuBudgetBytes = " +
                                                       std::to_string(o.gpuBudget) + "], received " + std::to_string(o.codecWorkBytes));
  }
  const uint64_t gpuPool = o.gpuBudget - o.codecWorkBytes;
  c->gpu_ = std::make_shared<Pool>("gpu", gpuPool, 256);
  c->scratch_ = std::make_shared<Pool>("scratch", o.scratchBudget, 256);
  // Device memory: one allocation per pool and the codec work buffer, now (cudaMalloc is fast; a failure is
  // reported at open). Together exactly gpuBudget + scratchBudget.
  if (o.cuda && o.codecWorkBytes > 0) {
    c->codecWork_.device = dev;
    c->codecWork_.p = static_cast<uint8_t*>(dev->allocDevice(o.codecWorkBytes));
    c->codecWork_.bytes = o.codecWorkBytes;
  }
  for (auto& [pool, bytes] : {std::pair{c->gpu_, gpuPool}, std::pair{c->scratch_, o.scratchBudget}}) {
    if (bytes == 0) {
      pool->setMemory(nullptr, {});
      continue;
    }
    uint8_t* p = static_cast<uint8_t*>(dev->allocDevice(bytes));
    uint64_t n = bytes;
    pool->setMemory(p, [dev, p, n] { dev->freeDevice(p, n); });
  }
  c->scratchIface_ = std::make_shared<ScratchPoolImpl>(c->scratch_);
  c->readers_ = std::make_unique<ReadPool>(o.readThreads);
  // Pinned host memory: slow (~0.35 s/GiB), so pinned once, in the background, and reused by every move.
  if (!o.deferHostPin) c->pinGate_->release(false);
  c->host_->setOnDemand([gate = c->pinGate_] { gate->release(false); });
  std::thread([dev, host = c->host_, staging = c->staging_, hb = o.hostBudget, sb = o.stagingBytes, gate = c->pinGate_] {
    for (auto& [pool, bytes] : {std::pair{staging, sb}, std::pair{host, hb}}) {
      try {
        if (pool == host && !gate->wait()) {
          pool->setFailed(NativeError(ErrorCode::kState, "the runtime is closed"));
          continue;
        }
        dev->bindThread();
        if (bytes == 0) {
          pool->setMemory(nullptr, {});
          continue;
        }
        uint8_t* p = static_cast<uint8_t*>(dev->allocHost(bytes));
        uint64_t n = bytes;
        pool->setMemory(p, [dev, p, n] { dev->freeHost(p, n); });
      } catch (const NativeError& e) {
        pool->setFailed(e);
      } catch (const std::exception& e) {
        pool->setFailed(NativeError(ErrorCode::kOom, e.what()));
      }
    }
  }).detach();
  return c;
}

RuntimeCore::~RuntimeCore() = default;

void RuntimeCore::waitHostReady() {
  staging_->waitBase(false);
  host_->waitBase(false);  // a readiness probe: does not start a deferred pin
}

void RuntimeCore::moveStarted() {
  std::lock_guard<std::mutex> l(movesMu_);
  ++moves_;
}

// Under the lock, as Completions::finish: close() returns once it sees no move left, and the runtime may then go.
void RuntimeCore::moveEnded() {
  std::lock_guard<std::mutex> l(movesMu_);
  --moves_;
  movesCv_.notify_all();
}

void RuntimeCore::close() {
  pinGate_->release(true);  // a deferred host pin that never started never will
  closed_ = true;
  abort_ = true;
  releaseHold();
  {
    std::unique_lock<std::mutex> l(movesMu_);
    movesCv_.wait(l, [&] { return moves_ == 0; });
  }
  readers_.reset();
  std::lock_guard<std::mutex> l(mu_);
  // Arenas under a live lease stay allocated until the lease goes (the blocks hold their pools).
  models_.clear();
}

// ---------------------------------------------------------------------------------------------- JS thread

std::shared_ptr<Model> RuntimeCore::find(const std::string& id) {
  auto it = models_.find(id);
  if (it == models_.end()) throw NativeError(ErrorCode::kInvalidArgument, "unknown model \"" + id + "\": register it first");
  return it->second;
}

bool RuntimeCore::probe() {
  if (unusable_ || closed_) return healthy();
  if (injectedProbe_.exchange(false)) {
    unusable_ = true;
    return false;
  }
  try {
    device->checkContext();
  } catch (const NativeError& e) {
    if (e.code() == ErrorCode::kSticky) unusable_ = true;
  }
  return healthy();
}

void RuntimeCore::checkUsable() {
  if (closed_) throw NativeError(ErrorCode::kState, "the runtime is closed");
  if (unusable_) {
    throw NativeError(ErrorCode::kUnusable,
                      "the runtime is unusable after a sticky CUDA error: drain this worker and restart the process");
  }
}

void RuntimeCore::registerModel(const std::string& id, Layout layout) {
  std::lock_guard<std::mutex> l(mu_);
  if (closed_) throw NativeError(ErrorCode::kState, "the runtime is closed");
  if (models_.count(id)) throw NativeError(ErrorCode::kState, "model \"" + id + "\" is already registered");
  auto m = std::make_shared<Model>();
  m->id = id;
  m->layout = std::move(layout);
  models_[id] = std::move(m);
}

void RuntimeCore::unregisterModel(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  auto m = find(id);
  if (m->busy || m->host || m->gpu || m->leases > 0) {
    throw NativeError(ErrorCode::kState, "model \"" + id + "\" is " + residencyLocked(id).state +
                                             ": evict and drop it (and wait for its moves) before unregistering");
  }
  models_.erase(id);
}

static const char* StateOf(const Model& m) {
  if (m.busy) return m.busyKind == MoveKind::kLoad ? "loading" : "swapping-in";
  if (m.gpu) return "gpu";
  if (m.host) return "host";
  return "disk";
}

ResidencyInfo RuntimeCore::residency(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  return residencyLocked(id);
}

ResidencyInfo RuntimeCore::residencyLocked(const std::string& id) {
  auto it = models_.find(id);
  if (it == models_.end()) throw NativeError(ErrorCode::kInvalidArgument, "unknown model \"" + id + "\": register it first");
  const Model& m = *it->second;
  bool gpu = m.gpu && !(m.busy && m.busyKind != MoveKind::kLoad);
  bool host = m.host && !(m.busy && m.busyKind == MoveKind::kLoad);
  return {StateOf(m), host, gpu, m.leases, m.prefixGroups, m.prefix ? m.prefix->bytes() : 0,
          m.codec, m.codecRatio, m.host && m.host->image ? m.codecStoredBytes : 0};
}

PoolInfo RuntimeCore::hostUsage() { return {host_->budgetBytes(), host_->usedBytes(), host_->ready() && staging_->ready()}; }
PoolInfo RuntimeCore::gpuUsage() { return {gpu_->budgetBytes(), gpu_->usedBytes(), true}; }
PoolInfo RuntimeCore::scratchUsage() { return {scratch_->budgetBytes(), scratch_->usedBytes(), true}; }

RuntimeCore::Prepared RuntimeCore::begin(MoveKind kind, const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  checkUsable();
  auto m = find(id);
  const std::string name = "model \"" + id + "\"";
  if (m->busy) throw NativeError(ErrorCode::kState, name + " is " + StateOf(*m) + ": wait for that move to finish");
  int groups = static_cast<int>(m->layout.groups.size());
  Prepared p{kind, m, nullptr, nullptr};
  switch (kind) {
    case MoveKind::kLoad:
      if (m->host) throw NativeError(ErrorCode::kState, name + " is already on the host tier");
      p.target = std::make_shared<Arena>(host_->reserve(m->layout.totalBytes), groups);
      m->host = p.target;
      break;
    case MoveKind::kSwapIn: {
      if (m->gpu) throw NativeError(ErrorCode::kState, name + " is already on the gpu tier");
      if (!m->host) throw NativeError(ErrorCode::kState, name + " is not on the host tier: load it first (or use loadToGpu)");
      p.source = m->host;
      std::shared_ptr<Block> block;
      if (m->prefix) {
        // The resident prefix grows in place into the whole arena. Where the range after it is taken, the prefix
        // is given up and the arena reserved as without one (the pool then looks as if it had never been kept).
        switch (gpu_->grow(*m->prefix, m->layout.totalBytes)) {
          // (A compressed host copy skips the prefix's entries too: compress.cc, codec/cuda/swap_gpu.cc.)
          case Pool::Grow::kDone: block = m->prefix; p.resident = m->prefixGroups; break;
          case Pool::Grow::kBudget:
            throw NativeError(ErrorCode::kBudget, "the gpu pool's budget would be exceeded: " + std::to_string(gpuUsage().used) +
                                                      " bytes used + the " + std::to_string(m->layout.totalBytes - m->prefix->bytes()) +
                                                      " bytes of " + name + " not resident on the gpu > budget " +
                                                      std::to_string(gpuUsage().budget) + " bytes");
          case Pool::Grow::kNoRoom: break;
        }
        m->prefix.reset();
        m->prefixGroups = 0;
      }
      if (!block) block = gpu_->reserve(m->layout.totalBytes);
      p.target = std::make_shared<Arena>(std::move(block), groups);
      for (int g = 0; g < p.resident; ++g) p.target->markLanded(g);  // ready now: an engine need not wait for the move
      m->gpu = p.target;
      break;
    }
    case MoveKind::kLoadToGpu:
      if (m->gpu) throw NativeError(ErrorCode::kState, name + " is already on the gpu tier");
      m->prefix.reset();  // read whole from disk: a resident prefix is given up first
      m->prefixGroups = 0;
      p.target = std::make_shared<Arena>(gpu_->reserve(m->layout.totalBytes), groups);
      m->gpu = p.target;
      break;
    default:
      throw NativeError(ErrorCode::kInvalidArgument, "begin() takes load, swap_in or load_to_gpu");
  }
  m->busy = true;
  m->busyKind = kind;
  moveStarted();
  return p;
}

MoveResult RuntimeCore::evict(const std::string& id, int keepGroups) { return release(id, true, keepGroups); }

MoveResult RuntimeCore::reclaimPrefix(const std::string& id) {
  const double t0 = NowMs();
  std::lock_guard<std::mutex> l(mu_);
  if (closed_) throw NativeError(ErrorCode::kState, "the runtime is closed");
  auto m = find(id);
  MoveResult r;
  if (m->prefix) r.bytes = m->prefix->bytes();
  m->prefix.reset();
  m->prefixGroups = 0;
  r.wallMs = NowMs() - t0;
  return r;
}

MoveResult RuntimeCore::drop(const std::string& id) { return release(id, false); }

// Takes a model off the gpu tier (evict) or the host tier (drop): bookkeeping only, the block returns to its pool
// (no cudaFree, which would synchronise the device).
MoveResult RuntimeCore::release(const std::string& id, bool gpu, int keepGroups) {
  const double t0 = NowMs();
  std::lock_guard<std::mutex> l(mu_);
  if (closed_) throw NativeError(ErrorCode::kState, "the runtime is closed");
  auto m = find(id);
  const std::string name = "model \"" + id + "\"";
  if (gpu) {
    if (m->busy && m->busyKind != MoveKind::kLoad) throw NativeError(ErrorCode::kState, name + " is swapping-in: wait for it");
    if (!m->gpu) throw NativeError(ErrorCode::kState, name + " is not on the gpu tier");
    if (m->leases > 0) {
      throw NativeError(ErrorCode::kState, name + " has " + std::to_string(m->leases) +
                                               " engine lease(s): it cannot be evicted while an engine computes with it");
    }
    if (keepGroups > 0 && (!m->host || m->busy)) {
      throw NativeError(ErrorCode::kState, name + " has no complete host copy: a partial evict (keepGroups " +
                                               std::to_string(keepGroups) + ") needs one to swap the rest in from");
    }
  } else {
    if (m->busy && m->busyKind != MoveKind::kLoadToGpu) {
      throw NativeError(ErrorCode::kState, name + " is " + StateOf(*m) + ": wait for that move to finish");
    }
    if (!m->host) throw NativeError(ErrorCode::kState, name + " is not on the host tier");
  }
  std::shared_ptr<Arena>& arena = gpu ? m->gpu : m->host;
  MoveResult r;
  r.bytes = arena->block->bytes();
  if (gpu && keepGroups > 0) {
    // The arena's block (no lease, no move: nothing else holds it) keeps its first groups' bytes in place.
    m->prefix = arena->block;
    m->prefixGroups = std::min<int>(keepGroups, static_cast<int>(m->layout.groups.size()));
    gpu_->shrink(*m->prefix, m->layout.groups[m->prefixGroups - 1].second);
    r.bytes -= m->prefix->bytes();
  }
  if (!gpu && m->prefix) {  // a prefix without the host copy could never be completed
    m->prefix.reset();
    m->prefixGroups = 0;
  }
  arena.reset();
  // A measured "raw" verdict stays (the next load need not encode again); an encoding under way notices the drop.
  if (!gpu && std::string(m->codec) == "compressed") m->codec = "none";
  r.wallMs = NowMs() - t0;
  return r;
}

std::pair<std::shared_ptr<Model>, std::shared_ptr<Arena>> RuntimeCore::arenaFor(const std::string& id, bool gpu) {
  std::lock_guard<std::mutex> l(mu_);
  if (closed_) throw NativeError(ErrorCode::kState, "the runtime is closed");
  auto m = find(id);
  ResidencyInfo r = residencyLocked(id);
  if (gpu ? !r.gpu : !r.host) {
    throw NativeError(ErrorCode::kNotResident, "model \"" + id + "\" is not resident on the " + (gpu ? "gpu" : "host") +
                                                   " tier (it is " + r.state + ")");
  }
  moveStarted();
  return {m, gpu ? m->gpu : m->host};
}

std::shared_ptr<WeightsLease> RuntimeCore::acquire(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  checkUsable();
  auto it = models_.find(id);
  if (it == models_.end() || !it->second->gpu) {
    throw NativeError(ErrorCode::kNotResident, "model \"" + id + "\" is neither on the gpu tier nor being moved there");
  }
  ++it->second->leases;
  try {
    return std::make_shared<LeaseImpl>(shared_from_this(), it->second, it->second->gpu);
  } catch (...) {
    --it->second->leases;
    throw;
  }
}

}  // namespace swapserve::runtime
