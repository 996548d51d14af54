// The host tier's codec (issue 15 part 2; design: runtime/codec/design.md "A model in the host tier"): compress a
// model's host copy on a move thread when it pays, and swap a compressed model in by decoding on the CPU backend
// (the CUDA backend's pipelined copy + GPU decode is in codec/cuda/swap_gpu.cc).
#include <algorithm>
#include <cstring>
#include <thread>

#include "runtime/core.h"
#include "runtime/hash.h"

namespace swapserve::runtime {

RuntimeCore::CompressJob RuntimeCore::beginCompress(const std::string& id, std::vector<codec::Piece> pieces, double maxRatio) {
  std::lock_guard<std::mutex> l(mu_);
  checkUsable();
  auto m = find(id);
  const std::string name = "model \"" + id + "\"";
  if (!m->host || (m->busy && m->busyKind == MoveKind::kLoad)) {
    throw NativeError(ErrorCode::kState, name + " is not on the host tier (it is " + residencyLocked(id).state + "): load it first");
  }
  if (m->host->image) throw NativeError(ErrorCode::kState, name + " is already compressed on the host tier");
  if (std::string(m->codec) == "encoding") throw NativeError(ErrorCode::kState, name + " is already being compressed");
  if (opts_.cuda && opts_.codecWorkBytes == 0) {
    throw NativeError(ErrorCode::kState, "compress on the CUDA backend needs a codec work buffer for the GPU decode: open the runtime with "
                                         "codecWorkBytes > 0 (carved out of gpuBudgetBytes; config hostCodec.workBytes)");
  }
  const Layout& L = m->layout;
  std::sort(pieces.begin(), pieces.end(), [](const codec::Piece& a, const codec::Piece& b) { return a.arenaOffset < b.arenaOffset; });
  uint64_t prevEnd = 0;
  size_t g = 0;
  for (codec::Piece& p : pieces) {
    if (p.bytes == 0 || p.arenaOffset < prevEnd || p.arenaOffset + p.bytes > L.totalBytes) {
      throw NativeError(ErrorCode::kInvalidArgument, "compress: pieces must be non-empty, inside the arena and not overlap");
    }
    while (g + 1 < L.groups.size() && p.arenaOffset >= L.groups[g].second) ++g;
    if (p.arenaOffset < L.groups[g].first || p.arenaOffset + p.bytes > L.groups[g].second) {
      throw NativeError(ErrorCode::kInvalidArgument, "compress: a piece at arena offset " + std::to_string(p.arenaOffset) + " crosses a group boundary");
    }
    p.group = static_cast<int>(g);
    prevEnd = p.arenaOffset + p.bytes;
  }
  m->codec = "encoding";
  m->codecReason.clear();
  moveStarted();
  return {m, m->host, std::move(pieces), maxRatio};
}

RuntimeCore::CompressResult RuntimeCore::runCompress(const CompressJob& j) {
  struct Done {
    RuntimeCore* c;
    ~Done() { c->moveEnded(); }
  } done{this};
  const double t0 = NowMs();
  Model& m = *j.model;
  CompressResult r;
  r.rawBytes = m.layout.totalBytes;
  auto settle = [&](const char* state, const std::string& reason) {
    std::lock_guard<std::mutex> l(mu_);
    // The host copy went while encoding (dropped): nothing to record.
    m.codec = m.host == j.source ? state : "none";
    m.codecReason = reason;
    if (std::string(state) != "failed") m.codecRatio = r.ratio;
    m.codecEncodeMs = r.encodeMs;
    r.state = m.codec;
    r.reason = reason;
    r.wallMs = NowMs() - t0;
  };
  try {
    device->bindThread();
    const uint8_t* raw = j.source->block->data();  // waits for the host pool to be pinned
    codec::Built b = codec::BuildImage(raw, j.pieces, {}, opts_.codecThreads, &abort_);
    r.encodeMs = NowMs() - t0;
    r.ratio = static_cast<double>(b.index->bytes) / static_cast<double>(std::max<uint64_t>(1, r.rawBytes));
    char why[160];
    if (r.ratio > j.maxRatio) {
      std::snprintf(why, sizeof why, "compressed/raw = %.4f is above the threshold %.4f", r.ratio, j.maxRatio);
      settle("raw", why);
      return r;
    }
    if (opts_.codecWorkBytes > 0) {
      // Its swap-in must fit the fixed codec work buffer (its tables + the staging slots): else it stays raw.
      try {
        codec::PlanWork(*b.index, opts_.codecWorkBytes);
      } catch (const NativeError& e) {
        settle("raw", e.what());
        return r;
      }
    }
    // Under mu_: the host copy this encode read was dropped or replaced meanwhile, so the result is discarded.
    auto dropped = [&]() {
      if (m.host == j.source) return false;
      m.codec = "none";
      r.state = "none";
      r.reason = "the host copy was dropped while encoding";
      return true;
    };
    std::shared_ptr<Block> blk;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (dropped()) return r;
      try {
        blk = host_->reserve(b.index->bytes);  // beside the raw copy until the swap below
      } catch (const NativeError& e) {
        m.codec = "raw";
        m.codecRatio = r.ratio;
        m.codecReason = std::string("no room for the compressed copy beside the raw one: ") + e.what();
        r.state = "raw";
        r.reason = m.codecReason;
        return r;
      }
    }
    codec::WriteImage(b, blk->data());
    auto a = std::make_shared<Arena>(blk, static_cast<int>(m.layout.groups.size()));
    a->image = b.index;
    for (int g = 0; g < a->groups(); ++g) {
      a->markEnqueued(g);
      a->markLanded(g);
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      if (dropped()) return r;
      // A swap-in reading the raw copy now keeps it alive through its Prepared::source until it ends.
      m.host = a;
      m.codec = "compressed";
      m.codecRatio = r.ratio;
      m.codecStoredBytes = b.index->bytes;
      m.codecEncodeMs = r.encodeMs;
    }
    r.state = "compressed";
    r.storedBytes = b.index->bytes;
    r.wallMs = NowMs() - t0;
    return r;
  } catch (const NativeError& e) {
    if (e.code() == ErrorCode::kSticky) unusable_ = true;
    settle("failed", e.what());
    throw;
  } catch (const std::exception& e) {
    settle("failed", e.what());
    throw NativeError(ErrorCode::kIo, std::string("compress: ") + e.what());
  }
}

