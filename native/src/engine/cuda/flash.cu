// Flash-style causal prefill attention on tensor cores (mma.sync m16n8k16, fp32 accumulate), FlashAttention-2's
// schedule: a block owns 64 query rows of one head (16 per warp, Q fragments kept in registers), streams 64-key
// tiles of K and V through shared memory (cp.async, two stages), keeps the softmax online in registers, and never
// writes a score matrix. Keys come from the sequence's KV cache, so a chunk attends to its whole prefix. GQA:
// head h reads KV head h / (H / KVH).
#include <cfloat>

#include "common/cuda_check.h"
#include "engine/cuda/common.cuh"

namespace swapserve::cuda {

namespace {

constexpr int kBM = 64;  // query rows per block
constexpr int kBN = 64;  // keys per tile
constexpr int kThreads = 128;

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(SmemAddr(smem)), "l"(gmem));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void CpAsyncWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void Ldsm4(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(p)));
}
__device__ __forceinline__ void Ldsm4T(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(p)));
}

template <typename T> struct Mma;
template <> struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void Run(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
};
template <> struct Mma<__half> {
  static __device__ __forceinline__ void Run(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
};

// Shared memory: Q (64, D+8), K (2, 64, D+8), V (2, 64, D+8); rows padded by 16 bytes so that ldmatrix's eight
// row addresses fall in distinct banks.
template <int D> constexpr int SmemBytes() { return (kBM + 4 * kBN) * (D + 8) * 2; }

template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
FlashPrefillKernel(const T* __restrict__ qkv, int qStride, int row0, int n, int pos0, const T* __restrict__ kc,
                   const T* __restrict__ vc, int kvStride, int G, float scaleLog2, T* __restrict__ out, int outStride,
                   const int32_t* __restrict__ table) {
  constexpr int P = D + 8;
  constexpr int CH = D / 8;  // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  T* sK = sQ + kBM * P;
  T* sV = sK + 2 * kBN * P;

  const int h = blockIdx.y, kvh = h / G;
  const int qb = gridDim.x - 1 - blockIdx.x;  // the longest (last) query blocks start first
  const int q0 = qb * kBM;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int lastRow = min(q0 + kBM, n) - 1;
  const int maxKey = pos0 + lastRow;  // inclusive: the last key any row of this block sees
  const int nTiles = maxKey / kBN + 1;
  const T* kb = kc + kvh * D;
  const T* vb = vc + kvh * D;

  for (int i = tid; i < kBM * CH; i += kThreads) {
    const int r = i / CH, c = i % CH;
    const int rr = min(q0 + r, n - 1);  // rows past n repeat the last row; never written out
    CpAsync16(sQ + r * P + c * 8, qkv + static_cast<size_t>(row0 + rr) * qStride + h * D + c * 8);
  }
  auto loadKV = [&](int tile, int buf) {
    T* dk = sK + buf * kBN * P;
    T* dv = sV + buf * kBN * P;
    for (int i = tid; i < kBN * CH; i += kThreads) {
      const int r = i / CH, c = i % CH;
      const int key = min(tile * kBN + r, maxKey);  // past the prefix: repeat the last key (masked anyway)
      const size_t row = table ? static_cast<size_t>(table[key / kKvBlockTokens]) * kKvBlockTokens + key % kKvBlockTokens
                               : static_cast<size_t>(key);
      CpAsync16(dk + r * P + c * 8, kb + row * kvStride + c * 8);
      CpAsync16(dv + r * P + c * 8, vb + row * kvStride + c * 8);
    }
  };
  loadKV(0, 0);
  CpAsyncCommit();

  const int g = lane >> 2, t = lane & 3;
  const int rA = q0 + warp * 16 + g, rB = rA + 8;
  const int posA = pos0 + min(rA, n - 1), posB = pos0 + min(rB, n - 1);
  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f;
  uint32_t qf[D / 16][4];

  for (int kt = 0; kt < nTiles; ++kt) {
    if (kt + 1 < nTiles) {
      loadKV(kt + 1, (kt + 1) & 1);
      CpAsyncCommit();
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    if (kt == 0) {
#pragma unroll
      for (int ks = 0; ks < D / 16; ++ks) Ldsm4(qf[ks], sQ + (warp * 16 + (lane & 15)) * P + ks * 16 + (lane >> 4) * 8);
    }
    const T* cK = sK + (kt & 1) * kBN * P;
    const T* cV = sV + (kt & 1) * kBN * P;

    // S = Q K^T for this warp's 16 rows and the tile's 64 keys.
    float s[kBN / 8][4];
#pragma unroll
    for (int i = 0; i < kBN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
      for (int np = 0; np < kBN / 16; ++np) {
        uint32_t b[4];
        Ldsm4(b, cK + (np * 16 + (lane >> 4) * 8 + (lane & 7)) * P + ks * 16 + ((lane >> 3) & 1) * 8);
        Mma<T>::Run(s[2 * np], qf[ks], b[0], b[1]);
        Mma<T>::Run(s[2 * np + 1], qf[ks], b[2], b[3]);
      }
    }
    // Causal mask and online softmax, in log2 units.
    const int key0 = kt * kBN;
    float nmA = mA, nmB = mB;
#pragma unroll
    for (int nt = 0; nt < kBN / 8; ++nt) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int key = key0 + nt * 8 + 2 * t + j;
        s[nt][j] = key <= posA ? s[nt][j] * scaleLog2 : -INFINITY;
        s[nt][2 + j] = key <= posB ? s[nt][2 + j] * scaleLog2 : -INFINITY;
        nmA = fmaxf(nmA, s[nt][j]);
        nmB = fmaxf(nmB, s[nt][2 + j]);
      }
    }
    nmA = fmaxf(nmA, __shfl_xor_sync(0xffffffffu, nmA, 1));
    nmA = fmaxf(nmA, __shfl_xor_sync(0xffffffffu, nmA, 2));
    nmB = fmaxf(nmB, __shfl_xor_sync(0xffffffffu, nmB, 1));
    nmB = fmaxf(nmB, __shfl_xor_sync(0xffffffffu, nmB, 2));
    // Key 0 is visible to every row, so after tile 0 the running maxima are finite.
    const float aA = exp2f(mA - nmA), aB = exp2f(mB - nmB);
    mA = nmA;
    mB = nmB;
    float sumA = 0.f, sumB = 0.f;
#pragma unroll
    for (int nt = 0; nt < kBN / 8; ++nt) {
      s[nt][0] = exp2f(s[nt][0] - mA);
      s[nt][1] = exp2f(s[nt][1] - mA);
      s[nt][2] = exp2f(s[nt][2] - mB);
      s[nt][3] = exp2f(s[nt][3] - mB);
      sumA += s[nt][0] + s[nt][1];
      sumB += s[nt][2] + s[nt][3];
    }
    lA = lA * aA + sumA;
    lB = lB * aB + sumB;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      o[i][0] *= aA;
      o[i][1] *= aA;
      o[i][2] *= aB;
      o[i][3] *= aB;
    }
    // O += P V: the S accumulators of key blocks 2ks, 2ks+1 are exactly the A fragment of key step ks.
#pragma unroll
    for (int ks = 0; ks < kBN / 16; ++ks) {
      uint32_t pa[4];
      pa[0] = Mma<T>::Pack(s[2 * ks][0], s[2 * ks][1]);
      pa[1] = Mma<T>::Pack(s[2 * ks][2], s[2 * ks][3]);
      pa[2] = Mma<T>::Pack(s[2 * ks + 1][0], s[2 * ks + 1][1]);
      pa[3] = Mma<T>::Pack(s[2 * ks + 1][2], s[2 * ks + 1][3]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        Ldsm4T(b, cV + (ks * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * P + dp * 16 + (lane >> 4) * 8);
        Mma<T>::Run(o[2 * dp], pa, b[0], b[1]);
        Mma<T>::Run(o[2 * dp + 1], pa, b[2], b[3]);
      }
    }
    __syncthreads();  // the next iteration's loads overwrite this buffer
  }
  lA += __shfl_xor_sync(0xffffffffu, lA, 1);
  lA += __shfl_xor_sync(0xffffffffu, lA, 2);
  lB += __shfl_xor_sync(0xffffffffu, lB, 1);
  lB += __shfl_xor_sync(0xffffffffu, lB, 2);
  const float iA = 1.f / lA, iB = 1.f / lB;
  if (rA < n) {
    T* dst = out + static_cast<size_t>(row0 + rA) * outStride + h * D + 2 * t;
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      *reinterpret_cast<uint32_t*>(dst + i * 8) = Mma<T>::Pack(o[i][0] * iA, o[i][1] * iA);
  }
  if (rB < n) {
    T* dst = out + static_cast<size_t>(row0 + rB) * outStride + h * D + 2 * t;
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      *reinterpret_cast<uint32_t*>(dst + i * 8) = Mma<T>::Pack(o[i][2] * iB, o[i][3] * iB);
  }
}

