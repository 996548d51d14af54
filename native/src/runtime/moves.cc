// RuntimeCore's tier moves, on move threads: disk -> host (load), host -> GPU (swap in), disk -> GPU through
// staging (load_to_gpu), each cut into chunks that report per-group readiness; plus the bench floor and checksums.
#include "runtime/core.h"
#include "runtime/hash.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

namespace swapserve::runtime {

// ---------------------------------------------------------------------------------------------- chunks

namespace {

struct Chunk {
  uint32_t file;
  uint64_t fileOffset, bytes, arenaOffset;
  int group;
};

// Cuts the segments at group ends and at maxBytes, so each chunk belongs to one group.
std::vector<Chunk> MakeChunks(const Layout& L, uint64_t maxBytes) {
  std::vector<Chunk> out;
  size_t g = 0;
  for (const Segment& s : L.segments) {
    uint64_t off = s.arenaOffset, fo = s.fileOffset, left = s.bytes;
    while (left > 0) {
      while (g + 1 < L.groups.size() && off >= L.groups[g].second) ++g;
      uint64_t lim = std::min(left, maxBytes);
      if (L.groups[g].second > off) lim = std::min(lim, L.groups[g].second - off);
      out.push_back({s.file, fo, lim, off, static_cast<int>(g)});
      off += lim;
      fo += lim;
      left -= lim;
    }
  }
  return out;
}

// Reports groups in ascending order once every chunk of groups 0..g has landed.
class GroupTracker {
 public:
  GroupTracker(const Layout& L, const std::vector<Chunk>& chunks) : remaining_(L.groups.size(), 0), bytes_(L.groups.size(), 0) {
    for (const Chunk& c : chunks) remaining_[c.group] += c.bytes, bytes_[c.group] += c.bytes;
  }
  void landed(const Chunk& c) { remaining_[c.group] -= c.bytes; }
  template <class F>
  void advance(F&& f) {
    while (next_ < remaining_.size() && remaining_[next_] == 0) f(static_cast<int>(next_++));
  }
  uint64_t groupBytes(int g) const { return bytes_[g]; }

 private:
  std::vector<uint64_t> remaining_, bytes_;
  size_t next_ = 0;
};

class Files {
 public:
  explicit Files(const std::vector<std::string>& paths) {
    for (const std::string& p : paths) {
      int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw NativeError(ErrorCode::kIo, "cannot open " + p + ": " + std::strerror(errno));
      posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
      fds_.push_back(fd);
    }
  }
  ~Files() {
    for (int fd : fds_) ::close(fd);
  }
  int operator[](size_t i) const { return fds_[i]; }

 private:
  std::vector<int> fds_;
};

uint64_t SegmentBytes(const Layout& L) {
  uint64_t n = 0;
  for (const Segment& s : L.segments) n += s.bytes;
  return n;
}

}  // namespace

// ---------------------------------------------------------------------------------------------- move threads

void RuntimeCore::checkInjected() {
  int c = injected_.exchange(-1);
  if (c >= 0) throw NativeError(static_cast<ErrorCode>(c), "injected fault (test hook failNext)");
  if (abort_) throw NativeError(ErrorCode::kAborted, "the move was aborted (runtime closing)");
}

void RuntimeCore::holdNext() {
  std::lock_guard<std::mutex> l(gateMu_);
  holdArmed_ = true;
  gateOpen_ = false;
}

void RuntimeCore::releaseHold() {
  {
    std::lock_guard<std::mutex> l(gateMu_);
    gateOpen_ = true;
  }
  gateCv_.notify_all();
}

MoveResult RuntimeCore::run(const Prepared& p, const MoveCallbacks& cb) {
  MoveResult r;
  {
    std::unique_lock<std::mutex> l(gateMu_);
    if (holdArmed_) {
      holdArmed_ = false;
      gateCv_.wait(l, [&] { return gateOpen_ || abort_.load(); });
    }
  }
  double t0 = NowMs();
  try {
    device->bindThread();
    switch (p.kind) {
      case MoveKind::kLoad: doLoad(p, cb, r); break;
      case MoveKind::kSwapIn: doSwapIn(p, cb, r); break;
      case MoveKind::kLoadToGpu: doLoadToGpu(p, cb, r); break;
      default: throw NativeError(ErrorCode::kInvalidArgument, "run() takes load, swap_in or load_to_gpu");
    }
  } catch (const NativeError& e) {
    if (e.code() == ErrorCode::kSticky) unusable_ = true;
    p.target->fail(e);
    {
      std::lock_guard<std::mutex> l(mu_);
      p.model->busy = false;
      if (p.model->host == p.target) p.model->host.reset();
      if (p.model->gpu == p.target) p.model->gpu.reset();
    }
    moveEnded();
    throw;
  } catch (const std::exception& e) {
    NativeError ne(ErrorCode::kIo, e.what());
    p.target->fail(ne);
    {
      std::lock_guard<std::mutex> l(mu_);
      p.model->busy = false;
      if (p.model->host == p.target) p.model->host.reset();
      if (p.model->gpu == p.target) p.model->gpu.reset();
    }
    moveEnded();
    throw ne;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    p.model->busy = false;
  }
  r.wallMs = NowMs() - t0;
  moveEnded();
  return r;
}

void RuntimeCore::doLoad(const Prepared& p, const MoveCallbacks& cb, MoveResult& r) {
  const Layout& L = p.model->layout;
  uint8_t* base = p.target->block->data();  // waits for the host pool to be pinned
  checkInjected();
  if (!p.cachePath.empty() && loadFromCache(p, cb, r)) return;
  Files files(L.files);
  std::vector<Chunk> chunks = MakeChunks(L, kLoadChunkBytes);
  GroupTracker tracker(L, chunks);
  Completions comp(chunks.size());
  const uint64_t total = SegmentBytes(L);
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Chunk& c = chunks[i];
    comp.submitted();
    readers_->submit({files[c.file], &L.files[c.file], c.fileOffset, c.bytes, base + c.arenaOffset, &abort_,
                      [&comp, i](const NativeError* e) { comp.finish(i, e); }});
  }
  uint64_t done = 0;
  auto land = [&](int g) {
    p.target->markLanded(g);
    if (cb.group) cb.group(g);
  };
  for (;;) {
    std::vector<size_t> fresh = comp.drain();
    if (fresh.empty()) break;
    for (size_t i : fresh) {
      tracker.landed(chunks[i]);
      done += chunks[i].bytes;
    }
    tracker.advance(land);
    if (cb.progress) cb.progress(done, total);
  }
  comp.rethrow();
  tracker.advance(land);
  r.bytes = total;
}

