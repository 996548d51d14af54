// Building and CPU-decoding a model's compressed host image (host_image.h).
#include "runtime/codec/host_image.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "common/errors.h"
#include "engine/cpu/thread_pool.h"

namespace swapserve::runtime::codec {
namespace {
uint64_t Align(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
}  // namespace

Built BuildImage(const uint8_t* arena, const std::vector<Piece>& pieces, const EncodeOptions& opt, int threads,
                 const std::atomic<bool>* abort) {
  // Cut the pieces into entries of at most kMaxEntryElems elements.
  struct Job {
    const uint8_t* src;
    Entry e;
    bool coded;
  };
  std::vector<Job> jobs;
  for (const Piece& p : pieces) {
    const uint32_t eb = p.coded ? FormatOf(p.dtype).elemBytes : 2;
    if (p.bytes % eb) throw NativeError(ErrorCode::kInvalidArgument, "codec: a piece of " + std::to_string(p.bytes) + " bytes is not a whole number of elements");
    const uint64_t maxBytes = kMaxEntryElems * eb;
    for (uint64_t off = 0; off < p.bytes; off += maxBytes) {
      Job j{arena + p.arenaOffset + off, {}, p.coded};
      j.e.arenaOffset = p.arenaOffset + off;
      j.e.rawBytes = std::min(maxBytes, p.bytes - off);
      j.e.group = p.group;
      j.e.dtype = p.coded ? p.dtype : DType::kBf16;
      jobs.push_back(std::move(j));
    }
  }
  Built b;
  b.containers.resize(jobs.size());
  std::atomic<size_t> next{0};
  std::mutex errMu;
  std::exception_ptr err;
  auto work = [&] {
    for (;;) {
      size_t i = next++;
      if (i >= jobs.size()) return;
      try {
        if (abort && abort->load()) throw NativeError(ErrorCode::kAborted, "the compression was aborted (runtime closing)");
        EncodeOptions o = opt;
        if (!jobs[i].coded) o.forceRaw = true;
        b.containers[i] = Encode(jobs[i].src, jobs[i].e.rawBytes, jobs[i].e.dtype, o);
      } catch (...) {
        std::lock_guard<std::mutex> l(errMu);
        if (!err) err = std::current_exception();
        next = jobs.size();
        return;
      }
    }
  };
  int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n = static_cast<int>(std::min<size_t>(n, std::max<size_t>(1, jobs.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (err) std::rethrow_exception(err);

  auto img = std::make_shared<HostImage>();
  uint64_t tables = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    Entry& e = jobs[i].e;
    const std::vector<uint8_t>& c = b.containers[i];
    Header h;
    std::memcpy(&h, c.data(), sizeof h);
    e.mode = static_cast<Mode>(h.mode);
    e.numChunks = h.numChunks;
    e.layout = LayoutOf(h);
    e.containerBytes = c.size();
    e.chunkOffset.resize(e.numChunks + 1);
    std::memcpy(e.chunkOffset.data(), c.data() + e.layout.chunkOffset, 8 * (e.numChunks + 1));
    e.chunkSum.resize(e.numChunks);
    std::memcpy(e.chunkSum.data(), c.data() + e.layout.chunkSum, 4 * e.numChunks);
    e.tablesOff = tables;
    tables = Align(tables + e.layout.payload, 16);
    e.sumBase = img->totalChunks;
    img->totalChunks += e.numChunks;
    img->rawBytes += e.rawBytes;
  }
  img->tablesBytes = Align(tables, 256);
  uint64_t at = img->tablesBytes;
  for (Job& j : jobs) {
    j.e.containerOff = at;
    at = Align(at + j.e.containerBytes, 16);
    img->entries.push_back(std::move(j.e));
  }
  img->bytes = at;
  b.index = std::move(img);
  return b;
}

void WriteImage(const Built& b, uint8_t* dst) {
  const HostImage& img = *b.index;
  std::memset(dst, 0, img.tablesBytes);
  for (size_t i = 0; i < img.entries.size(); ++i) {
    const Entry& e = img.entries[i];
    const std::vector<uint8_t>& c = b.containers[i];
    std::memcpy(dst + e.tablesOff, c.data(), e.layout.payload);
    std::memcpy(dst + e.containerOff, c.data(), c.size());
  }
}

void DecodeEntry(const HostImage& img, const uint8_t* image, size_t i, uint8_t* arena) {
  const Entry& e = img.entries[i];
  Decode(image + e.containerOff, e.containerBytes, arena + e.arenaOffset, e.rawBytes);
}

void DecodeEntries(const HostImage& img, const uint8_t* image, size_t i0, size_t i1, uint8_t* arena,
                   engine::ThreadPool& pool, const std::atomic<bool>* abort) {
  if (i1 <= i0) return;
  const size_t n = i1 - i0;
  // Per entry: its decoder (null where inspecting the container failed) and the error that ends it, in the order a
  // sequential decode meets them; chunks are numbered across the entries (chunkBase) so each has its own slot.
  std::vector<std::unique_ptr<ChunkDecoder>> dec(n);
  std::vector<std::exception_ptr> entryErr(n);
  std::vector<size_t> chunkBase(n + 1, 0);
  for (size_t j = 0; j < n; ++j) {
    const Entry& e = img.entries[i0 + j];
    try {
      dec[j] = std::make_unique<ChunkDecoder>(image + e.containerOff, e.containerBytes, e.rawBytes);
    } catch (...) {
      entryErr[j] = std::current_exception();
    }
    chunkBase[j + 1] = chunkBase[j] + (dec[j] ? dec[j]->chunks() : 0);
  }
  const size_t chunks = chunkBase[n];
  std::vector<std::exception_ptr> chunkErr(chunks);
  std::vector<std::vector<uint8_t>> exps(pool.size());
  std::atomic<bool> aborted{false};
  pool.ParallelFor(static_cast<int64_t>(chunks), 1, [&](int64_t b, int64_t end, int tid) {
    std::vector<uint8_t>& x = exps[tid];
    for (int64_t t = b; t < end; ++t) {
      if (abort && abort->load()) {
        aborted = true;
        return;
      }
      const size_t j = std::upper_bound(chunkBase.begin(), chunkBase.end(), static_cast<size_t>(t)) - chunkBase.begin() - 1;
      try {
        if (x.empty()) x.resize(kChunkElems);
        dec[j]->decodeChunk(static_cast<uint32_t>(t - chunkBase[j]), arena + img.entries[i0 + j].arenaOffset, x.data());
      } catch (...) {
        chunkErr[t] = std::current_exception();
      }
    }
  });
  if (aborted) throw NativeError(ErrorCode::kAborted, "the move was aborted (runtime closing)");
  // An entry's first failing chunk is its error; the others get their data hash checked (in parallel too).
  for (size_t j = 0; j < n; ++j) {
    for (size_t t = chunkBase[j]; t < chunkBase[j + 1] && !entryErr[j]; ++t) {
      if (chunkErr[t]) entryErr[j] = chunkErr[t];
    }
  }
  pool.ParallelFor(static_cast<int64_t>(n), 1, [&](int64_t b, int64_t end, int) {
    for (int64_t j = b; j < end; ++j) {
      if (entryErr[j]) continue;
      try {
        dec[j]->checkHash(arena + img.entries[i0 + j].arenaOffset);
      } catch (...) {
        entryErr[j] = std::current_exception();
      }
    }
  });
  for (size_t j = 0; j < n; ++j) {
    if (entryErr[j]) std::rethrow_exception(entryErr[j]);
  }
}

WorkPlan PlanWork(const HostImage& img, uint64_t workBytes) {
  WorkPlan w;
  w.sumsAt = Align(img.tablesBytes, 256);
  w.errAt = w.sumsAt + Align(uint64_t{img.totalChunks} * 4, 256);
  w.slotsAt = w.errAt + 256;
  const uint64_t left = workBytes > w.slotsAt ? workBytes - w.slotsAt : 0;
  w.slotBytes = std::min<uint64_t>(kMaxSlotBytes, left / kWorkSlots / 256 * 256);
  if (w.slotBytes < kMinSlotBytes) {
    throw NativeError(ErrorCode::kBudget, "codec: the image's tables and chunk checksums need " + std::to_string(w.slotsAt) +
                                              " bytes of device memory, which leaves the codec work buffer of " + std::to_string(workBytes) +
                                              " bytes (codecWorkBytes) less than " + std::to_string(kWorkSlots) + " staging slots of " +
                                              std::to_string(kMinSlotBytes) + " bytes; raise it (config hostCodec.workBytes)");
  }
  w.usedBytes = w.slotsAt + w.slotBytes * kWorkSlots;
  return w;
}

}  // namespace swapserve::runtime::codec
