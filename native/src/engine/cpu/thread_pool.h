// A small fixed pool of compute threads for the CPU backend: ParallelFor over an index range.
//
// The calling (engine) thread takes part in the work, so a pool of N threads starts N-1 helpers. Work items are
// handed out in chunks from an atomic counter; each index is computed by exactly one thread, so results do not
// depend on the number of threads or on scheduling (the ops keep every reduction inside one index).
#pragma once
#include <atomic>
#include <exception>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace swapserve::engine {

class ThreadPool {
 public:
  // threads: total threads including the caller; 0 = hardware concurrency.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(helpers_.size()) + 1; }

  // Calls fn(begin, end, tid) over [0, n) in chunks of at least `grain` indices; tid in [0, size()).
  // Runs inline when n <= grain or the pool has one thread. Not re-entrant; one caller at a time. An exception
  // thrown by fn (e.g. bad_alloc) on any thread is rethrown to the caller once every thread has stopped.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void HelperMain(int tid);
  void Drain(int tid);

  std::vector<std::thread> helpers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  int pending_ = 0;  // helpers still inside the current generation
  // The current job (valid while pending_ > 0 or the caller drains).
  const std::function<void(int64_t, int64_t, int)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;  // the first exception of the current job (guarded by mu_)
};

}  // namespace swapserve::engine
