// Integer dot products of GGUF blocks with split-int16 activations, for the decode GEMV of quant_gemv.cu (its
// design note says why). Each block type cuts a weight row into units, one unit a lane at a time; a unit is kM
// chunks of 8 consecutive values (so 8 activations, one 16-byte shared-memory slot). Unit(row, u, ...) reads the
// unit's bytes, turns its 8*kM weights into signed int8 bytes (two 32-bit words a chunk: values 0..3 and 4..7) and
// gives each chunk its weight scale `ds` (the value is ds * q - dm), its min `dm` (K-quants only) and its 32-value
// activation block. Slot(k8) is the inverse map: run k8 (values 8*k8 .. 8*k8+7 of the row) is chunk m of unit u.
// The values are those of engine/quant_blocks.h (ggml's reference dequantizers): bench/quant/gemv_bench.cu checks
// the kernel against the host reference for every type on the GPU, and bench/quant/int_units_check.cc runs these
// functions on the CPU (g++ compiles this header too) against the same reference.
#pragma once
#include <cstdint>
#include <cstring>

#include "engine/quant_blocks.h"

namespace swapserve::cuda::qdot {

#if !defined(__CUDACC__) && !defined(SS_SIMT_EMULATION)
// g++ without the CUDA headers (the CPU check): the two vector types the units use. (The CPU emulation of the
// kernels, bench/simt/simt.h, has the CUDA headers and their types.)
struct uint4 { unsigned int x, y, z, w; };
struct int4 { int x, y, z, w; };
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) { return {x, y, z, w}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
#endif

using qblocks::Half;
using qblocks::Ld16;
using qblocks::Ld8;

// 4 bytes at a 2-byte aligned address (Q8_0, Q4_0 and Q6_K blocks are only 2-byte aligned).
SS_QHD uint32_t Ld16x2(const uint8_t* p) { return Ld16(p) | (Ld16(p + 2) << 16); }
// 16 bytes at a 16-byte aligned address (Q4_K / Q5_K super-blocks: 144 and 176 bytes, rows 16-byte aligned).
SS_QHD uint4 Ld128(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(reinterpret_cast<const uint4*>(p));
#else
  uint4 v;
  std::memcpy(&v, p, 16);
  return v;
#endif
}
// Bytes v (each < 128) minus the per-byte bias as signed int8 bytes, without borrows between bytes.
SS_QHD int SubBias(uint32_t v, uint32_t bias) {
  return static_cast<int>(((v | 0x80808080u) - bias) ^ 0x80808080u);
}

// Unit = (chunk, run of 8 values) placement shared by every type: slot of chunk m of unit u, so that the 32 lanes
// of a warp (units 32i .. 32i+31) read 32 consecutive 16-byte slots for each m: no shared-memory bank conflicts.
template <int kM>
SS_QHD int SlotOf(int u, int m) { return (u & ~31) * kM + 32 * m + (u & 31); }

// Q8_0 (34 bytes: f16 d, 32 int8): 2 units a block, unit h = values 16h .. 16h+15 (chunks m: +8m).
struct Q8_0 {
  static constexpr int kElems = 32, kBytes = 34, kUnits = 2, kM = 2;
  static constexpr bool kMins = false;
  SS_QHD static int Slot(int k8) { return SlotOf<kM>(2 * (k8 >> 2) + ((k8 >> 1) & 1), k8 & 1); }
  SS_QHD static void Unit(const uint8_t* row, int u, int (&w)[2 * kM], float (&ds)[kM], float (&)[kM],
                              int (&b32)[kM]) {
    const int b = u >> 1, h = u & 1;
    const uint8_t* p = row + b * kBytes;
    const float d = Half(Ld16(p));
SS_QUNROLL
    for (int k = 0; k < 4; ++k) w[k] = static_cast<int>(Ld16x2(p + 2 + 16 * h + 4 * k));
SS_QUNROLL
    for (int m = 0; m < kM; ++m) { ds[m] = d; b32[m] = b; }
  }
};

// Q4_0 (18 bytes: f16 d, 16 bytes: value i low nibble of byte i, value 16+i high nibble): 1 unit a block, chunks
// m = values 8m .. 8m+7 (m < 2: low nibbles of bytes 8m.., m >= 2: high nibbles of bytes 8(m-2)..).
struct Q4_0 {
  static constexpr int kElems = 32, kBytes = 18, kUnits = 1, kM = 4;
  static constexpr bool kMins = false;
  SS_QHD static int Slot(int k8) { return SlotOf<kM>(k8 >> 2, k8 & 3); }
  SS_QHD static void Unit(const uint8_t* row, int u, int (&w)[2 * kM], float (&ds)[kM], float (&)[kM],
                              int (&b32)[kM]) {
    const uint8_t* p = row + u * kBytes;
    const float d = Half(Ld16(p));
SS_QUNROLL
    for (int k = 0; k < 4; ++k) {
      const uint32_t q = Ld16x2(p + 2 + 4 * k);
      w[k] = SubBias(q & 0x0F0F0F0Fu, 0x08080808u);
      w[4 + k] = SubBias((q >> 4) & 0x0F0F0F0Fu, 0x08080808u);
    }
SS_QUNROLL
    for (int m = 0; m < kM; ++m) { ds[m] = d; b32[m] = u; }
  }
};

// Q4_K / Q5_K (144 / 176 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, [Q5_K: 32 bytes of high
// bits], 128 bytes of nibbles; value 64c+i low nibble of byte 32c+i (sub-block 2c), 64c+32+i high nibble (2c+1)):
// 8 units a super-block, unit (c, h) = bytes 32c+16h .. +15 of the nibbles, chunks m: values 64c+16h+8m (m < 2)
// and 64c+32+16h+8(m-2) (m >= 2). The header (16 bytes) is one load, shared by the 8 lanes of a super-block.
template <bool kFive>
struct QK45 {
  static constexpr int kElems = 256, kBytes = kFive ? 176 : 144, kUnits = 8, kM = 4;
  static constexpr bool kMins = true;
  SS_QHD static int Slot(int k8) {
    const int sb = k8 >> 5, c = (k8 >> 3) & 3, r = k8 & 7;  // r: run of 8 in the 64 values of chunk c
    const int h = (r & 3) >> 1, m = (r & 1) + (r >= 4 ? 2 : 0);
    return SlotOf<kM>(8 * sb + 2 * c + h, m);
  }
  SS_QHD static void Unit(const uint8_t* row, int u, int (&w)[2 * kM], float (&ds)[kM], float (&dm)[kM],
                              int (&b32)[kM]) {
    const int sb = u >> 3, c = (u >> 1) & 3, h = u & 1;
    const uint8_t* p = row + sb * kBytes;
    const uint4 hd = Ld128(p);
    const uint4 q = Ld128(p + (kFive ? 48 : 16) + 32 * c + 16 * h);
    uint4 qh = make_uint4(0, 0, 0, 0);
    if constexpr (kFive) qh = Ld128(p + 16 + 16 * h);
    // The 8 scales and 8 mins as bytes: j < 4 in the low 6 bits of bytes j, j+4; j >= 4 split over byte j+4 (low
    // 4 bits: nibble of the scale / min) and the top 2 bits of bytes j-4 / j.
    const uint32_t sc = c < 2 ? hd.y & 0x3F3F3F3Fu : (hd.w & 0x0F0F0F0Fu) | ((hd.y >> 2) & 0x30303030u);
    const uint32_t mn = c < 2 ? hd.z & 0x3F3F3F3Fu : ((hd.w >> 4) & 0x0F0F0F0Fu) | ((hd.z >> 2) & 0x30303030u);
    const int sh = 16 * (c & 1);
    const float d = Half(hd.x & 0xffffu), dmin = Half(hd.x >> 16);
    const float d1 = d * static_cast<float>((sc >> sh) & 0xff), d2 = d * static_cast<float>((sc >> (sh + 8)) & 0xff);
    const float m1 = dmin * static_cast<float>((mn >> sh) & 0xff), m2 = dmin * static_cast<float>((mn >> (sh + 8)) & 0xff);
    const uint32_t qs[4] = {q.x, q.y, q.z, q.w}, hs[4] = {qh.x, qh.y, qh.z, qh.w};
SS_QUNROLL
    for (int k = 0; k < 4; ++k) {
      uint32_t lo = qs[k] & 0x0F0F0F0Fu, hi = (qs[k] >> 4) & 0x0F0F0F0Fu;
      if constexpr (kFive) {
        lo |= ((hs[k] >> (2 * c)) << 4) & 0x10101010u;
        hi |= ((hs[k] >> (2 * c + 1)) << 4) & 0x10101010u;
      }
      w[k] = static_cast<int>(lo);
      w[4 + k] = static_cast<int>(hi);
    }
    ds[0] = ds[1] = d1; ds[2] = ds[3] = d2;
    dm[0] = dm[1] = m1; dm[2] = dm[3] = m2;
    b32[0] = b32[1] = 8 * sb + 2 * c; b32[2] = b32[3] = 8 * sb + 2 * c + 1;
  }
};
using Q4_K = QK45<false>;
using Q5_K = QK45<true>;

// Q6_K (210 bytes: 128 bytes low nibbles ql, 64 bytes high 2-bit pairs qh, 16 int8 scales, f16 d; value
// 128n+32r+l from ql[64n+l (+32 for r odd)] (low nibble r < 2, high r >= 2), bits 2r..2r+1 of qh[32n+l], scale
// sc[8n+l/16+2r]): 8 units a super-block, unit (n, l0 = 8j) = l in l0 .. l0+7, chunk m = r.
struct Q6_K {
  static constexpr int kElems = 256, kBytes = 210, kUnits = 8, kM = 4;
  static constexpr bool kMins = false;
  SS_QHD static int Slot(int k8) {
    const int sb = k8 >> 5, n = (k8 >> 4) & 1, r = (k8 >> 2) & 3, j = k8 & 3;
    return SlotOf<kM>(8 * sb + 4 * n + j, r);
  }
  SS_QHD static void Unit(const uint8_t* row, int u, int (&w)[2 * kM], float (&ds)[kM], float (&)[kM],
                              int (&b32)[kM]) {
    const int sb = u >> 3, n = (u >> 2) & 1, l0 = 8 * (u & 3);
    const uint8_t* p = row + sb * kBytes;
    const float d = Half(Ld16(p + 208));
    const uint8_t* sc = p + 192 + 8 * n + (l0 >> 4);
SS_QUNROLL
    for (int k = 0; k < 2; ++k) {
      const uint32_t a = Ld16x2(p + 64 * n + l0 + 4 * k), c = Ld16x2(p + 64 * n + 32 + l0 + 4 * k);
      const uint32_t h = Ld16x2(p + 128 + 32 * n + l0 + 4 * k);
      w[0 + k] = SubBias((a & 0x0F0F0F0Fu) | ((h << 4) & 0x30303030u), 0x20202020u);
      w[2 + k] = SubBias((c & 0x0F0F0F0Fu) | ((h << 2) & 0x30303030u), 0x20202020u);
      w[4 + k] = SubBias(((a >> 4) & 0x0F0F0F0Fu) | (h & 0x30303030u), 0x20202020u);
      w[6 + k] = SubBias(((c >> 4) & 0x0F0F0F0Fu) | ((h >> 2) & 0x30303030u), 0x20202020u);
    }
SS_QUNROLL
    for (int r = 0; r < kM; ++r) {
      ds[r] = d * static_cast<float>(static_cast<int8_t>(Ld8(sc + 2 * r)));
      b32[r] = 8 * sb + 4 * n + r;
    }
  }
};

// The dot type of a quant_blocks.h block type.
template <typename B> struct Of;
template <> struct Of<qblocks::Q8_0> { using T = Q8_0; };
template <> struct Of<qblocks::Q4_0> { using T = Q4_0; };
template <> struct Of<qblocks::Q4_K> { using T = Q4_K; };
template <> struct Of<qblocks::Q5_K> { using T = Q5_K; };
template <> struct Of<qblocks::Q6_K> { using T = Q6_K; };

}  // namespace swapserve::cuda::qdot
