// The compressed disk cache's moves (design: runtime/codec/design.md "Disk cache"): a cold load reads a model's
// compressed image from its cache file into the pinned host block (the read pool, each 16 MiB block hashed by the
// reader thread that read it) instead of the raw files; and a compressed host image is written out to a cache file.
// The format is codec/disk_cache.{h,cc}. A file that is missing, stale or fails any check is never used: the load
// falls back to the raw files in the same move and says why (MoveResult::cache, cacheReason).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "runtime/codec/disk_cache.h"
#include "runtime/core.h"
#include "runtime/hash.h"

namespace swapserve::runtime {
namespace {

using codec::CacheReject;

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads up to n bytes at off; returns the bytes read (short only at end of file). Throws kIo on a read error.
size_t PreadAll(int fd, uint8_t* dst, size_t n, uint64_t off, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = pread(fd, dst + got, n - got, static_cast<off_t>(off + got));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) throw NativeError(ErrorCode::kIo, "reading " + path + " failed: " + std::strerror(errno));
    if (k == 0) break;
    got += static_cast<size_t>(k);
  }
  return got;
}

void WriteAll(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t k = ::write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) throw NativeError(ErrorCode::kIo, "writing " + path + " failed: " + std::strerror(k < 0 ? errno : EIO));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

}  // namespace