template <typename T, int D>
void Launch(const void* qkv, int qStride, int row0, int n, int pos0, const void* kvBase, int H, int KVH, int layer,
            int cap, float scale, void* out, int outStride, cudaStream_t s, const int32_t* table) {
  constexpr int smem = SmemBytes<D>();
  // Once per instantiation (thread-safe static initialisation; a throw leaves it to be retried).
  static const bool configured = [] {
    SS_CUDA_CHECK(cudaFuncSetAttribute(FlashPrefillKernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return true;
  }();
  (void)configured;
  const size_t plane = static_cast<size_t>(cap) * KVH * D;
  const T* kc = static_cast<const T*>(kvBase) + 2 * static_cast<size_t>(layer) * plane;
  const dim3 grid((n + kBM - 1) / kBM, H);
  FlashPrefillKernel<T, D><<<grid, kThreads, smem, s>>>(static_cast<const T*>(qkv), qStride, row0, n, pos0, kc,
                                                        kc + plane, KVH * D, H / KVH, scale * 1.4426950408889634f,
                                                        static_cast<T*>(out), outStride, table);
  SS_CUDA_CHECK_LAUNCH("flash prefill");
}

}  // namespace

bool FlashSupported(ET t, int D) { return (t == ET::kBF16 || t == ET::kF16) && (D == 64 || D == 128); }

void LaunchFlashPrefill(const void* qkv, int qStride, ET t, int row0, int n, int pos0, const void* kvBase, int H,
                        int KVH, int D, int layer, int cap, float scale, void* out, int outStride, cudaStream_t s,
                        const int32_t* table) {
  SS_REQUIRE(FlashSupported(t, D), "flash prefill: needs fp16/bf16 and head_dim 64 or 128");
  SS_REQUIRE(n > 0 && pos0 >= 0 && pos0 + n <= cap && H % KVH == 0, "flash prefill: bad shape");
  SS_REQUIRE(qStride % 8 == 0 && outStride % 8 == 0, "flash prefill: rows must be 16-byte aligned");
  if (t == ET::kBF16) {
    if (D == 64) Launch<__nv_bfloat16, 64>(qkv, qStride, row0, n, pos0, kvBase, H, KVH, layer, cap, scale, out, outStride, s, table);
    else Launch<__nv_bfloat16, 128>(qkv, qStride, row0, n, pos0, kvBase, H, KVH, layer, cap, scale, out, outStride, s, table);
  } else {
    if (D == 64) Launch<__half, 64>(qkv, qStride, row0, n, pos0, kvBase, H, KVH, layer, cap, scale, out, outStride, s, table);
    else Launch<__half, 128>(qkv, qStride, row0, n, pos0, kvBase, H, KVH, layer, cap, scale, out, outStride, s, table);
  }
}

}  // namespace swapserve::cuda
