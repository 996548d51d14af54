// The start and the end of a decode-attention block, shared by the decode-attention kernels (decode_attention.cu, and
// the v2 kernel for many sequences in decode_attention_v2.cu).
#pragma once
#include <cmath>
#include <cstddef>

#include "engine/cuda/common.cuh"

namespace swapserve::cuda {

// The block's G query heads (h0 ..) of row qRow into shared memory, scaled (the caller synchronises after).
template <typename T, int GM, int DM>
__device__ __forceinline__ void LoadScaledQ(float (&sq)[GM][DM], const T* qkv, int qRow, int qStride, int h0, int G, int D,
                                            float scale) {
  for (int i = threadIdx.x; i < G * D; i += blockDim.x)
    sq[i / D][i % D] = ToF(qkv[static_cast<size_t>(qRow) * qStride + h0 * D + i]) * scale;
}

// An empty online softmax per query head: running max -inf, sum 0, output 0.
template <int GM, int DL>
__device__ __forceinline__ void ResetSoftmax(float (&m)[GM], float (&l)[GM], float (&o)[GM][DL]) {
#pragma unroll
  for (int g = 0; g < GM; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < DL; ++i) o[g][i] = 0.f;
  }
}

// The end of a decode-attention block: each of its NW warps holds a softmax partial (running max, sum, weighted
// values) per query head g < gn (heads h0 + g); they merge into the head's output row (one split) or into the split's
// record (max, sum, values) that DecodeCombineKernel reduces. The caller synchronises the block first.
template <typename T, int NW, int GM, int DM>
__device__ __forceinline__ void MergeWarps(const float (&sm)[NW][GM], const float (&sl)[NW][GM], const float (&so)[NW][GM][DM],
                                           int gn, int D, int h0, int H, int qRow, int ent, int split, int splits, T* out,
                                           float* partial) {
  for (int idx = threadIdx.x; idx < gn * D; idx += blockDim.x) {
    const int g = idx / D, d = idx % D;
    float M = -INFINITY;
    for (int w = 0; w < NW; ++w) M = fmaxf(M, sm[w][g]);
    float L = 0.f, O = 0.f;
    if (M != -INFINITY) {
      for (int w = 0; w < NW; ++w) {
        if (sm[w][g] == -INFINITY) continue;
        const float f = __expf(sm[w][g] - M);
        L += sl[w][g] * f;
        O += so[w][g][d] * f;
      }
    }
    const int h = h0 + g;
    if (splits == 1) {
      out[static_cast<size_t>(qRow) * H * D + h * D + d] = FromF<T>(O / L);
    } else {
      float* pp = partial + ((static_cast<size_t>(ent) * H + h) * splits + split) * (D + 2);
      if (d == 0) { pp[0] = M; pp[1] = L; }
      pp[2 + d] = O;
    }
  }
}

}  // namespace swapserve::cuda