void RuntimeCore::doSwapInCompressedCpu(const Prepared& p, const MoveCallbacks& cb, MoveResult& r) {
  const codec::HostImage& img = *p.source->image;
  const Layout& L = p.model->layout;
  const uint8_t* host = p.source->block->data();
  uint8_t* dst = p.target->block->data();
  checkInjected();
  const int G = static_cast<int>(L.groups.size());
  // Groups [0, R) are a resident prefix: already in the target and landed by begin(), so none of their entries is
  // decoded (the image's entries are in group order).
  const int R = p.resident;
  auto stream = device->newStream();
  auto start = device->newEvent(true), end = device->newEvent(true);
  uint64_t total = 0, done = 0;
  for (int g = R; g < G; ++g) total += L.groups[g].second - L.groups[g].first;
  for (int g = 0; g < R; ++g) {
    if (cb.group) cb.group(g);
  }
  stream->record(*start);
  size_t i = 0;
  while (i < img.entries.size() && img.entries[i].group < R) ++i;
  for (int g = R; g < G; ++g) {
    p.target->events[g] = device->newEvent(false);
    if (abort_) throw NativeError(ErrorCode::kAborted, "the move was aborted (runtime closing)");
    size_t i1 = i;
    while (i1 < img.entries.size() && img.entries[i1].group == g) ++i1;
    {
      // The group's chunks on the decoder threads (every chunk's checksum and each tensor's hash verified; the
      // error is the one a decode in entry order meets first). Concurrent swap-ins take turns per group.
      std::lock_guard<std::mutex> l(decodeMu_);
      if (!decodePool_) {
        const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        decodePool_ = std::make_unique<engine::ThreadPool>(opts_.codecThreads > 0 ? opts_.codecThreads : std::min(hw, kMaxDecodeThreads));
      }
      codec::DecodeEntries(img, host, i, i1, dst, *decodePool_, &abort_);
    }
    i = i1;
    stream->record(*p.target->events[g]);
    p.target->markEnqueued(g);
    p.target->markLanded(g);
    done += L.groups[g].second - L.groups[g].first;
    if (cb.group) cb.group(g);
    if (cb.progress) cb.progress(done, total);
  }
  stream->record(*end);
  r.deviceMs = device->elapsedMs(*start, *end);
  r.bytes = total;
}

#ifndef SWAPSERVE_CUDA
void RuntimeCore::doSwapInCompressedGpu(const Prepared&, const MoveCallbacks&, MoveResult&) {
  throw NativeError(ErrorCode::kState, "compressed swap-in on a GPU needs the CUDA build");
}
#endif

}  // namespace swapserve::runtime
