// The compressed disk cache's file format (design: runtime/codec/design.md "Disk cache"): a model's compressed host
// image persisted as [header | identity | entry records | image block hashes | pad to 4 KiB | image], so a cold load
// reads the image straight into the pinned host block instead of the raw model file. Building the metadata, parsing
// and verifying it, and rebuilding the image index from the records; no I/O, no N-API, no CUDA.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "runtime/codec/host_image.h"

namespace swapserve::runtime::codec {

constexpr uint32_t kCacheMagic = 0x31435353u;  // "SSC1" little-endian
constexpr uint16_t kCacheVersion = 1;
constexpr uint64_t kCacheBlockBytes = 16ull << 20;  // one read job and one hash each
constexpr uint64_t kCacheAlign = 4096;              // the image starts at a page boundary of the file
constexpr uint32_t kMaxIdentityBytes = 1u << 20;
constexpr uint64_t kMaxCacheMetaBytes = 256ull << 20;  // header + identity + records + hashes

#pragma pack(push, 1)
struct CacheHeader {
  uint32_t magic;
  uint16_t version;       // kCacheVersion
  uint16_t codecVersion;  // codec::kVersion of every container
  uint32_t headerBytes;   // sizeof(CacheHeader)
  uint32_t identityBytes;
  uint32_t entries;
  uint32_t blockBytes;    // image hash block, bytes
  uint64_t imageBytes, tablesBytes, rawBytes;  // HostImage::bytes, tablesBytes, rawBytes
  uint64_t imageOffset;   // file offset of the image (a multiple of kCacheAlign); file size = imageOffset + imageBytes
  uint64_t metaHash;      // runtime/hash.h Hasher over the header (this field 0), identity, records and block hashes
  uint64_t reserved[3];
};
struct CacheRecord {
  uint64_t arenaOffset, rawBytes, containerOff, containerBytes, tablesOff;
};
#pragma pack(pop)
static_assert(sizeof(CacheHeader) == 88, "cache header is 88 bytes");
static_assert(sizeof(CacheRecord) == 40, "cache record is 40 bytes");

// Why a cache file is not used: kStale (written for other source files, another layout or codec version), kCorrupt
// (truncated, a checksum or structure that does not verify), kUnusable (valid, but this runtime cannot hold it:
// larger than the raw arena, or its tables do not fit the codec work buffer). Stale and corrupt files are deleted by
// the caller; unusable ones are kept (another worker may use them).
class CacheReject : public std::runtime_error {
 public:
  enum Kind { kStale, kCorrupt, kUnusable };
  CacheReject(Kind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
  Kind kind;
};
const char* CacheRejectName(CacheReject::Kind k);  // "stale" | "corrupt" | "unusable"

uint64_t CacheBlocks(uint64_t imageBytes, uint64_t blockBytes);
// Digest of each kCacheBlockBytes block of the image (on `threads` threads).
std::vector<uint64_t> HashImageBlocks(const uint8_t* image, uint64_t bytes, int threads);
// Everything before the image, padded to imageOffset.
std::vector<uint8_t> CacheMeta(const HostImage& img, const std::string& identity, const std::vector<uint64_t>& blockHashes);

struct CacheMetaInfo {
  CacheHeader header;
  std::string identity;
  std::vector<CacheRecord> records;
  std::vector<uint64_t> blockHashes;
};
// Checks the fixed header against the file's size (kCorrupt: truncated or not a cache file; kStale: another
// format or codec version). Returns the bytes of metadata to read next (imageOffset).
CacheHeader ParseCacheHeader(const uint8_t* p, size_t n, uint64_t fileBytes);
// Verifies metaHash over [0, imageOffset) and splits it (kCorrupt).
CacheMetaInfo ParseCacheMeta(const CacheHeader& h, const uint8_t* meta, size_t n);
// Rebuilds the image index from the records and the (already block-verified) image: every container inspected,
// its tables copy compared, every range bounds-checked, each entry's group derived from `groups` (kCorrupt).
std::shared_ptr<HostImage> IndexFromCache(const CacheMetaInfo& m, const uint8_t* image,
                                          const std::vector<std::pair<uint64_t, uint64_t>>& groups, uint64_t arenaBytes);

}  // namespace swapserve::runtime::codec
