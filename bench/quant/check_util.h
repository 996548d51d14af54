// Shared by the CPU replays of the quantized GEMV units (int_units_check.cc, dp4a_check.cc): bf16 rounding as the
// GPU's activations have it, and random quantized blocks with every f16 scale small and finite (as gemv_bench.cu's
// FillKernel), with `spare` zero bytes after them (a unit may read the rest of the last 16-byte piece, as on the GPU).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/cuda/quant_dp4a.cuh"

namespace swapserve::qcheck {

inline float Bf16Round(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
  std::memcpy(&v, &u, 4);
  return v;
}

inline uint32_t Hash(uint32_t i, uint32_t seed) {
  uint32_t h = i * 2654435761u ^ seed;
  h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
  return h;
}

// qt: the type index qblocks::Dispatch takes (3..7); it says where each block keeps its f16 scales.
inline std::vector<uint8_t> Fill(size_t bytes, int blockBytes, int qt, uint32_t seed, size_t spare = 0) {
  std::vector<uint8_t> w(bytes + spare, 0);
  for (size_t i = 0; i < bytes; ++i) {
    const int o = static_cast<int>(i % blockBytes);
    uint8_t v = static_cast<uint8_t>(Hash(static_cast<uint32_t>(i), seed));
    const bool hi = (qt <= 4 && o == 1) || ((qt == 5 || qt == 6) && (o == 1 || o == 3)) || (qt == 7 && o == 209);
    if (hi) v = 0x1c | (v & 0x03);
    w[i] = v;
  }
  return w;
}


// Rows [0, rows) of W x with the float lane split of engine/quant_blocks.h, double sums.
template <typename B>
inline std::vector<double> FloatRef(const std::vector<uint8_t>& w, int rows, const float* x, int K) {
  const int nb = K / B::kElems;
  std::vector<double> y(rows, 0.0);
  for (int r = 0; r < rows; ++r)
    for (int b = 0; b < nb; ++b)
      for (int l = 0; l < B::kLanes; ++l) {
        float v[8];
        B::Deq(w.data() + (static_cast<size_t>(r) * nb + b) * B::kBytes, l, v);
        for (int k = 0; k < 8; ++k) y[r] += static_cast<double>(v[k]) * x[static_cast<size_t>(b) * B::kElems + B::Idx(l, k)];
      }
  return y;
}

// T rows of K activations, bf16-rounded: smooth values, row 1 with outliers of 30, row 2 with all-zero blocks.
inline std::vector<float> TestX(int T, int K) {
  std::vector<float> x(static_cast<size_t>(T) * K);
  for (int t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k) {
      float v = std::sin(0.37f * k + t) * (0.5f + t);
      if (t == 1 && k % 97 == 5) v = 30.f;       // outliers
      if (t == 2 && (k / 32) % 5 == 0) v = 0.f;  // all-zero blocks
      x[static_cast<size_t>(t) * K + k] = Bf16Round(v);
    }
  return x;
}

// X (rows of K) with each value replaced by the dp4a kernels' int8 rounding d * q per 32 values (scale amax / 127,
// engine/cuda/quant_dp4a.cuh): the values their dot products multiply.
inline std::vector<float> Int8Rounded(const std::vector<float>& x) {
  std::vector<float> r(x.size());
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[32 * b + j]));
    float d, inv;
    cuda::q8::QuantScale(amax, d, inv);
    for (int j = 0; j < 32; ++j) r[32 * b + j] = d * static_cast<float>(cuda::q8::RoundI(x[32 * b + j] * inv));
  }
  return r;
}

// Max |ref - y| over max |ref| (NaN anywhere: infinite).
inline double RelErr(const std::vector<double>& ref, const std::vector<double>& y) {
  double maxRef = 0, maxErr = 0;
  for (size_t r = 0; r < ref.size(); ++r) {
    maxRef = std::fmax(maxRef, std::fabs(ref[r]));
    const double e = std::fabs(ref[r] - y[r]);
    maxErr = std::isnan(e) ? INFINITY : std::fmax(maxErr, e);
  }
  return maxErr / std::fmax(1e-30, maxRef);
}

}  // namespace swapserve::qcheck
