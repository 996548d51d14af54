// The disk cache's file format (disk_cache.h): metadata out, metadata in, and the image index rebuilt from it.
#include "runtime/codec/disk_cache.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "runtime/hash.h"

namespace swapserve::runtime::codec {
namespace {
uint64_t Align(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

uint64_t MetaHash(const uint8_t* meta, size_t n) {
  CacheHeader h;
  std::memcpy(&h, meta, sizeof h);
  h.metaHash = 0;
  Hasher x;
  x.update(reinterpret_cast<const uint8_t*>(&h), sizeof h);
  x.update(meta + sizeof h, n - sizeof h);
  return x.digest();
}

[[noreturn]] void Corrupt(const std::string& why) { throw CacheReject(CacheReject::kCorrupt, "corrupt: " + why); }
}  // namespace

const char* CacheRejectName(CacheReject::Kind k) {
  return k == CacheReject::kStale ? "stale" : k == CacheReject::kCorrupt ? "corrupt" : "unusable";
}

uint64_t CacheBlocks(uint64_t imageBytes, uint64_t blockBytes) { return (imageBytes + blockBytes - 1) / blockBytes; }

std::vector<uint64_t> HashImageBlocks(const uint8_t* image, uint64_t bytes, int threads) {
  const uint64_t n = CacheBlocks(bytes, kCacheBlockBytes);
  std::vector<uint64_t> out(n);
  const int t = static_cast<int>(std::max<uint64_t>(1, std::min<uint64_t>(n, threads > 0 ? threads : 1)));
  std::vector<std::thread> pool;
  auto work = [&](int id) {
    for (uint64_t k = id; k < n; k += t) {
      Hasher h;
      h.update(image + k * kCacheBlockBytes, std::min(kCacheBlockBytes, bytes - k * kCacheBlockBytes));
      out[k] = h.digest();
    }
  };
  for (int i = 1; i < t; ++i) pool.emplace_back(work, i);
  work(0);
  for (auto& th : pool) th.join();
  return out;
}

std::vector<uint8_t> CacheMeta(const HostImage& img, const std::string& identity, const std::vector<uint64_t>& blockHashes) {
  CacheHeader h{};
  h.magic = kCacheMagic;
  h.version = kCacheVersion;
  h.codecVersion = kVersion;
  h.headerBytes = sizeof(CacheHeader);
  h.identityBytes = static_cast<uint32_t>(identity.size());
  h.entries = static_cast<uint32_t>(img.entries.size());
  h.blockBytes = static_cast<uint32_t>(kCacheBlockBytes);
  h.imageBytes = img.bytes;
  h.tablesBytes = img.tablesBytes;
  h.rawBytes = img.rawBytes;
  const uint64_t used = sizeof h + identity.size() + img.entries.size() * sizeof(CacheRecord) + blockHashes.size() * 8;
  h.imageOffset = Align(used, kCacheAlign);
  std::vector<uint8_t> meta(h.imageOffset, 0);
  uint8_t* p = meta.data() + sizeof h;
  std::memcpy(p, identity.data(), identity.size());
  p += identity.size();
  for (const Entry& e : img.entries) {
    CacheRecord r{e.arenaOffset, e.rawBytes, e.containerOff, e.containerBytes, e.tablesOff};
    std::memcpy(p, &r, sizeof r);
    p += sizeof r;
  }
  std::memcpy(p, blockHashes.data(), blockHashes.size() * 8);
  std::memcpy(meta.data(), &h, sizeof h);
  h.metaHash = MetaHash(meta.data(), meta.size());
  std::memcpy(meta.data(), &h, sizeof h);
  return meta;
}

CacheHeader ParseCacheHeader(const uint8_t* p, size_t n, uint64_t fileBytes) {
  if (n < sizeof(CacheHeader)) Corrupt("the file has " + std::to_string(fileBytes) + " bytes, less than a cache header (truncated)");
  CacheHeader h;
  std::memcpy(&h, p, sizeof h);
  if (h.magic != kCacheMagic) Corrupt("not a swapserve codec cache file (bad magic)");
  if (h.version != kCacheVersion) throw CacheReject(CacheReject::kStale, "stale: cache format version " + std::to_string(h.version) + ", this build reads " + std::to_string(kCacheVersion));
  if (h.codecVersion != kVersion) throw CacheReject(CacheReject::kStale, "stale: written by codec version " + std::to_string(h.codecVersion) + ", this build has " + std::to_string(kVersion));
  if (h.headerBytes != sizeof h) Corrupt("header size " + std::to_string(h.headerBytes));
  if (h.identityBytes > kMaxIdentityBytes) Corrupt("identity of " + std::to_string(h.identityBytes) + " bytes");
  if (h.blockBytes < (1u << 20) || h.blockBytes % kCacheAlign) Corrupt("hash block of " + std::to_string(h.blockBytes) + " bytes");
  if (h.imageOffset % kCacheAlign || h.imageOffset > kMaxCacheMetaBytes) Corrupt("image offset " + std::to_string(h.imageOffset));
  const uint64_t blocks = CacheBlocks(h.imageBytes, h.blockBytes);
  const uint64_t need = sizeof h + uint64_t{h.identityBytes} + uint64_t{h.entries} * sizeof(CacheRecord) + blocks * 8;
  if (h.imageBytes == 0 || need > h.imageOffset) Corrupt("metadata of " + std::to_string(need) + " bytes does not fit before the image");
  if (fileBytes != h.imageOffset + h.imageBytes) {
    Corrupt("the file has " + std::to_string(fileBytes) + " bytes, its header says " + std::to_string(h.imageOffset + h.imageBytes) +
            (fileBytes < h.imageOffset + h.imageBytes ? " (truncated)" : ""));
  }
  return h;
}

CacheMetaInfo ParseCacheMeta(const CacheHeader& h, const uint8_t* meta, size_t n) {
  if (n != h.imageOffset) Corrupt("metadata read short");
  if (MetaHash(meta, n) != h.metaHash) Corrupt("metadata checksum mismatch");
  CacheMetaInfo m;
  m.header = h;
  const uint8_t* p = meta + sizeof h;
  m.identity.assign(reinterpret_cast<const char*>(p), h.identityBytes);
  p += h.identityBytes;
  m.records.resize(h.entries);
  std::memcpy(m.records.data(), p, m.records.size() * sizeof(CacheRecord));
  p += m.records.size() * sizeof(CacheRecord);
  m.blockHashes.resize(CacheBlocks(h.imageBytes, h.blockBytes));
  std::memcpy(m.blockHashes.data(), p, m.blockHashes.size() * 8);
  return m;
}

std::shared_ptr<HostImage> IndexFromCache(const CacheMetaInfo& m, const uint8_t* image,
                                          const std::vector<std::pair<uint64_t, uint64_t>>& groups, uint64_t arenaBytes) {
  const CacheHeader& h = m.header;
  if (h.tablesBytes > h.imageBytes) Corrupt("tables region beyond the image");
  auto img = std::make_shared<HostImage>();
  img->tablesBytes = h.tablesBytes;
  img->bytes = h.imageBytes;
  uint64_t prevEnd = 0;
  size_t g = 0;
  for (size_t i = 0; i < m.records.size(); ++i) {
    const CacheRecord& r = m.records[i];
    const std::string at = "entry " + std::to_string(i) + ": ";
    if (r.rawBytes == 0 || r.arenaOffset < prevEnd || r.arenaOffset > arenaBytes || r.rawBytes > arenaBytes - r.arenaOffset) {
      Corrupt(at + "arena range out of order or outside the arena");
    }
    while (g + 1 < groups.size() && r.arenaOffset >= groups[g].second) ++g;
    if (groups.empty() || r.arenaOffset < groups[g].first || r.arenaOffset + r.rawBytes > groups[g].second) Corrupt(at + "crosses a group boundary");
    if (r.containerOff < h.tablesBytes || r.containerOff > h.imageBytes || r.containerBytes > h.imageBytes - r.containerOff) {
      Corrupt(at + "container outside the image");
    }
    Entry e;
    e.arenaOffset = r.arenaOffset;
    e.rawBytes = r.rawBytes;
    e.group = static_cast<int>(g);
    e.containerOff = r.containerOff;
    e.containerBytes = r.containerBytes;
    e.tablesOff = r.tablesOff;
    Info info;
    try {
      info = Inspect(image + r.containerOff, r.containerBytes);
    } catch (const std::exception& ex) {
      Corrupt(at + ex.what());
    }
    if (info.rawBytes != r.rawBytes || info.layout.total != r.containerBytes) Corrupt(at + "container sizes do not match its record");
    if (r.tablesOff > h.tablesBytes || info.layout.payload > h.tablesBytes - r.tablesOff ||
        std::memcmp(image + r.tablesOff, image + r.containerOff, info.layout.payload) != 0) {
      Corrupt(at + "the tables copy does not match the container");
    }
    e.mode = info.mode;
    e.dtype = info.dtype;
    e.numChunks = info.header.numChunks;
    e.layout = info.layout;
    e.chunkOffset.resize(e.numChunks + 1);
    std::memcpy(e.chunkOffset.data(), image + r.containerOff + e.layout.chunkOffset, 8 * (e.numChunks + 1));
    e.chunkSum.resize(e.numChunks);
    std::memcpy(e.chunkSum.data(), image + r.containerOff + e.layout.chunkSum, 4 * e.numChunks);
    e.sumBase = img->totalChunks;
    img->totalChunks += e.numChunks;
    img->rawBytes += e.rawBytes;
    prevEnd = r.arenaOffset + r.rawBytes;
    img->entries.push_back(std::move(e));
  }
  if (img->rawBytes != h.rawBytes) Corrupt("entries hold " + std::to_string(img->rawBytes) + " bytes, the header says " + std::to_string(h.rawBytes));
  return img;
}

}  // namespace swapserve::runtime::codec
