// Stress check of runtime::Completions' hand-off (native/src/runtime/read_pool.cc). The move thread that waits for
// its reads owns the Completions (a stack object in moves.cc and disk_cache.cc) and destroys it as soon as its wait
// returns, while the reader thread that finished the last job may still be inside finish(): whatever finish() does
// after its unlock, it may do to a destroyed object. (In CI that was a hang: a condition variable broadcast on
// memory the owner's next call had reused.)
// Each round here constructs a Completions in storage of its own (never reused, so a late touch finds the same
// bytes), a reader thread finishes its 1-3 jobs, the owner comes to its wait (waitAll, or drain until empty as doLoad
// does) at a varied moment, then destroys it and marks its bytes dead. The executable defines pthread_cond_broadcast
// (which std::condition_variable::notify_all calls; the real one is found with dlsym) and counts broadcasts on dead
// bytes; and it wraps pthread_mutex_unlock so that the reader sleeps a little after each unlock, which makes the
// owner find the last job finished and destroy the object while finish() still has its broadcast to do.
// Prints "completions race: OK (N rounds)" and exits 0 when no broadcast touched a destroyed Completions.
//   g++ -std=c++17 -O1 -g -pthread -rdynamic -Wl,--wrap=pthread_mutex_unlock -Inative/src
//       bench/runtime/completions_race.cc native/src/runtime/read_pool.cc native/src/common/errors.cc -ldl -o /tmp/cr
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

#include "runtime/read_pool.h"

namespace {

thread_local bool tReader = false;
std::atomic<int> lateBroadcasts{0};

// Storage of every round's Completions, and whether that object is destroyed (dead bytes stay dead: never reused).
constexpr int kMaxRounds = 100000;
struct Slot {
  alignas(swapserve::runtime::Completions) unsigned char bytes[sizeof(swapserve::runtime::Completions)];
  std::atomic<bool> dead{false};
};
Slot* slots = nullptr;
std::atomic<int> used{0};

bool IsDead(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  const int n = used.load();
  for (int i = 0; i < n; ++i)
    if (b >= slots[i].bytes && b < slots[i].bytes + sizeof(slots[i].bytes)) return slots[i].dead.load();
  return false;
}

}  // namespace

extern "C" int __real_pthread_mutex_unlock(pthread_mutex_t* m);
extern "C" int __wrap_pthread_mutex_unlock(pthread_mutex_t* m) {
  const int r = __real_pthread_mutex_unlock(m);
  if (tReader) usleep(50);
  return r;
}

extern "C" int pthread_cond_broadcast(pthread_cond_t* c) {
  using Fn = int (*)(pthread_cond_t*);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "pthread_cond_broadcast"));
  if (slots && IsDead(c)) ++lateBroadcasts;
  return real(c);
}

int main(int argc, char** argv) {
  using swapserve::runtime::Completions;
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 1000;
  if (rounds < 1 || rounds > kMaxRounds) return 2;
  slots = new Slot[rounds];
  std::vector<std::thread> readers;
  for (int r = 0; r < rounds; ++r) {
    const size_t jobs = 1 + r % 3;
    Completions* c = new (slots[r].bytes) Completions(jobs);
    used.store(r + 1);
    for (size_t i = 0; i < jobs; ++i) c->submitted();
    // The reader thread outlives the owner's wait, as a ReadPool thread does (joined only at the end).
    readers.emplace_back([c, jobs] {
      tReader = true;
      for (size_t i = 0; i < jobs; ++i) c->finish(i, nullptr);
    });
    // The owner comes to its wait at varied moments: before the reader's finish(), while it is inside it, or after.
    std::this_thread::sleep_for(std::chrono::microseconds(r % 7 * 25));
    if (r % 2) {
      c->waitAll();
    } else {
      while (!c->drain().empty()) {
      }
    }
    c->rethrow();
    c->~Completions();
    slots[r].dead.store(true);
  }
  for (auto& t : readers) t.join();
  const int late = lateBroadcasts.load();
  if (late) {
    std::printf("completions race: %d broadcasts on a destroyed Completions in %d rounds\n", late, rounds);
    return 1;
  }
  std::printf("completions race: OK (%d rounds)\n", rounds);
  return 0;
}
