// How the GPU kernels split a GGUF block among lanes (engine/cuda/quant_gemv.cu), written once for host and device:
// lane `s` of the kLanes lanes that share a block dequantizes 8 of its values, v[i] = value Idx(s, i), in runs of
// kRun consecutive indices (so the matching activations are one vector load). Compiled by g++ too, so the CPU
// addon's test hook (engineOps.toF32Lanes) checks every lane split against the scalar reference without a GPU.
// Arithmetic as engine/cpu/quant.cc (ggml's reference dequantizers): the same values bit for bit up to FMA contraction.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define SS_QHD __host__ __device__ __forceinline__
#if defined(__CUDA_ARCH__)
#define SS_QUNROLL _Pragma("unroll")
#else
#define SS_QUNROLL  // nvcc's host pass: gcc does not know the pragma (-Wunknown-pragmas)
#endif
#else
#define SS_QHD inline
#define SS_QUNROLL
#endif

namespace swapserve::qblocks {

SS_QHD uint32_t Ld8(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(p);
#else
  return *p;
#endif
}
// 2- and 4-byte loads at 2- and 4-byte aligned addresses.
SS_QHD uint32_t Ld16(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(reinterpret_cast<const unsigned short*>(p));
#else
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
#endif
}
SS_QHD uint32_t Ld32(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(reinterpret_cast<const unsigned int*>(p));
#else
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
#endif
}

SS_QHD float Half(uint32_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
#else
  const uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  uint32_t bits;
  if (e == 0) {
    if (m == 0) {
      bits = sign;
    } else {
      uint32_t ee = 127 - 15 + 1, mm = m;
      while ((mm & 0x400) == 0) { mm <<= 1; --ee; }
      bits = sign | (ee << 23) | ((mm & 0x3ff) << 13);
    }
  } else if (e == 0x1f) {
    bits = sign | 0x7f800000u | (m << 13);
  } else {
    bits = sign | ((e + 127 - 15) << 23) | (m << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}

// Q4_K / Q5_K: 6-bit scale and min `j` of the 12 packed bytes at q.
SS_QHD void ScaleMin(int j, const uint8_t* q, float& sc, float& m) {
  if (j < 4) {
    sc = static_cast<float>(Ld8(q + j) & 63);
    m = static_cast<float>(Ld8(q + j + 4) & 63);
  } else {
    sc = static_cast<float>((Ld8(q + j + 4) & 0xF) | ((Ld8(q + j - 4) >> 6) << 4));
    m = static_cast<float>((Ld8(q + j + 4) >> 4) | ((Ld8(q + j) >> 6) << 4));
  }
}

// Q8_0: 4 lanes a block; lane s: values 8s .. 8s+7.
struct Q8_0 {
  static constexpr int kElems = 32, kBytes = 34, kLanes = 4, kRun = 8;
  SS_QHD static int Idx(int s, int i) { return 8 * s + i; }
  SS_QHD static void Deq(const uint8_t* b, int s, float (&v)[8]) {
    const float d = Half(Ld16(b));
SS_QUNROLL
    for (int k = 0; k < 4; ++k) {
      const uint32_t w = Ld16(b + 2 + 8 * s + 2 * k);
      v[2 * k] = static_cast<float>(static_cast<int8_t>(w & 0xff)) * d;
      v[2 * k + 1] = static_cast<float>(static_cast<int8_t>(w >> 8)) * d;
    }
  }
};

// Q4_0: 4 lanes a block; lane s: bytes 4s .. 4s+3 → values 4s+i (low nibbles) and 16+4s+i (high nibbles).
struct Q4_0 {
  static constexpr int kElems = 32, kBytes = 18, kLanes = 4, kRun = 4;
  SS_QHD static int Idx(int s, int i) { return i < 4 ? 4 * s + i : 16 + 4 * s + (i - 4); }
  SS_QHD static void Deq(const uint8_t* b, int s, float (&v)[8]) {
    const float d = Half(Ld16(b));
    const uint32_t w = Ld16(b + 2 + 4 * s) | (Ld16(b + 4 + 4 * s) << 16);
SS_QUNROLL
    for (int i = 0; i < 4; ++i) {
      const int q = (w >> (8 * i)) & 0xff;
      v[i] = static_cast<float>((q & 0xF) - 8) * d;
      v[4 + i] = static_cast<float>((q >> 4) - 8) * d;
    }
  }
};

// Q4_K / Q5_K: 32 lanes a super-block; lane s = 8c + j: bytes 4j .. 4j+3 of 32-byte chunk c → values 64c+4j+i (low
// nibbles, sub-block 2c) and 64c+32+4j+i (high nibbles, sub-block 2c+1); Q5_K adds bit 2c / 2c+1 of qh[4j+i].
template <bool kFive>
struct QK45 {
  static constexpr int kElems = 256, kBytes = kFive ? 176 : 144, kLanes = 32, kRun = 4;
  SS_QHD static int Idx(int s, int i) { return 64 * (s >> 3) + 4 * (s & 7) + (i < 4 ? i : 28 + i); }
  SS_QHD static void Deq(const uint8_t* b, int s, float (&v)[8]) {
    const int c = s >> 3, j = s & 7;
    const uint32_t dm = Ld32(b);
    const float d = Half(dm & 0xffff), dmin = Half(dm >> 16);
    float sc1, m1, sc2, m2;
    ScaleMin(2 * c, b + 4, sc1, m1);
    ScaleMin(2 * c + 1, b + 4, sc2, m2);
    const float d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2;
    const uint32_t q = Ld32(b + (kFive ? 48 : 16) + 32 * c + 4 * j);
    const uint32_t h = kFive ? Ld32(b + 16 + 4 * j) : 0;
SS_QUNROLL
    for (int i = 0; i < 4; ++i) {
      const int qb = (q >> (8 * i)) & 0xff, hb = (h >> (8 * i)) & 0xff;
      const int h1 = kFive && ((hb >> (2 * c)) & 1) ? 16 : 0, h2 = kFive && ((hb >> (2 * c + 1)) & 1) ? 16 : 0;
      v[i] = d1 * static_cast<float>((qb & 0xF) + h1) - mm1;
      v[4 + i] = d2 * static_cast<float>((qb >> 4) + h2) - mm2;
    }
  }
};
using Q4_K = QK45<false>;
using Q5_K = QK45<true>;

// Q6_K: 32 lanes a super-block; lane s = 16n + l0/2: positions l0, l0+1 of half n → values 128n + 32r + l0 + {0,1}
// for the four quarters r (run r of 2), scales sc[8n + l0/16 + 2r].
struct Q6_K {
  static constexpr int kElems = 256, kBytes = 210, kLanes = 32, kRun = 2;
  SS_QHD static int Idx(int s, int i) { return 128 * (s >> 4) + 32 * (i >> 1) + 2 * (s & 15) + (i & 1); }
  SS_QHD static void Deq(const uint8_t* b, int s, float (&v)[8]) {
    const int n = s >> 4, l0 = 2 * (s & 15);
    const float d = Half(Ld16(b + 208));
    const uint32_t qa = Ld16(b + 64 * n + l0), qb = Ld16(b + 64 * n + 32 + l0), qh = Ld16(b + 128 + 32 * n + l0);
    const uint8_t* sc = b + 192 + 8 * n + (l0 >> 4);
    float ds[4];
SS_QUNROLL
    for (int r = 0; r < 4; ++r) ds[r] = d * static_cast<float>(static_cast<int8_t>(Ld8(sc + 2 * r)));
SS_QUNROLL
    for (int j = 0; j < 2; ++j) {
      const int a = (qa >> (8 * j)) & 0xff, c = (qb >> (8 * j)) & 0xff, h = (qh >> (8 * j)) & 0xff;
      v[0 + j] = ds[0] * static_cast<float>(((a & 0xF) | (((h >> 0) & 3) << 4)) - 32);
      v[2 + j] = ds[1] * static_cast<float>(((c & 0xF) | (((h >> 2) & 3) << 4)) - 32);
      v[4 + j] = ds[2] * static_cast<float>(((a >> 4) | (((h >> 4) & 3) << 4)) - 32);
      v[6 + j] = ds[3] * static_cast<float>(((c >> 4) | (((h >> 6) & 3) << 4)) - 32);
    }
  }
};

// Calls f.template operator()<Block>() for the block type of a dtype code (3..7, engine::DType); false otherwise.
template <typename F>
inline bool Dispatch(int dtype, F&& f) {
  switch (dtype) {
    case 3: f(Q8_0{}); return true;
    case 4: f(Q4_0{}); return true;
    case 5: f(Q4_K{}); return true;
    case 6: f(Q5_K{}); return true;
    case 7: f(Q6_K{}); return true;
    default: return false;
  }
}

}  // namespace swapserve::qblocks
