// Integer dot products of GGUF blocks with int8 activations, for the `dp4a` decode GEMV (quant_dp4a.cu; why it
// exists: the design note of quant_gemv.cu). Activations are quantized per 32 values to q = round(x * 127 / amax)
// with scale d = amax / 127 (QuantScale; ggml's q8_1 does the same), kept in 16-value pieces of 16 int8 bytes, with
// the block's d and, per piece, d * (sum of its 16 q) (the K-quant mins and Q4_0's -8 offset use it).
// Each block type cuts a weight row into units, one unit a lane at a time; a unit is kS pieces of 16 weights whose
// bytes each lane loads 16 at a time (Ld128U: 16-byte loads even where a block is only 2-byte aligned), so
// consecutive lanes read consecutive bytes of the row. Load(row, u, w) issues the unit's loads, Dot(w, u, xq, xd, xs)
// unpacks the weights to int8 words and returns the unit's share of the row's dot product; Slot(k16) places piece
// k16 (values 16*k16 .. +15) of a row of X so that the 32 lanes of a warp read 32 consecutive 16-byte slots for
// each piece index m of their units (SlotOf, shared with quant_dot.cuh): no shared-memory bank conflicts.
// g++ compiles this header too: bench/quant/dp4a_check.cc replays the units on the CPU against the reference
// dequantizers of engine/quant_blocks.h.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/cuda/quant_dot.cuh"

