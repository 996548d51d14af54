// Dequantization of GGUF blocks, one function per type, written in the order of ggml's reference dequantizers so
// the values match the TS scalar reference (native/ts/model/quant.ts dequantize).
#include "engine/cpu/quant.h"

#include <cstring>

#include "engine/cpu/ops.h"

namespace swapserve::engine::cpu {

namespace {

inline float Half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return F16ToF32(h);
}

// Q4_K / Q5_K: 6-bit scale and min j of the 12 packed bytes.
inline void ScaleMin(int j, const uint8_t* q, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void DeQ8_0(const uint8_t* b, float* y) {
  const float d = Half(b);
  const int8_t* q = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = q[j] * d;
}

void DeQ4_0(const uint8_t* b, float* y) {
  const float d = Half(b);
  const uint8_t* q = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = ((q[j] & 0xF) - 8) * d;
    y[j + 16] = ((q[j] >> 4) - 8) * d;
  }
}

template <bool kFive>
void DeQ45_K(const uint8_t* b, float* y) {
  const float d = Half(b), dmin = Half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = kFive ? b + 48 : b + 16;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
    uint8_t sc, m;
    ScaleMin(is, scales, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    ScaleMin(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) {
      const int h1 = kFive && (qh[l] & u1) ? 16 : 0;
      const int h2 = kFive && (qh[l] & u2) ? 16 : 0;
      y[j + l] = d1 * ((ql[l] & 0xF) + h1) - m1;
      y[j + l + 32] = d2 * ((ql[l] >> 4) + h2) - m2;
    }
  }
}

void DeQ6_K(const uint8_t* b, float* y) {
  const float d = Half(b + 208);
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  for (int n = 0; n < 256; n += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[n + l] = d * sc[is + 0] * q1;
      y[n + l + 32] = d * sc[is + 2] * q2;
      y[n + l + 64] = d * sc[is + 4] * q3;
      y[n + l + 96] = d * sc[is + 6] * q4;
    }
  }
}

}  // namespace

bool IsQuant(DType dt) { return static_cast<int>(dt) >= static_cast<int>(DType::kQ8_0); }

int BlockElems(DType dt) {
  switch (dt) {
    case DType::kQ8_0:
    case DType::kQ4_0: return 32;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K: return 256;
    default: return 1;
  }
}

size_t BlockBytes(DType dt) {
  switch (dt) {
    case DType::kF32: return 4;
    case DType::kF16:
    case DType::kBF16: return 2;
    case DType::kQ8_0: return 34;
    case DType::kQ4_0: return 18;
    case DType::kQ4_K: return 144;
    case DType::kQ5_K: return 176;
    case DType::kQ6_K: return 210;
  }
  return 0;
}

size_t RowBytes(DType dt, size_t n) { return n / BlockElems(dt) * BlockBytes(dt); }

void Dequantize(const uint8_t* src, DType dt, float* dst, size_t n) {
  const size_t be = BlockElems(dt), bb = BlockBytes(dt);
  void (*f)(const uint8_t*, float*) = nullptr;
  switch (dt) {
    case DType::kQ8_0: f = DeQ8_0; break;
    case DType::kQ4_0: f = DeQ4_0; break;
    case DType::kQ4_K: f = DeQ45_K<false>; break;
    case DType::kQ5_K: f = DeQ45_K<true>; break;
    case DType::kQ6_K: f = DeQ6_K; break;
    default: return;
  }
  for (size_t i = 0; i < n / be; ++i) f(src + i * bb, dst + i * be);
}

}  // namespace swapserve::engine::cpu