bool RuntimeCore::loadFromCache(const Prepared& p, const MoveCallbacks& cb, MoveResult& r) {
  const Layout& L = p.model->layout;
  const std::string& path = p.cachePath;
  uint8_t* base = p.target->block->data();
  // O_NONBLOCK: a FIFO put where the file should be must not block the open (it is then refused as not a file).
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (f.fd < 0) {
    r.cache = errno == ENOENT ? "miss" : "unusable";
    r.cacheReason = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  std::shared_ptr<codec::HostImage> img;
  uint64_t fileBytes = 0, imageBytes = 0;
  try {
    struct stat st {};
    if (fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) throw CacheReject(CacheReject::kCorrupt, "corrupt: not a regular file");
    fileBytes = static_cast<uint64_t>(st.st_size);
    codec::CacheHeader h;
    const size_t hn = PreadAll(f.fd, reinterpret_cast<uint8_t*>(&h), sizeof h, 0, path);
    h = codec::ParseCacheHeader(reinterpret_cast<const uint8_t*>(&h), hn, fileBytes);
    if (h.imageBytes > p.target->block->bytes()) {
      throw CacheReject(CacheReject::kUnusable, "its image of " + std::to_string(h.imageBytes) + " bytes is larger than the model's raw arena of " +
                                                    std::to_string(p.target->block->bytes()) + " bytes");
    }
    std::vector<uint8_t> meta(h.imageOffset);
    const size_t mn = PreadAll(f.fd, meta.data(), meta.size(), 0, path);
    codec::CacheMetaInfo m = codec::ParseCacheMeta(h, meta.data(), mn);
    if (m.identity != p.cacheIdentity) {
      throw CacheReject(CacheReject::kStale, "stale: written for other source files or another layout (identity differs)");
    }
    // The image, block by block on the read pool, straight into the pinned host block; each reader hashes what it
    // read while it is in its cache and compares with the block's stored digest.
    const uint64_t B = h.blockBytes;
    const size_t blocks = m.blockHashes.size();
    Completions comp(blocks);
    for (size_t k = 0; k < blocks; ++k) {
      const uint64_t n = std::min<uint64_t>(B, h.imageBytes - k * B);
      uint8_t* dst = base + k * B;
      comp.submitted();
      readers_->submit({f.fd, &path, h.imageOffset + k * B, n, dst, &abort_, [&comp, k, dst, n, want = m.blockHashes[k]](const NativeError* e) {
                          if (!e) {
                            Hasher x;
                            x.update(dst, n);
                            if (x.digest() != want) {
                              NativeError bad(ErrorCode::kIo, "corrupt: image block " + std::to_string(k) + " checksum mismatch");
                              comp.finish(k, &bad);
                              return;
                            }
                          }
                          comp.finish(k, e);
                        }});
    }
    uint64_t done = 0;
    for (;;) {
      std::vector<size_t> fresh = comp.drain();
      if (fresh.empty()) break;
      for (size_t k : fresh) done += std::min<uint64_t>(B, h.imageBytes - k * B);
      if (cb.progress) cb.progress(done, h.imageBytes);
    }
    try {
      comp.rethrow();
    } catch (const NativeError& e) {
      if (e.code() == ErrorCode::kAborted || abort_) throw;
      const std::string why = e.what();
      throw CacheReject(CacheReject::kCorrupt, why.rfind("corrupt: ", 0) == 0 ? why : "corrupt: " + why);
    }
    img = codec::IndexFromCache(m, base, L.groups, L.totalBytes);
    if (opts_.codecWorkBytes > 0) {
      try {
        codec::PlanWork(*img, opts_.codecWorkBytes);
      } catch (const NativeError& e) {
        throw CacheReject(CacheReject::kUnusable, e.what());
      }
    }
    imageBytes = h.imageBytes;
  } catch (const CacheReject& e) {
    r.cache = codec::CacheRejectName(e.kind);
    r.cacheReason = e.what();
    return false;
  } catch (const NativeError& e) {
    // A read error of the header or metadata (the image's are reported above): the file is not used.
    if (e.code() == ErrorCode::kAborted || e.code() == ErrorCode::kSticky || abort_) throw;
    r.cache = "corrupt";
    r.cacheReason = std::string("corrupt: ") + e.what();
    return false;
  }
  // The host budget now holds the compressed bytes only (the block was reserved at the raw size, for a fallback).
  host_->shrink(*p.target->block, imageBytes);
  {
    std::lock_guard<std::mutex> l(mu_);
    p.target->image = img;
    Model& m = *p.model;
    m.codec = "compressed";
    m.codecRatio = static_cast<double>(imageBytes) / static_cast<double>(std::max<uint64_t>(1, L.totalBytes));
    m.codecStoredBytes = imageBytes;
    m.codecEncodeMs = 0;
    m.codecReason.clear();
  }
  for (int g = 0; g < p.target->groups(); ++g) {
    p.target->markLanded(g);
    if (cb.group) cb.group(g);
  }
  r.bytes = fileBytes;
  r.cache = "hit";
  return true;
}

RuntimeCore::SaveJob RuntimeCore::beginSaveImage(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  checkUsable();
  auto m = find(id);
  if (!m->host || !m->host->image || (m->busy && m->busyKind == MoveKind::kLoad)) {
    throw NativeError(ErrorCode::kState, "model \"" + id + "\" is not compressed on the host tier (codec state " + m->codec + ")");
  }
  moveStarted();
  return {m, m->host};
}

uint64_t RuntimeCore::runSaveImage(const SaveJob& j, const std::string& path, const std::string& identity) {
  struct Done {
    RuntimeCore* c;
    ~Done() { c->moveEnded(); }
  } done{this};
  const codec::HostImage& img = *j.source->image;
  const uint8_t* data = j.source->block->data();
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::vector<uint64_t> hashes = codec::HashImageBlocks(data, img.bytes, std::min(hw, 4));
  const std::vector<uint8_t> meta = codec::CacheMeta(img, identity, hashes);
  // Exclusive create: the caller names a fresh temporary file and renames it into place once this returns.
  Fd f{::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
  if (f.fd < 0) throw NativeError(ErrorCode::kIo, "cannot create " + path + ": " + std::strerror(errno));
  try {
    WriteAll(f.fd, meta.data(), meta.size(), path);
    for (uint64_t off = 0; off < img.bytes; off += codec::kCacheBlockBytes) {
      if (abort_) throw NativeError(ErrorCode::kAborted, "the cache write was aborted (runtime closing)");
      WriteAll(f.fd, data + off, std::min(codec::kCacheBlockBytes, img.bytes - off), path);
    }
    // On disk before the caller's rename publishes it (a crash then leaves the old file or the whole new one).
    if (fdatasync(f.fd) != 0) throw NativeError(ErrorCode::kIo, "fdatasync " + path + " failed: " + std::strerror(errno));
    const int fd = f.fd;
    f.fd = -1;
    if (::close(fd) != 0) throw NativeError(ErrorCode::kIo, "closing " + path + " failed: " + std::strerror(errno));
  } catch (...) {
    ::unlink(path.c_str());
    throw;
  }
  return meta.size() + img.bytes;
}

}  // namespace swapserve::runtime