void RuntimeCore::doSwapIn(const Prepared& p, const MoveCallbacks& cb, MoveResult& r) {
  if (p.source->image) {  // a compressed host copy (compress.cc, codec/cuda/swap_gpu.cc)
    if (device->cuda()) doSwapInCompressedGpu(p, cb, r);
    else doSwapInCompressedCpu(p, cb, r);
    return;
  }
  const Layout& L = p.model->layout;
  const uint8_t* src = p.source->block->data();
  uint8_t* dst = p.target->block->data();
  checkInjected();
  const int G = static_cast<int>(L.groups.size());
  // Groups [0, p.resident) are already in the target (a resident prefix): they are not copied, and are ready at once.
  auto copied = [&](int g) { return g < p.resident ? 0 : L.groups[g].second - L.groups[g].first; };
  uint64_t total = 0;
  for (int g = 0; g < G; ++g) total += copied(g);
  auto stream = device->newStream();
  auto start = device->newEvent(true), end = device->newEvent(true);
  uint64_t done = 0;
  int landed = p.resident;  // marked landed by begin(): no copy, no event
  for (int g = 0; g < p.resident; ++g) {
    if (cb.group) cb.group(g);
  }
  // Marks, in order, the groups whose copies have completed (non-blocking unless `wait`).
  auto poll = [&](int upTo, bool wait) {
    while (landed < upTo) {
      Event& e = *p.target->events[landed];
      if (wait) e.synchronize();
      else if (!e.done()) break;
      p.target->markLanded(landed);
      done += copied(landed);
      if (cb.group) cb.group(landed);
      if (cb.progress) cb.progress(done, total);
      ++landed;
    }
  };
  try {
    stream->record(*start);
    for (int g = p.resident; g < G; ++g) {
      if (abort_) throw NativeError(ErrorCode::kAborted, "the move was aborted (runtime closing)");
      uint64_t a = L.groups[g].first, b = L.groups[g].second;
      p.target->events[g] = device->newEvent(false);
      if (b > a) stream->copyToDevice(dst + a, src + a, b - a);
      stream->record(*p.target->events[g]);
      p.target->markEnqueued(g);
      poll(g + 1, false);
    }
    stream->record(*end);
    poll(G, true);
    end->synchronize();
  } catch (...) {
    try {
      stream->synchronize();
    } catch (...) {
    }
    throw;
  }
  r.deviceMs = device->elapsedMs(*start, *end);
  r.bytes = total;
}

