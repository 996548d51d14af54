// Reader threads shared by every disk move: each job preads `bytes` of a file straight into its destination
// (pinned host arena or a staging slot: no bounce copy) and reports completion from the reader thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"

namespace swapserve::runtime {

struct ReadJob {
  int fd = -1;
  const std::string* path = nullptr;  // for error messages; owned by the submitter, alive until done()
  uint64_t fileOffset = 0;
  uint64_t bytes = 0;
  uint8_t* dst = nullptr;
  const std::atomic<bool>* abort = nullptr;  // checked before the read: set -> done(kAborted)
  // Called on the reader thread exactly once; `err` is null on success.
  std::function<void(const NativeError* err)> done;
};

class ReadPool {
 public:
  explicit ReadPool(int threads);
  ~ReadPool();  // joins the threads after the queued jobs ran
  void submit(ReadJob job);

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ReadJob> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Tracks the jobs one move thread submitted (job i = chunk i). The submitter always waits for every submitted
// job before returning, even on error, because the jobs write into its buffers.
class Completions {
 public:
  explicit Completions(size_t n) : finished_(n, 0) {}
  void submitted();
  void finish(size_t i, const NativeError* err);  // reader thread
  // Blocks until a job finished since the last call or none is pending; returns the newly finished indices.
  std::vector<size_t> drain();
  void waitFor(size_t i);  // blocks until job i finished or some job failed
  void waitAll();
  void rethrow();  // throws the first failure, if any

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<char> finished_;
  std::vector<size_t> fresh_;
  int pending_ = 0;
  bool failed_ = false;
  ErrorCode code_ = ErrorCode::kIo;
  std::string msg_;
};

}  // namespace swapserve::runtime
