// Device helpers shared by the engine's kernels: element types, conversions, warp reductions, dispatch.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "common/cuda_check.h"
#include "engine/cuda/kernels.h"

// A kernel's dynamic shared memory as an array of T. The CPU emulation of the kernels (bench/simt/simt.h, which
// defines SS_SIMT_EMULATION) gives each emulated block its own.
#if defined(SS_SIMT_EMULATION)
#define SS_DYNAMIC_SHARED(T, name) T* name = ::simt::DynamicShared<T>()
#else
#define SS_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

namespace swapserve::cuda {

template <typename T> __device__ __forceinline__ float ToF(T v);
template <> __device__ __forceinline__ float ToF<float>(float v) { return v; }
template <> __device__ __forceinline__ float ToF<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float ToF<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T FromF(float v);
template <> __device__ __forceinline__ float FromF<float>(float v) { return v; }
template <> __device__ __forceinline__ __half FromF<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// v rounded to T and back (where transformers rounds a value to the activation type).
template <typename T> __device__ __forceinline__ float Rnd(float v) { return ToF(FromF<T>(v)); }

// silu(gate) * up as transformers' LlamaMLP computes it in T: silu rounded to T first when hfRound.
template <typename T>
__device__ __forceinline__ float SwiGlu1(float gv, float uv, bool hfRound) {
  const float a = gv / (1.f + __expf(-gv));
  return (hfRound ? Rnd<T>(a) : a) * uv;
}

// RoPE of the pair (xa, xb) by the angle whose cosine and sine are (cs, sn): with hfRound as transformers does it in
// T (q * cos.to(T) + rotate_half(q) * sin.to(T), each product rounded), else in fp32.
template <typename T>
__device__ __forceinline__ void RopeRotate(float xa, float xb, float cs, float sn, bool hfRound, float& ya, float& yb) {
  if (hfRound) {
    cs = Rnd<T>(cs);
    sn = Rnd<T>(sn);
    ya = Rnd<T>(xa * cs) + Rnd<T>(-xb * sn);
    yb = Rnd<T>(xb * cs) + Rnd<T>(xa * sn);
  } else {
    ya = xa * cs - xb * sn;
    yb = xb * cs + xa * sn;
  }
}

// Element i of a weight vector whose dtype is only known at run time (norms, biases, embeddings).
__device__ __forceinline__ float LoadEt(const void* p, ET t, size_t i) {
  switch (t) {
    case ET::kF32: return static_cast<const float*>(p)[i];
    case ET::kF16: return __half2float(static_cast<const __half*>(p)[i]);
    default: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  }
}

// 8 consecutive elements (16-byte aligned for 2-byte types, 32-byte for fp32) as floats.
template <typename T> __device__ __forceinline__ void Load8(const T* p, float* f);
template <> __device__ __forceinline__ void Load8<float>(const float* p, float* f) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}
template <> __device__ __forceinline__ void Load8<__half>(const __half* p, float* f) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) { const float2 v = __half22float2(h[i]); f[2 * i] = v.x; f[2 * i + 1] = v.y; }
}
template <> __device__ __forceinline__ void Load8<__nv_bfloat16>(const __nv_bfloat16* p, float* f) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) { const float2 v = __bfloat1622float2(h[i]); f[2 * i] = v.x; f[2 * i + 1] = v.y; }
}

// A GEMV output element: y = v, or y = v + beta * y (beta 1: the product accumulates into the residual stream).
template <typename TY>
__device__ __forceinline__ void StoreY(TY* y, float v, float beta) { *y = FromF<TY>(beta != 0.f ? v + beta * ToF(*y) : v); }

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum of v over the block (blockDim.x a multiple of 32, at most 1024), with `red` the block's 32-float shared
// scratch. BlockSumWarp0: the total in every lane of warp 0 (other threads get 0). BlockSum: the total in every
// thread (one more barrier).
__device__ __forceinline__ float BlockSumWarp0(float v, float* red) {
  v = WarpSum(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float t = 0.f;
  if (threadIdx.x < 32) t = WarpSum(threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.f);
  return t;
}
__device__ __forceinline__ float BlockSum(float v, float* red) {
  const float t = BlockSumWarp0(v, red);  // warp 0 has read red[] before its shuffles end: red[0] is free
  if (threadIdx.x == 0) red[0] = t;
  __syncthreads();
  return red[0];
}

// Programmatic dependent launch (Hopper): a kernel launched with it may start while the previous kernel of the
// stream drains. Every kernel launched through LaunchK calls PdlWait() in all its threads before it reads anything
// an earlier kernel wrote (and before exiting), and PdlTrigger() early so that its own successor can start; a
// grid thus completes only after its predecessor did, and visibility stays transitive. Without the launch
// attribute both instructions are no-ops.
__device__ __forceinline__ void PdlTrigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::);
#endif
}
__device__ __forceinline__ void PdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// The largest magnitude of a block of values spread over LANES consecutive lanes (N in each), and `bad`: NaN when any
// of them is NaN or inf (fmaxf would drop a NaN), else 0; both in every lane of the block. The quantized GEMVs' X
// prologues scale their activation blocks by it.
template <int LANES, int N>
__device__ __forceinline__ void BlockAmax(const float (&f)[N], float& amax, float& bad) {
  amax = 0.f;
  bad = 0.f;
#pragma unroll
  for (int j = 0; j < N; ++j) {
    amax = fmaxf(amax, fabsf(f[j]));
    bad = fmaf(f[j], 0.f, bad);
  }
#pragma unroll
  for (int o = 1; o < LANES; o <<= 1) {
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    bad += __shfl_xor_sync(0xffffffffu, bad, o);
  }
}

