// A CPU emulation of CUDA thread blocks, for checking the logic of the engine's kernels with g++ where no GPU is
// lent (bench/quant/fold_check.cc; test/quant/fold-emu.test.ts). Every CUDA thread of a block is a fiber (ucontext) on
// one OS thread; blocks run one after another. What the kernels may use:
//   threadIdx, blockIdx, blockDim, gridDim     set for the running fiber before it resumes;
//   __syncthreads()                           a barrier of the block's fibers;
//   __shfl_xor_sync(mask, v, laneMask),       all 32 lanes of the warp must call them (the full-mask rule the GPU has
//   __shfl_sync(mask, v, srcLane)             too): each lane posts v, the warp meets, each reads its source's;
//   __syncwarp()                              a barrier of the warp's 32 lanes;
//   __shared__ arrays                         `static` here, so one copy is shared by the block's fibers (blocks run in
//                                             turn, and a kernel writes its shared memory before reading it);
//   SS_DYNAMIC_SHARED(T, name)                the launch's dynamic shared memory (common.cuh);
//   __ldg, __ldcs, atomicAdd (on floats),      the plain loads and maths.
//   rsqrtf, __expf, __float2int_rn, __dp4a, min
// What it is not: a model of timing, memory ordering across blocks, or of divergence beyond the barriers above (a warp
// whose lanes reach different barriers deadlocks here, where the GPU would hang or misbehave too). Include it before
// any engine header; compile with -Wno-attributes -Wno-unknown-pragmas (the CUDA headers mark device code with
// attributes g++ ignores, and the kernels ask nvcc to unroll).
#pragma once
#define SS_SIMT_EMULATION 1

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

