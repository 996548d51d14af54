// ReadPool: plain pread loops on a fixed set of threads (parallel reads saturate both NVMe queues and, from the
// page cache, memory bandwidth, where one reader thread tops out near 9 GB/s).
#include "runtime/read_pool.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace swapserve::runtime {

ReadPool::ReadPool(int threads) {
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

ReadPool::~ReadPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ReadPool::submit(ReadJob job) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
}

static void RunJob(ReadJob& job) {
  if (job.abort && job.abort->load()) {
    NativeError e(ErrorCode::kAborted, "the move was aborted (runtime closing)");
    job.done(&e);
    return;
  }
  uint64_t got = 0;
  while (got < job.bytes) {
    ssize_t n = pread(job.fd, job.dst + got, job.bytes - got, static_cast<off_t>(job.fileOffset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string why = n < 0 ? std::strerror(errno) : "unexpected end of file";
      NativeError e(ErrorCode::kIo, "reading " + std::to_string(job.bytes) + " bytes at offset " +
                                        std::to_string(job.fileOffset) + " of " + (job.path ? *job.path : "?") +
                                        " failed: " + why);
      job.done(&e);
      return;
    }
    got += static_cast<uint64_t>(n);
  }
  job.done(nullptr);
}

void ReadPool::loop() {
  for (;;) {
    ReadJob job;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    RunJob(job);
  }
}

void Completions::submitted() {
  std::lock_guard<std::mutex> l(mu_);
  ++pending_;
}

// The broadcast happens under the lock: the owner destroys this object as soon as its wait sees the last job done,
// so once the lock is released nothing of it may be touched (bench/runtime/completions_race.cc; broadcasting after
// the unlock hung CI when the owner's next call had reused the memory).
void Completions::finish(size_t i, const NativeError* err) {
  std::lock_guard<std::mutex> l(mu_);
  --pending_;
  if (err) {
    if (!failed_) {
      failed_ = true;
      code_ = err->code();
      msg_ = err->what();
    }
  } else {
    finished_[i] = 1;
    fresh_.push_back(i);
  }
  cv_.notify_all();
}

std::vector<size_t> Completions::drain() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return pending_ == 0 || !fresh_.empty(); });
  std::vector<size_t> out;
  out.swap(fresh_);
  return out;
}

void Completions::waitFor(size_t i) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return finished_[i] || failed_ || pending_ == 0; });
}

void Completions::waitAll() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return pending_ == 0; });
}

void Completions::rethrow() {
  std::lock_guard<std::mutex> l(mu_);
  if (failed_) throw NativeError(code_, msg_);
}

}  // namespace swapserve::runtime
