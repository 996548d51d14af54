// Page-cache helpers for benchmarks: drop a file's clean pages (posix_fadvise DONTNEED, no root needed) and
// measure how much of it is cached (mincore), so "cold" and "warm" reads are verified, not assumed.
#pragma once
#include <string>

namespace swapserve::runtime {
void DropPageCache(const std::string& path);      // throws NativeError kIo
double CachedFraction(const std::string& path);   // 0..1; throws NativeError kIo
}  // namespace swapserve::runtime