// The built-in variables, set by the scheduler for the fiber it resumes.
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace simt {

struct Fiber {
  ucontext_t ctx;
  char* stack = nullptr;  // one of the launch's stacks, reused block after block
  uint3 tid;
  bool done = false;
};

// A barrier among `count` fibers: the last to arrive opens it (the generation moves on) and the others, yielding
// until then, go on.
struct Barrier {
  int count = 0, arrived = 0;
  unsigned generation = 0;
};

struct Block {
  std::vector<Fiber> fibers;
  ucontext_t sched;
  int current = -1;
  Barrier block;
  std::vector<Barrier> warps;
  std::vector<float> lanes;  // one posted value per thread (shuffles), as 32-bit words
  std::vector<unsigned char> dynamicShared;
  const std::function<void()>* body = nullptr;
  unsigned long progress = 0;  // arrivals and finished fibers: a scheduling pass without any is a deadlock
};

inline Block*& Current() {
  static Block* b = nullptr;
  return b;
}

// Back to the scheduler; it resumes the next fiber that has not finished.
inline void Yield() {
  Block& b = *Current();
  swapcontext(&b.fibers[b.current].ctx, &b.sched);
}

inline void Wait(Barrier& bar) {
  ++Current()->progress;
  const unsigned gen = bar.generation;
  if (++bar.arrived == bar.count) {
    bar.arrived = 0;
    ++bar.generation;
    return;
  }
  while (bar.generation == gen) Yield();
}

inline void SyncThreads() { Wait(Current()->block); }

// Lane `src(lane)`'s v, for every lane of the warp.
template <typename T, typename Src>
T Shfl(T v, Src src) {
  static_assert(sizeof(T) == 4, "32-bit shuffles only");
  Block& b = *Current();
  const int t = b.current, warp = t >> 5, lane = t & 31;
  std::memcpy(&b.lanes[t], &v, 4);
  Wait(b.warps[warp]);
  T r;
  std::memcpy(&r, &b.lanes[(warp << 5) | (src(lane) & 31)], 4);
  Wait(b.warps[warp]);  // nobody posts again before every lane has read
  return r;
}

inline void SyncWarp() {
  Block& b = *Current();
  Wait(b.warps[b.current >> 5]);
}

template <typename T>
T* DynamicShared() {
  return reinterpret_cast<T*>(Current()->dynamicShared.data());
}

inline void Entry() {
  Block& b = *Current();
  (*b.body)();
  b.fibers[b.current].done = true;
  ++b.progress;
  // Returning ends the fiber: uc_link takes it back to the scheduler.
}

// Fiber t of a block, to start at Entry on its own stack and return to `link` (a function of its own: getcontext
// returns twice as far as the compiler knows, which must not touch the launch loop's variables).
[[gnu::noinline]] inline void MakeFiber(Fiber& f, unsigned t, char* stack, size_t stackBytes, ucontext_t* link) {
  f.tid = make_uint3(t, 0, 0);
  f.stack = stack;
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = stack;
  f.ctx.uc_stack.ss_size = stackBytes;
  f.ctx.uc_link = link;
  makecontext(&f.ctx, Entry, 0);
}

// Runs body() as every thread of every block of the grid (blocks in order, x fastest; threads in x only). The body
// is the kernel call with its arguments. Each block's dynamic shared memory starts filled with 0xff bytes (NaN as
// floats, -1 as integers): the GPU gives whatever was there before, so a kernel that reads what it did not write
// shows it in its results.
inline void Launch(dim3 grid, unsigned block, size_t smemBytes, const std::function<void()>& body,
                   size_t stackBytes = 256 << 10) {
  if (block == 0 || block % 32 != 0) {
    std::fprintf(stderr, "simt: blocks must be whole warps (got %u threads)\n", block);
    std::exit(2);
  }
  gridDim = grid;
  blockDim = dim3(block, 1, 1);
  const unsigned blocks = grid.x * grid.y * grid.z;
  std::vector<std::unique_ptr<char[]>> stacks(block);
  for (auto& st : stacks) st.reset(new char[stackBytes]);
  for (unsigned bx = 0; bx < blocks; ++bx) {
    Block b;
    b.body = &body;
    b.block.count = static_cast<int>(block);
    b.warps.assign(block / 32, Barrier{32, 0, 0});
    b.lanes.assign(block, 0.f);
    b.dynamicShared.assign(smemBytes + 16, 0xff);
    b.fibers.resize(block);
    Current() = &b;
    blockIdx = make_uint3(bx % grid.x, bx / grid.x % grid.y, bx / (grid.x * grid.y));
    for (unsigned t = 0; t < block; ++t) MakeFiber(b.fibers[t], t, stacks[t].get(), stackBytes, &b.sched);
    // Round robin until every fiber has finished; a pass in which none of them moves means a deadlock.
    for (unsigned left = block; left > 0;) {
      left = 0;
      const unsigned long before = b.progress;
      for (unsigned t = 0; t < block; ++t) {
        if (b.fibers[t].done) continue;
        b.current = static_cast<int>(t);
        threadIdx = b.fibers[t].tid;
        swapcontext(&b.sched, &b.fibers[t].ctx);
        if (!b.fibers[t].done) ++left;
      }
      if (left > 0 && b.progress == before) {
        std::fprintf(stderr, "simt: block %u: %u threads wait at barriers that can never open (deadlock)\n", bx, left);
        std::exit(2);
      }
    }
    Current() = nullptr;
  }
}

}  // namespace simt

// The CUDA names the kernels use, on the host.
#undef __shared__
#define __shared__ static
// Not always_inline: a kernel may name a device function only declared for a type it never uses in that branch
// (nvcc drops the branch; g++ would refuse to inline a body it does not have).
#undef __forceinline__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __syncthreads() ::simt::SyncThreads()
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int laneMask) {
  return ::simt::Shfl(v, [laneMask](int lane) { return lane ^ laneMask; });
}
template <typename T>
inline T __shfl_sync(unsigned, T v, int srcLane) {
  return ::simt::Shfl(v, [srcLane](int) { return srcLane; });
}
#define __syncwarp(...) ::simt::SyncWarp()
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
template <typename T>
inline T __ldcs(const T* p) {
  return *p;
}
// One fiber runs at a time and none yields inside an addition: a plain add is atomic here.
inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline int __float2int_rn(float v) { return static_cast<int>(std::nearbyint(v)); }  // ties to even, as the GPU
inline int __dp4a(int a, int b, int c) {  // c + the dot product of the four signed bytes of a and of b
  for (int i = 0; i < 4; ++i)
    c += static_cast<int8_t>(static_cast<uint32_t>(a) >> (8 * i)) * static_cast<int8_t>(static_cast<uint32_t>(b) >> (8 * i));
  return c;
}
inline float __expf(float x) { return std::exp(x); }
using std::max;
using std::min;
