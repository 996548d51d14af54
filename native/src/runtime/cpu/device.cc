// The CPU backend's device: the "GPU" tier is a separate anonymous mapping with its own budget, copies are
// memcpy on the calling (move) thread and events are timestamps, so every runtime path runs without a GPU.
#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <fstream>

#include "common/errors.h"
#include "runtime/device.h"

namespace swapserve::runtime {
namespace {

double NowMs() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

class CpuEvent : public Event {
 public:
  double ms = 0;  // steady clock at record()
  void synchronize() override {}
  bool done() override { return true; }
  void* handle() override { return nullptr; }
};

class CpuStream : public Stream {
 public:
  void copyToDevice(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copyToHost(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void record(Event& e) override { static_cast<CpuEvent&>(e).ms = NowMs(); }
  void synchronize() override {}
  void* handle() override { return nullptr; }
};

void* Map(size_t bytes, bool populate, const char* what) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
  if (p == MAP_FAILED) {
    throw NativeError(ErrorCode::kOom, std::string("mmap of ") + std::to_string(bytes) + " bytes for the " + what +
                                           " failed: " + std::strerror(errno));
  }
  return p;
}

class CpuDevice : public Device {
 public:
  CpuDevice() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("model name", 0) == 0) {
        auto colon = line.find(':');
        if (colon != std::string::npos) name_ = "cpu: " + line.substr(colon + 2);
        break;
      }
    }
  }
  bool cuda() const override { return false; }
  int ordinal() const override { return 0; }
  std::string name() const override { return name_; }
  void bindThread() override {}
  void checkContext() override {}
  // "Pinned" host memory: one mapping made once and reused by every move, like the pinned pool. Its pages are
  // faulted in on first use and then kept (not pre-faulted: a CPU worker's budget is a ceiling, and CI machines run
  // several workers with the default budgets), so RSS rises to the high-water mark once and stays flat.
  void* allocHost(size_t bytes) override { return Map(bytes, false, "host pool"); }
  void freeHost(void* p, size_t bytes) override { munmap(p, bytes); }
  void* allocDevice(size_t bytes) override { return Map(bytes, false, "cpu \"gpu\" pool"); }
  void freeDevice(void* p, size_t bytes) override { munmap(p, bytes); }
  std::unique_ptr<Stream> newStream() override { return std::make_unique<CpuStream>(); }
  std::unique_ptr<Event> newEvent(bool) override { return std::make_unique<CpuEvent>(); }
  double elapsedMs(Event& a, Event& b) override { return static_cast<CpuEvent&>(b).ms - static_cast<CpuEvent&>(a).ms; }
  void streamWaitEvent(void*, Event&) override {}

 private:
  std::string name_ = "cpu";
};

}  // namespace

std::shared_ptr<Device> MakeCpuDevice() { return std::make_shared<CpuDevice>(); }

}  // namespace swapserve::runtime
