// The decode-attention kernels of decode_attention.cu (its launchers stay there): the general one, the fast one for
// 2-byte caches with D 64/128, and the splits' combine. A header of its own so that the CPU emulation of the kernels
// (bench/simt/simt.h) compiles the same code with g++; nothing here may call the CUDA runtime.
#pragma once
#include <cfloat>
#include <type_traits>

#include "engine/cuda/common.cuh"
#include "engine/cuda/decode_merge.cuh"

namespace swapserve::cuda::attn {

// Attention of single query rows (decode; prefill fallback). Block = (split, kv head x head chunk, entry); its 4
// warps take 32 positions at a time: one lane scores one position for the (up to 8) query heads of the group,
// then the warp folds the 32 values into its running (max, sum, output) and the warps merge at the end.
constexpr int kDecWarps = 4;

// The cache row of position p of an entry: through its block table (paged cache), or p itself.
__device__ __forceinline__ const int32_t* EntryTable(const AttnEntries& e, int ent) {
  return e.table ? e.table + e.tableOff[ent] : nullptr;
}
__device__ __forceinline__ size_t KvRow(const int32_t* tb, int p) {
  return tb ? static_cast<size_t>(tb[p / kKvBlockTokens]) * kKvBlockTokens + p % kKvBlockTokens : static_cast<size_t>(p);
}
constexpr int kMaxG = 8;
constexpr int kMaxD = 256;

template <typename T, int DPL>
__global__ void __launch_bounds__(kDecWarps * 32)
DecodeAttnKernel(const T* qkv, int qStride, AttnEntries e, int H, int KVH, int D, int layer, int cap, float scale,
                 int splits, int chunk, float* partial, T* out) {
  PdlTrigger();
  PdlWait();
  __shared__ float sq[kMaxG][kMaxD];
  __shared__ float sm[kDecWarps][kMaxG], sl[kDecWarps][kMaxG];
  __shared__ float so[kDecWarps][kMaxG][kMaxD];
  const int ent = blockIdx.z, split = blockIdx.x;
  const int G = H / KVH, gChunks = (G + kMaxG - 1) / kMaxG;
  const int kvh = blockIdx.y / gChunks, g0 = (blockIdx.y % gChunks) * kMaxG;
  const int gn = min(kMaxG, G - g0);
  const int h0 = kvh * G + g0;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int qRow = e.qRow[ent], ctx = e.ctx[ent];
  const int s0 = split * chunk, s1 = min(ctx, s0 + chunk);
  LoadScaledQ(sq, qkv, qRow, qStride, h0, gn, D, scale);
  __syncthreads();
  const size_t plane = static_cast<size_t>(cap) * KVH * D;
  const T* kc = reinterpret_cast<const T*>(e.kvBase[ent]) + 2 * static_cast<size_t>(layer) * plane + kvh * D;
  const T* vc = kc + plane;
  const size_t rowStride = static_cast<size_t>(KVH) * D;
  const int32_t* tb = EntryTable(e, ent);

  float m[kMaxG], l[kMaxG], o[kMaxG][DPL];
  ResetSoftmax(m, l, o);
  for (int c0 = s0 + warp * 32; c0 < s1; c0 += kDecWarps * 32) {
    const int p = c0 + lane;
    const bool valid = p < s1;
    float s[kMaxG];
#pragma unroll
    for (int g = 0; g < kMaxG; ++g) s[g] = 0.f;
    if (valid) {
      const T* kr = kc + KvRow(tb, p) * rowStride;
      // Up to 8 16-byte loads in flight before the arithmetic (a dependent load+use per 8 elements would wait on
      // memory 16 times for D = 128); more would spill registers.
      constexpr int kKB = 8;
      for (int d0 = 0; d0 < D; d0 += 8 * kKB) {
        float kf[kKB][8];
#pragma unroll
        for (int u = 0; u < kKB; ++u)
          if (d0 + 8 * u < D) Load8<T>(kr + d0 + 8 * u, kf[u]);
#pragma unroll
        for (int u = 0; u < kKB; ++u) {
          if (d0 + 8 * u >= D) break;
#pragma unroll
          for (int g = 0; g < kMaxG; ++g)
            if (g < gn) {
#pragma unroll
              for (int j = 0; j < 8; ++j) s[g] += sq[g][d0 + 8 * u + j] * kf[u][j];
            }
        }
      }
    }
    float pr[kMaxG];
#pragma unroll
    for (int g = 0; g < kMaxG; ++g) {
      const float sv = valid ? s[g] : -INFINITY;
      const float mnew = fmaxf(m[g], WarpMax(sv));  // finite: position c0 is valid
      const float alpha = __expf(m[g] - mnew);
      pr[g] = valid ? __expf(sv - mnew) : 0.f;
      l[g] = l[g] * alpha + WarpSum(pr[g]);
      m[g] = mnew;
#pragma unroll
      for (int i = 0; i < DPL; ++i) o[g][i] *= alpha;
    }
    const int jn = min(32, s1 - c0);
    constexpr int kVB = DPL <= 2 ? 16 : 8;  // V rows in flight per batch (more would spill registers)
    for (int j0 = 0; j0 < jn; j0 += kVB) {
      // V rows of kVB positions loaded before use (positions past jn read as 0 and have p = 0).
      float vv[kVB][DPL];
#pragma unroll
      for (int u = 0; u < kVB; ++u) {
        const T* vr = vc + KvRow(tb, c0 + min(j0 + u, jn - 1)) * rowStride;
#pragma unroll
        for (int i = 0; i < DPL; ++i) vv[u][i] = (j0 + u < jn && lane + 32 * i < D) ? ToF(vr[lane + 32 * i]) : 0.f;
      }
#pragma unroll
      for (int u = 0; u < kVB; ++u) {
#pragma unroll
        for (int g = 0; g < kMaxG; ++g) {
          const float pj = __shfl_sync(0xffffffffu, pr[g], (j0 + u) & 31);
#pragma unroll
          for (int i = 0; i < DPL; ++i) o[g][i] += pj * vv[u][i];
        }
      }
    }
  }
  // Merge the warps.
  if (lane == 0) {
#pragma unroll
    for (int g = 0; g < kMaxG; ++g) { sm[warp][g] = m[g]; sl[warp][g] = l[g]; }
  }
#pragma unroll
  for (int g = 0; g < kMaxG; ++g)
#pragma unroll
    for (int i = 0; i < DPL; ++i)
      if (lane + 32 * i < D) so[warp][g][lane + 32 * i] = o[g][i];
  __syncthreads();
  MergeWarps(sm, sl, so, gn, D, h0, H, qRow, ent, split, splits, out, partial);
}

// The same for 2-byte caches with D in {64, 128} and up to GM query heads per KV head (every Llama-family shape
// served here), built for short contexts, where the old kernel's chain of dependent loads (q, then K in two
// batches, then V in four) made a layer's attention latency-bound at ~13 us. Block = (split, kv head, entry) with 8
// warps; a warp takes 32 positions at a time and issues all of their K and V loads at once: each lane holds its
// position's K row, and D/32 dimensions of all 32 V rows; the probabilities go through shared memory for P.V.
constexpr int kFastWarps = 8;
template <int DL> struct VecOf;  // DL 2-byte values
template <> struct VecOf<2> { using T = uint32_t; };
template <> struct VecOf<4> { using T = uint2; };

template <typename T, int D, int GM>
__global__ void __launch_bounds__(kFastWarps * 32)
DecodeAttnFastKernel(const T* qkv, int qStride, AttnEntries e, int H, int KVH, int layer, int cap, float scale,
                     int splits, int chunk, float* partial, T* out) {
  PdlTrigger();
  PdlWait();
  constexpr int DL = D / 32;  // V dimensions per lane
  constexpr int K16 = D / 8;  // 16-byte pieces of a K row
  using VT = typename VecOf<DL>::T;
  __shared__ __align__(16) float sq[GM][D];
  __shared__ __align__(16) float sp[kFastWarps][32][GM];
  __shared__ float sm[kFastWarps][GM], sl[kFastWarps][GM];
  __shared__ __align__(16) float so[kFastWarps][GM][D];
  const int ent = blockIdx.z, split = blockIdx.x, kvh = blockIdx.y;
  const int G = H / KVH, h0 = kvh * G;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int qRow = e.qRow[ent], ctx = e.ctx[ent];
  const int s0 = split * chunk, s1 = min(ctx, s0 + chunk);
  const size_t plane = static_cast<size_t>(cap) * KVH * D, rowStride = static_cast<size_t>(KVH) * D;
  const T* kc = reinterpret_cast<const T*>(e.kvBase[ent]) + 2 * static_cast<size_t>(layer) * plane + kvh * D;
  const T* vc = kc + plane;
  const int32_t* tb = EntryTable(e, ent);

  uint4 kr[K16];
  VT vr[32];
  int jn = 0;
  bool valid = false;
  auto load = [&](int c0) {  // K row of position c0 + lane; V dims of positions c0 .. c0 + 31 (zeros past s1)
    valid = c0 + lane < s1;
    jn = min(32, s1 - c0);
    // c0 is a multiple of 32, so the 32 positions are two whole blocks of the table: the rows of both, looked up once.
    static_assert(kKvBlockTokens == 16, "two table entries per 32 positions");
    const size_t r0 = tb ? static_cast<size_t>(tb[c0 / kKvBlockTokens]) * kKvBlockTokens : static_cast<size_t>(c0);
    const size_t r1 = tb ? (jn > kKvBlockTokens ? static_cast<size_t>(tb[c0 / kKvBlockTokens + 1]) * kKvBlockTokens : r0)
                         : static_cast<size_t>(c0) + kKvBlockTokens;
    auto row = [&](int j) { return (j < kKvBlockTokens ? r0 : r1 - kKvBlockTokens) + j; };
    const uint4* kp = reinterpret_cast<const uint4*>(kc + row(valid ? lane : 0) * rowStride);
#pragma unroll
    for (int i = 0; i < K16; ++i) kr[i] = valid ? kp[i] : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const VT* vp = reinterpret_cast<const VT*>(vc + row(min(j, jn - 1)) * rowStride) + lane;
      vr[j] = *vp;
    }
  };
  int c0 = s0 + warp * 32;
  if (c0 < s1) load(c0);  // in flight while q goes to shared memory
  LoadScaledQ(sq, qkv, qRow, qStride, h0, G, D, scale);
  __syncthreads();