namespace swapserve::cuda::q8 {

using qblocks::Half;
using qblocks::Ld16;
using qblocks::Ld8;
using qdot::Ld128;
using qdot::SlotOf;
using qdot::SubBias;
#if !defined(__CUDACC__) && !defined(SS_SIMT_EMULATION)
using qdot::int4;
using qdot::make_int4;
using qdot::make_uint4;
using qdot::uint4;
#endif

SS_QHD int Dp4a(int a, int b, int c) {
#if defined(__CUDA_ARCH__)
  return __dp4a(a, b, c);
#else
  for (int i = 0; i < 4; ++i)
    c += static_cast<int8_t>(static_cast<uint32_t>(a) >> (8 * i)) * static_cast<int8_t>(static_cast<uint32_t>(b) >> (8 * i));
  return c;
#endif
}

// Round to nearest, ties to even (as __float2int_rn).
SS_QHD int RoundI(float v) {
#if defined(__CUDA_ARCH__)
  return __float2int_rn(v);
#else
  return static_cast<int>(std::nearbyint(v));
#endif
}

// The scale of a 32-value block of X from its largest magnitude: d (value = d * q) and the factor q = x * inv.
SS_QHD void QuantScale(float amax, float& d, float& inv) {
  d = amax / 127.f;
  inv = amax > 0.f ? 127.f / amax : 0.f;
}

// Bytes 2..5 of the pair (a, b) (little-endian): the word at a 2-byte offset.
SS_QHD uint32_t Mid2(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(a, b, 0x5432);
#else
  return (a >> 16) | (b << 16);
#endif
}

// __byte_perm: byte i of the result is byte ((sel >> 4i) & 7) of the 8 bytes (a, b).
SS_QHD uint32_t Perm(uint32_t a, uint32_t b, uint32_t sel) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(a, b, sel);
#else
  const uint64_t ab = (static_cast<uint64_t>(b) << 32) | a;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= static_cast<uint32_t>((ab >> (8 * ((sel >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
#endif
}

// 16 bytes at a 2-byte aligned address, from the one or two 16-byte aligned pieces that hold them (the second is
// read only when needed, so nothing past the last aligned piece of the row is touched).
SS_QHD uint4 Ld128U(const uint8_t* p) {
  const int o = static_cast<int>(reinterpret_cast<uintptr_t>(p) & 15);
  const uint8_t* base = p - o;
  const uint4 lo = Ld128(base);
  const uint4 hi = o ? Ld128(base + 16) : lo;
  uint32_t w[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
  if (o & 8) {
SS_QUNROLL
    for (int k = 0; k < 6; ++k) w[k] = w[k + 2];
  }
  if (o & 4) {
SS_QUNROLL
    for (int k = 0; k < 5; ++k) w[k] = w[k + 1];
  }
  if (o & 2) {
SS_QUNROLL
    for (int k = 0; k < 4; ++k) w[k] = Mid2(w[k], w[k + 1]);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// dp4a of the 4 words of a unit's 16 weights with a slot of 16 int8 activations (by value: one 16-byte load).
SS_QHD int Dot16(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, int4 x) {
  return Dp4a(static_cast<int>(w3), x.w, Dp4a(static_cast<int>(w2), x.z, Dp4a(static_cast<int>(w1), x.y,
              Dp4a(static_cast<int>(w0), x.x, 0))));
}

// Q8_0 (34 bytes: f16 d, 32 int8): 2 units a block, unit u = half h = u & 1 of block u >> 1 (piece u).
struct Q8_0 {
  static constexpr int kElems = 32, kBytes = 34, kUnits = 2, kS = 1;
  static constexpr bool kSums = false;
  struct W { uint4 q; uint32_t d; };
  SS_QHD static int Slot(int k16) { return SlotOf<kS>(k16, 0); }
  SS_QHD static void Load(const uint8_t* row, int u, W& w) {
    const uint8_t* p = row + (u >> 1) * kBytes;
    w.d = Ld16(p);
    w.q = Ld128U(p + 2 + 16 * (u & 1));
  }
  SS_QHD static float Dot(const W& w, int u, const int4* xq, const float* xd, const float*) {
    const int s = Dot16(w.q.x, w.q.y, w.q.z, w.q.w, xq[SlotOf<kS>(u, 0)]);
    return Half(w.d) * xd[u >> 1] * static_cast<float>(s);
  }
};

// Q4_0 (18 bytes: f16 d, 16 bytes: value i low nibble of byte i, value 16+i high nibble): 1 unit a block, pieces
// m = 0 (low nibbles) and 1 (high). value = d * (nibble - 8): the -8 goes through the pieces' sums.
struct Q4_0 {
  static constexpr int kElems = 32, kBytes = 18, kUnits = 1, kS = 2;
  static constexpr bool kSums = true;
  struct W { uint4 q; uint32_t d; };
  SS_QHD static int Slot(int k16) { return SlotOf<kS>(k16 >> 1, k16 & 1); }
  SS_QHD static void Load(const uint8_t* row, int u, W& w) {
    const uint8_t* p = row + u * kBytes;
    w.d = Ld16(p);
    w.q = Ld128U(p + 2);
  }
  SS_QHD static float Dot(const W& w, int u, const int4* xq, const float* xd, const float* xs) {
    const uint32_t m = 0x0F0F0F0Fu;
    const int lo = Dot16(w.q.x & m, w.q.y & m, w.q.z & m, w.q.w & m, xq[SlotOf<kS>(u, 0)]);
    const int hi = Dot16((w.q.x >> 4) & m, (w.q.y >> 4) & m, (w.q.z >> 4) & m, (w.q.w >> 4) & m, xq[SlotOf<kS>(u, 1)]);
    return Half(w.d) * (xd[u] * static_cast<float>(lo + hi) - 8.f * (xs[2 * u] + xs[2 * u + 1]));
  }
};

// Q4_K / Q5_K (144 / 176 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, [Q5_K: 32 bytes of high
// bits], 128 bytes of nibbles; value 64c+i low nibble of byte 32c+i (sub-block 2c), 64c+32+i high nibble (2c+1)):
// 8 units a super-block, unit u = 8sb + 2c + h: nibble bytes 32c+16h .. +15, piece m = 0 (low nibbles: values
// 64c+16h ..) and 1 (high: 64c+32+16h ..). Super-blocks are 16-byte multiples: plain 16-byte loads (rows 16-byte
// aligned), the 16-byte header shared by the 8 lanes of a super-block (L1).
template <bool kFive>
struct QK45 {
  static constexpr int kElems = 256, kBytes = kFive ? 176 : 144, kUnits = 8, kS = 2;
  static constexpr bool kSums = true;
  struct W { uint4 hd, q, qh; };
  SS_QHD static int Slot(int k16) {
    const int sb = k16 >> 4, c = (k16 >> 2) & 3, m = (k16 >> 1) & 1, h = k16 & 1;
    return SlotOf<kS>(8 * sb + 2 * c + h, m);
  }
  SS_QHD static void Load(const uint8_t* row, int u, W& w) {
    const int sb = u >> 3, c = (u >> 1) & 3, h = u & 1;
    const uint8_t* p = row + sb * kBytes;
    w.hd = Ld128(p);
    w.q = Ld128(p + (kFive ? 48 : 16) + 32 * c + 16 * h);
    if constexpr (kFive) w.qh = Ld128(p + 16 + 16 * h);
    else w.qh = make_uint4(0, 0, 0, 0);
  }
  SS_QHD static float Dot(const W& w, int u, const int4* xq, const float* xd, const float* xs) {
    const int sb = u >> 3, c = (u >> 1) & 3, h = u & 1;
    // Scales and mins j = 2c, 2c+1 as bytes (see quant_dot.cuh's QK45 for the packing).
    const uint32_t sc = c < 2 ? w.hd.y & 0x3F3F3F3Fu : (w.hd.w & 0x0F0F0F0Fu) | ((w.hd.y >> 2) & 0x30303030u);
    const uint32_t mn = c < 2 ? w.hd.z & 0x3F3F3F3Fu : ((w.hd.w >> 4) & 0x0F0F0F0Fu) | ((w.hd.z >> 2) & 0x30303030u);
    const int sh = 16 * (c & 1);
    const float d = Half(w.hd.x & 0xffffu), dmin = Half(w.hd.x >> 16);
    const uint32_t qs[4] = {w.q.x, w.q.y, w.q.z, w.q.w}, hs[4] = {w.qh.x, w.qh.y, w.qh.z, w.qh.w};
    uint32_t lo[4], hi[4];
SS_QUNROLL
    for (int k = 0; k < 4; ++k) {
      lo[k] = qs[k] & 0x0F0F0F0Fu;
      hi[k] = (qs[k] >> 4) & 0x0F0F0F0Fu;
      if constexpr (kFive) {
        lo[k] |= ((hs[k] >> (2 * c)) << 4) & 0x10101010u;
        hi[k] |= ((hs[k] >> (2 * c + 1)) << 4) & 0x10101010u;
      }
    }
    const int sA = Dot16(lo[0], lo[1], lo[2], lo[3], xq[SlotOf<kS>(u, 0)]);
    const int sB = Dot16(hi[0], hi[1], hi[2], hi[3], xq[SlotOf<kS>(u, 1)]);
    const int bA = 8 * sb + 2 * c, kA = 16 * sb + 4 * c + h;  // 32-value block and piece of m = 0 (m = 1: +1, +2)
    const float dA = d * static_cast<float>((sc >> sh) & 0xff), dB = d * static_cast<float>((sc >> (sh + 8)) & 0xff);
    const float mA = dmin * static_cast<float>((mn >> sh) & 0xff), mB = dmin * static_cast<float>((mn >> (sh + 8)) & 0xff);
    return dA * xd[bA] * static_cast<float>(sA) - mA * xs[kA] + dB * xd[bA + 1] * static_cast<float>(sB) - mB * xs[kA + 2];
  }
};
using Q4_K = QK45<false>;
using Q5_K = QK45<true>;

// Q6_K (210 bytes: 128 bytes low nibbles ql, 64 bytes high 2-bit pairs qh, 16 int8 scales, f16 d; value
// 128n+32r+l from ql[64n+l (+32 for r odd)] (low nibble r < 2, high r >= 2), bits 2r..2r+1 of qh[32n+l], scale
// sc[8n+l/16+2r]): 4 units a super-block, unit u = 4sb + 2n + j: l = 16j .. 16j+15, piece m = r. Blocks are only
// 2-byte aligned: Ld128U. The -32 offset is a borrow-free byte subtraction (each piece has its own scale).
struct Q6_K {
  static constexpr int kElems = 256, kBytes = 210, kUnits = 4, kS = 4;
  static constexpr bool kSums = false;
  struct W { uint4 a, c, h; uint32_t d, sc; };
  SS_QHD static int Slot(int k16) {
    const int sb = k16 >> 4, n = (k16 >> 3) & 1, r = (k16 >> 1) & 3, j = k16 & 1;
    return SlotOf<kS>(4 * sb + 2 * n + j, r);
  }
  SS_QHD static void Load(const uint8_t* row, int u, W& w) {
    const int sb = u >> 2, n = (u >> 1) & 1, j = u & 1;
    const uint8_t* p = row + sb * kBytes;
    w.a = Ld128U(p + 64 * n + 16 * j);
    w.c = Ld128U(p + 64 * n + 32 + 16 * j);
    w.h = Ld128U(p + 128 + 32 * n + 16 * j);
    w.d = Ld16(p + 208);
    // The unit's 4 scales, sc[8n + j + 2r] for r = 0..3, as the bytes of one word.
    const uint4 sc = Ld128U(p + 192);
    w.sc = Perm(n ? sc.z : sc.x, n ? sc.w : sc.y, j ? 0x7531u : 0x6420u);
  }
  SS_QHD static float Dot(const W& w, int u, const int4* xq, const float* xd, const float*) {
    const int sb = u >> 2, n = (u >> 1) & 1;
    const uint32_t a[4] = {w.a.x, w.a.y, w.a.z, w.a.w}, c[4] = {w.c.x, w.c.y, w.c.z, w.c.w};
    const uint32_t h[4] = {w.h.x, w.h.y, w.h.z, w.h.w};
    uint32_t q[4][4];  // [r][word]
SS_QUNROLL
    for (int k = 0; k < 4; ++k) {
      q[0][k] = static_cast<uint32_t>(SubBias((a[k] & 0x0F0F0F0Fu) | ((h[k] << 4) & 0x30303030u), 0x20202020u));
      q[1][k] = static_cast<uint32_t>(SubBias((c[k] & 0x0F0F0F0Fu) | ((h[k] << 2) & 0x30303030u), 0x20202020u));
      q[2][k] = static_cast<uint32_t>(SubBias(((a[k] >> 4) & 0x0F0F0F0Fu) | (h[k] & 0x30303030u), 0x20202020u));
      q[3][k] = static_cast<uint32_t>(SubBias(((c[k] >> 4) & 0x0F0F0F0Fu) | ((h[k] >> 2) & 0x30303030u), 0x20202020u));
    }
    float acc = 0.f;
SS_QUNROLL
    for (int r = 0; r < 4; ++r) {
      const int s = Dot16(q[r][0], q[r][1], q[r][2], q[r][3], xq[SlotOf<kS>(u, r)]);
      const float scale = static_cast<float>(static_cast<int8_t>((w.sc >> (8 * r)) & 0xff));
      acc += scale * xd[8 * sb + 4 * n + r] * static_cast<float>(s);
    }
    return Half(w.d) * acc;
  }
};

// The dp4a type of a quant_blocks.h block type.
template <typename B> struct Of;
template <> struct Of<qblocks::Q8_0> { using T = Q8_0; };
template <> struct Of<qblocks::Q4_0> { using T = Q4_0; };
template <> struct Of<qblocks::Q4_K> { using T = Q4_K; };
template <> struct Of<qblocks::Q5_K> { using T = Q5_K; };
template <> struct Of<qblocks::Q6_K> { using T = Q6_K; };

}  // namespace swapserve::cuda::q8
