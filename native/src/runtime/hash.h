// A fast streaming 64-bit checksum (4 independent multiply-rotate lanes over 32-byte stripes, xxHash-style
// structure, not xxHash-compatible) used to compare tiers byte for byte in tests and benches.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace swapserve::runtime {

class Hasher {
 public:
  void update(const uint8_t* p, size_t n);
  uint64_t digest() const;
  std::string hex() const;

 private:
  uint64_t lane_[4] = {0x9E3779B185EBCA87ull, 0xC2B2AE3D27D4EB4Full, 0x165667B19E3779F9ull, 0x85EBCA77C2B2AE63ull};
  uint8_t tail_[32];
  size_t tailBytes_ = 0;
  uint64_t total_ = 0;
  void stripe(const uint8_t* p);
};

}  // namespace swapserve::runtime