// The start of a warp's first rows of weights into L2 (at most 8 KB of `span` bytes): issued before the dependency
// wait, since the weights never come from the previous kernel, so memory works while that kernel ends (PDL) and while
// the block quantizes X (the quantized GEMVs).
__device__ __forceinline__ void PrefetchSpanL2(const uint8_t* p, size_t span, int lane) {
#if defined(__CUDA_ARCH__)
  for (size_t o = 128 * static_cast<size_t>(lane); o < span && o < 8192; o += 32 * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p + o));
#else
  (void)p, (void)span, (void)lane;
#endif
}

// Eight 2-byte values (one 16-byte load) as floats.
template <typename T> __device__ __forceinline__ void Unpack8(const uint4& u, float* f);
template <> __device__ __forceinline__ void Unpack8<__nv_bfloat16>(const uint4& u, float* f) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) { const float2 v = __bfloat1622float2(h[i]); f[2 * i] = v.x; f[2 * i + 1] = v.y; }
}
template <> __device__ __forceinline__ void Unpack8<__half>(const uint4& u, float* f) {
  const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) { const float2 v = __half22float2(h[i]); f[2 * i] = v.x; f[2 * i + 1] = v.y; }
}

// Weight streaming for the decode products: a warp reads R rows of 16-byte chunks, lane l taking chunks c0 + l,
// c0 + l + 32, ... < K8, with U chunks per row in flight while the previous U are consumed (evict-first loads: the
// weights are read once per step). RequestRows loads the first U into `nxt` (before a kernel's dependency wait:
// weights never depend on earlier kernels); StreamRows then calls use(chunks, c) for every chunk c, in order.
template <int U, int R>
__device__ __forceinline__ void RequestRows(const uint4* const (&w)[R], int c0, int K8, uint4 (&nxt)[U][R]) {
  if (c0 + 32 * (U - 1) < K8) {
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r) nxt[u][r] = __ldcs(w[r] + c0 + 32 * u);
  }
}
template <int U, int R, typename Use>
__device__ __forceinline__ void StreamRows(const uint4* const (&w)[R], int c0, int K8, uint4 (&nxt)[U][R], Use&& use) {
  int c = c0;
  for (; c + 32 * (U - 1) < K8; c += 32 * U) {
    uint4 cur[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r) cur[u][r] = nxt[u][r];
    RequestRows<U, R>(w, c + 32 * U, K8, nxt);
#pragma unroll
    for (int u = 0; u < U; ++u) use(cur[u], c + 32 * u);
  }
  for (; c < K8; c += 32) {
    uint4 wv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wv[r] = __ldcs(w[r] + c);
    use(wv, c);
  }
}

// Whether LaunchK asks for programmatic dependent launch on this thread (the backend sets it per pass).
bool& PdlFlag();

template <typename... KArgs, typename... Args>
void LaunchK(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = PdlFlag() ? 1 : 0;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
  if (e != cudaSuccess) ThrowCuda(e, "cudaLaunchKernelEx", __FILE__, __LINE__);
}

}  // namespace swapserve::cuda

// Runs the statement with `T` bound to the C++ type of an ET value.
#define SS_DISPATCH_ET(et, T, ...)                                   \
  switch (et) {                                                      \
    case ::swapserve::cuda::ET::kF32: { using T = float; __VA_ARGS__; break; }         \
    case ::swapserve::cuda::ET::kF16: { using T = __half; __VA_ARGS__; break; }        \
    case ::swapserve::cuda::ET::kBF16: { using T = __nv_bfloat16; __VA_ARGS__; break; } \
  }
