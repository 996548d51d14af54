// DropPageCache / CachedFraction (see page_cache.h).
#include "runtime/page_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/errors.h"

namespace swapserve::runtime {

namespace {
int OpenOrThrow(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw NativeError(ErrorCode::kIo, "cannot open " + path + ": " + std::strerror(errno));
  return fd;
}
}  // namespace

void DropPageCache(const std::string& path) {
  int fd = OpenOrThrow(path);
  fdatasync(fd);  // dirty pages cannot be dropped
  int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  if (rc != 0) throw NativeError(ErrorCode::kIo, "posix_fadvise(DONTNEED) on " + path + " failed: " + std::strerror(rc));
}

double CachedFraction(const std::string& path) {
  int fd = OpenOrThrow(path);
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    return 0;
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw NativeError(ErrorCode::kIo, "mmap of " + path + " failed: " + std::strerror(errno));
  long page = sysconf(_SC_PAGESIZE);
  size_t pages = (size + page - 1) / page;
  std::vector<unsigned char> vec(pages);
  int rc = mincore(p, size, vec.data());
  munmap(p, size);
  if (rc != 0) throw NativeError(ErrorCode::kIo, "mincore on " + path + " failed: " + std::strerror(errno));
  size_t in = 0;
  for (unsigned char v : vec) in += v & 1;
  return static_cast<double>(in) / static_cast<double>(pages);
}

}  // namespace swapserve::runtime