void RuntimeCore::doLoadToGpu(const Prepared& p, const MoveCallbacks& cb, MoveResult& r) {
  const Layout& L = p.model->layout;
  std::lock_guard<std::mutex> stagingLock(stagingMu_);
  uint8_t* staging = staging_->waitBase();
  uint8_t* dst = p.target->block->data();
  checkInjected();
  const uint64_t slotBytes = std::max<uint64_t>(4096, opts_.stagingBytes / kStagingSlots / 4096 * 4096);
  const size_t S = static_cast<size_t>(std::min<uint64_t>(kStagingSlots, opts_.stagingBytes / slotBytes));
  Files files(L.files);
  std::vector<Chunk> chunks = MakeChunks(L, slotBytes);
  GroupTracker tracker(L, chunks);
  const int G = static_cast<int>(L.groups.size());
  const uint64_t total = SegmentBytes(L);
  Completions comp(chunks.size());
  auto stream = device->newStream();
  auto start = device->newEvent(true), end = device->newEvent(true);
  std::vector<std::unique_ptr<Event>> slotDone(S);
  for (auto& e : slotDone) e = device->newEvent(false);
  for (int g = 0; g < G; ++g) p.target->events[g] = device->newEvent(false);
  size_t submitted = 0;
  int enqueued = 0, landed = 0;
  uint64_t done = 0;
  auto submit = [&](size_t i) {
    size_t slot = i % S;
    if (i >= S) slotDone[slot]->synchronize();  // the copy out of this slot (chunk i - S) has finished
    const Chunk& c = chunks[i];
    comp.submitted();
    readers_->submit({files[c.file], &L.files[c.file], c.fileOffset, c.bytes, staging + slot * slotBytes, &abort_,
                      [&comp, i](const NativeError* e) { comp.finish(i, e); }});
  };
  // Records group events up to (not including) group `upTo`: all their chunks' copies are in the stream.
  auto enqueueGroups = [&](int upTo) {
    for (; enqueued < upTo; ++enqueued) {
      stream->record(*p.target->events[enqueued]);
      p.target->markEnqueued(enqueued);
    }
  };
  auto poll = [&](bool wait) {
    while (landed < enqueued) {
      Event& e = *p.target->events[landed];
      if (wait) e.synchronize();
      else if (!e.done()) break;
      p.target->markLanded(landed);
      done += tracker.groupBytes(landed);
      if (cb.group) cb.group(landed);
      if (cb.progress) cb.progress(done, total);
      ++landed;
    }
  };
  try {
    stream->record(*start);
    for (size_t i = 0; i < chunks.size(); ++i) {
      while (submitted < chunks.size() && submitted < i + S) submit(submitted++);
      comp.waitFor(i);
      comp.rethrow();
      if (abort_) throw NativeError(ErrorCode::kAborted, "the move was aborted (runtime closing)");
      const Chunk& c = chunks[i];
      enqueueGroups(c.group);
      stream->copyToDevice(dst + c.arenaOffset, staging + (i % S) * slotBytes, c.bytes);
      stream->record(*slotDone[i % S]);
      poll(false);
    }
    enqueueGroups(G);
    stream->record(*end);
    poll(true);
    end->synchronize();
  } catch (...) {
    comp.waitAll();
    try {
      stream->synchronize();
    } catch (...) {
    }
    throw;
  }
  r.deviceMs = device->elapsedMs(*start, *end);
  r.bytes = total;
}

std::vector<double> RuntimeCore::floorCopy(const std::shared_ptr<Arena>& host, uint64_t bytes, int reps) {
  struct Done {
    RuntimeCore* c;
    ~Done() { c->moveEnded(); }
  } done{this};
  device->bindThread();
  if (host->image) throw NativeError(ErrorCode::kState, "the bench floor copies a raw host copy; this model is compressed");
  const uint8_t* src = host->block->data();
  uint8_t* dst = static_cast<uint8_t*>(device->allocDevice(bytes));
  std::vector<double> ms;
  try {
    auto stream = device->newStream();
    auto a = device->newEvent(true), b = device->newEvent(true);
    stream->copyToDevice(dst, src, bytes);  // warm-up
    stream->synchronize();
    for (int i = 0; i < reps; ++i) {
      stream->record(*a);
      stream->copyToDevice(dst, src, bytes);
      stream->record(*b);
      b->synchronize();
      ms.push_back(device->elapsedMs(*a, *b));
    }
  } catch (...) {
    device->freeDevice(dst, bytes);
    throw;
  }
  device->freeDevice(dst, bytes);
  return ms;
}

std::string RuntimeCore::checksum(const std::shared_ptr<Model>& m, const std::shared_ptr<Arena>& a, bool gpu) {
  struct Done {
    RuntimeCore* c;
    ~Done() { c->moveEnded(); }
  } done{this};
  device->bindThread();
  const uint8_t* base = a->block->data();
  Hasher h;
  if (!gpu && a->image) {  // a compressed host copy: hash what it decodes to
    std::vector<uint8_t> raw(m->layout.totalBytes);
    for (size_t i = 0; i < a->image->entries.size(); ++i) codec::DecodeEntry(*a->image, base, i, raw.data());
    for (const Segment& s : m->layout.segments) h.update(raw.data() + s.arenaOffset, s.bytes);
    return h.hex();
  }
  if (!gpu) {
    for (const Segment& s : m->layout.segments) h.update(base + s.arenaOffset, s.bytes);
    return h.hex();
  }
  // Device memory: read back through a bounce buffer (pageable is fine for a test helper).
  std::vector<uint8_t> bounce(std::min<uint64_t>(64ull << 20, std::max<uint64_t>(m->layout.totalBytes, 1)));
  auto stream = device->newStream();
  for (const Segment& s : m->layout.segments) {
    for (uint64_t off = 0; off < s.bytes; off += bounce.size()) {
      uint64_t n = std::min<uint64_t>(bounce.size(), s.bytes - off);
      stream->copyToHost(bounce.data(), base + s.arenaOffset + off, n);
      stream->synchronize();
      h.update(bounce.data(), n);
    }
  }
  return h.hex();
}

}  // namespace swapserve::runtime