  float m[GM], l[GM], o[GM][DL];
  ResetSoftmax(m, l, o);
  for (bool first = true; c0 < s1; c0 += kFastWarps * 32, first = false) {
    if (!first) load(c0);
    float s[GM];
#pragma unroll
    for (int g = 0; g < GM; ++g) s[g] = 0.f;
#pragma unroll
    for (int i = 0; i < K16; ++i) {
      float kf[8];
      const __nv_bfloat162* kb = reinterpret_cast<const __nv_bfloat162*>(&kr[i]);
      const __half2* kh = reinterpret_cast<const __half2*>(&kr[i]);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 v = std::is_same_v<T, __half> ? __half22float2(kh[j]) : __bfloat1622float2(kb[j]);
        kf[2 * j] = v.x;
        kf[2 * j + 1] = v.y;
      }
#pragma unroll
      for (int g = 0; g < GM; ++g) {
        if (g >= G) break;
        const float4 qa = *reinterpret_cast<const float4*>(&sq[g][8 * i]);
        const float4 qb = *reinterpret_cast<const float4*>(&sq[g][8 * i + 4]);
        s[g] += qa.x * kf[0] + qa.y * kf[1] + qa.z * kf[2] + qa.w * kf[3] + qb.x * kf[4] + qb.y * kf[5] +
                qb.z * kf[6] + qb.w * kf[7];
      }
    }
#pragma unroll
    for (int g = 0; g < GM; ++g) {
      if (g >= G) break;
      const float sv = valid ? s[g] : -INFINITY;
      const float mnew = fmaxf(m[g], WarpMax(sv));  // finite: position c0 is valid
      const float alpha = __expf(m[g] - mnew);
      const float p = valid ? __expf(sv - mnew) : 0.f;
      l[g] = l[g] * alpha + WarpSum(p);
      m[g] = mnew;
#pragma unroll
      for (int i = 0; i < DL; ++i) o[g][i] *= alpha;
      sp[warp][lane][g] = p;
    }
    __syncwarp();
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      if (j >= jn) break;
      float vf[DL];
      const __nv_bfloat162* vb = reinterpret_cast<const __nv_bfloat162*>(&vr[j]);
      const __half2* vh = reinterpret_cast<const __half2*>(&vr[j]);
#pragma unroll
      for (int i = 0; i < DL / 2; ++i) {
        const float2 v = std::is_same_v<T, __half> ? __half22float2(vh[i]) : __bfloat1622float2(vb[i]);
        vf[2 * i] = v.x;
        vf[2 * i + 1] = v.y;
      }
#pragma unroll
      for (int g = 0; g < GM; ++g) {
        if (g >= G) break;
        const float pj = sp[warp][j][g];
#pragma unroll
        for (int i = 0; i < DL; ++i) o[g][i] = fmaf(pj, vf[i], o[g][i]);
      }
    }
    __syncwarp();
  }
  // Merge the warps.
  if (lane == 0) {
#pragma unroll
    for (int g = 0; g < GM; ++g) { sm[warp][g] = m[g]; sl[warp][g] = l[g]; }
  }
#pragma unroll
  for (int g = 0; g < GM; ++g)
#pragma unroll
    for (int i = 0; i < DL; ++i) so[warp][g][lane * DL + i] = o[g][i];
  __syncthreads();
  MergeWarps(sm, sl, so, G, D, h0, H, qRow, ent, split, splits, out, partial);
}

template <typename T>
__global__ void DecodeCombineKernel(AttnEntries e, int H, int D, int splits, const float* partial, T* out) {
  PdlTrigger();
  PdlWait();
  const int ent = blockIdx.x, h = blockIdx.y;
  const float* base = partial + (static_cast<size_t>(ent) * H + h) * splits * (D + 2);
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, base[s * (D + 2)]);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float L = 0.f, O = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float ms = base[s * (D + 2)];
      if (ms == -INFINITY) continue;
      const float f = __expf(ms - M);
      L += base[s * (D + 2) + 1] * f;
      O += base[s * (D + 2) + 2 + d] * f;
    }
    out[static_cast<size_t>(e.qRow[ent]) * H * D + h * D + d] = FromF<T>(O / L);
  }
}

}  // namespace swapserve::cuda::attn
