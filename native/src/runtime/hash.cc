// Hasher: 4 lanes of acc = rotl(acc + word * P2, 31) * P1 over 32-byte stripes, then an avalanche of the lanes,
// the tail bytes and the length.
#include "runtime/hash.h"

#include <cstdio>
#include <cstring>

namespace swapserve::runtime {

static constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full, kP3 = 0x165667B19E3779F9ull;

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
static inline uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

void Hasher::stripe(const uint8_t* p) {
  for (int i = 0; i < 4; ++i) lane_[i] = rotl(lane_[i] + load64(p + 8 * i) * kP2, 31) * kP1;
}

void Hasher::update(const uint8_t* p, size_t n) {
  total_ += n;
  if (tailBytes_ > 0) {
    size_t take = 32 - tailBytes_ < n ? 32 - tailBytes_ : n;
    std::memcpy(tail_ + tailBytes_, p, take);
    tailBytes_ += take;
    p += take;
    n -= take;
    if (tailBytes_ < 32) return;
    stripe(tail_);
    tailBytes_ = 0;
  }
  while (n >= 32) {
    stripe(p);
    p += 32;
    n -= 32;
  }
  std::memcpy(tail_, p, n);
  tailBytes_ = n;
}

uint64_t Hasher::digest() const {
  uint64_t h = rotl(lane_[0], 1) + rotl(lane_[1], 7) + rotl(lane_[2], 12) + rotl(lane_[3], 18);
  for (int i = 0; i < 4; ++i) h = (h ^ mix(lane_[i])) * kP1 + kP3;
  h ^= total_;
  for (size_t i = 0; i < tailBytes_; ++i) h = rotl(h ^ (tail_[i] * kP3), 11) * kP1;
  return mix(h);
}

std::string Hasher::hex() const {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(digest()));
  return buf;
}

}  // namespace swapserve::runtime
