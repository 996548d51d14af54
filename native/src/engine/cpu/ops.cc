// CPU ops: plain loops written so g++ -O3 vectorises them (GCC vector extensions for the dot products).
#include "engine/cpu/ops.h"

#include "engine/cpu/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace swapserve::engine::cpu {

namespace {

typedef float v8sf __attribute__((vector_size(32)));

inline v8sf Load8(const float* p) {
  v8sf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline float Sum8(v8sf v) {
  float s = 0.f;
  for (int j = 0; j < 8; ++j) s += v[j];
  return s;
}

// The matmul micro-kernel: 4 weight rows x NT token rows of x, all of length n, in 4*NT vector accumulators.
// Each loaded weight vector is used NT times and each x vector 4 times, so it runs on FMAs, not on loads.
// The micro-kernel's vector: 16 floats where AVX-512 gives 32 registers (16 accumulators + 5 operands fit),
// else 8 (AVX2's 16 registers).
#if defined(__AVX512F__)
constexpr int kVW = 16;
#else
constexpr int kVW = 8;
#endif
typedef float vtile __attribute__((vector_size(kVW * 4)));

inline vtile LoadV(const float* p) {
  vtile v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <int NT>
inline void DotTile(const float* const* w, const float* const* x, int n, float (*out)[4]) {
  vtile acc[NT][4] = {};
  int i = 0;
  for (; i + kVW <= n; i += kVW) {
    const vtile w0 = LoadV(w[0] + i), w1 = LoadV(w[1] + i), w2 = LoadV(w[2] + i), w3 = LoadV(w[3] + i);
    for (int t = 0; t < NT; ++t) {
      const vtile xv = LoadV(x[t] + i);
      acc[t][0] += w0 * xv;
      acc[t][1] += w1 * xv;
      acc[t][2] += w2 * xv;
      acc[t][3] += w3 * xv;
    }
  }
  for (int t = 0; t < NT; ++t) {
    for (int j = 0; j < 4; ++j) {
      float s = 0.f;
      for (int k = 0; k < kVW; ++k) s += acc[t][j][k];
      for (int k = i; k < n; ++k) s += w[j][k] * x[t][k];
      out[t][j] = s;
    }
  }
}

inline float Dot(const float* a, const float* b, int n) {
  v8sf acc = {};
  int i = 0;
  for (; i + 8 <= n; i += 8) acc += Load8(a + i) * Load8(b + i);
  float s = Sum8(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Per-thread buffer for weight rows converted to fp32 (4 rows of I floats).
thread_local std::vector<float> tRows;

}  // namespace

size_t DTypeBytes(DType dt) { return BlockBytes(dt); }

float BF16ToF32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float F16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((man & 0x400) == 0) {
        man <<= 1;
        --exp;
      }
      man &= 0x3ff;
      bits = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void ToF32(const uint8_t* src, DType dt, float* dst, size_t n) {
  switch (dt) {
    case DType::kF32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::kBF16: {
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(dst + i, &bits, 4);
      }
      return;
    }
    case DType::kF16: {
      size_t i = 0;
#if defined(__F16C__)
      for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
      }
#endif
      for (; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = F16ToF32(h);
      }
      return;
    }
    default:  // block-quantized: n is a whole number of blocks
      Dequantize(src, dt, dst, n);
      return;
  }
}

void MatMul(ThreadPool& pool, float* y, const float* x, const uint8_t* w, DType wdt, const uint8_t* bias,
            DType bdt, int T, int I, int O, bool accumulate) {
  const size_t rowBytes = RowBytes(wdt, I);  // quantized rows: I / block values x block bytes
  const int64_t tiles = (O + 3) / 4;
  // Enough multiply-adds per chunk (~64K) that waking a helper is worth it.
  const int64_t grain = std::max<int64_t>(1, 65536 / (4 * static_cast<int64_t>(I) * T));
  pool.ParallelFor(tiles, grain, [&](int64_t tb, int64_t te, int) {
    std::vector<float>& rows = tRows;
    if (wdt != DType::kF32 && rows.size() < static_cast<size_t>(4) * I) rows.resize(static_cast<size_t>(4) * I);
    for (int64_t tile = tb; tile < te; ++tile) {
      const int o0 = static_cast<int>(tile * 4);
      const int nr = std::min(4, O - o0);
      const float* r[4];
      for (int j = 0; j < 4; ++j) {
        const int o = o0 + std::min(j, nr - 1);  // a short last tile repeats its last row (result dropped)
        const uint8_t* src = w + static_cast<size_t>(o) * rowBytes;
        if (wdt == DType::kF32) {
          r[j] = reinterpret_cast<const float*>(src);
        } else {
          if (j < nr) ToF32(src, wdt, rows.data() + static_cast<size_t>(j) * I, I);
          r[j] = rows.data() + static_cast<size_t>(std::min(j, nr - 1)) * I;
        }
      }
      float b[4] = {0.f, 0.f, 0.f, 0.f};
      if (bias) ToF32(bias + static_cast<size_t>(o0) * DTypeBytes(bdt), bdt, b, nr);
      for (int t0 = 0; t0 < T; t0 += 4) {
        const int nt = std::min(4, T - t0);
        const float* xs[4];
        for (int t = 0; t < 4; ++t) xs[t] = x + static_cast<size_t>(t0 + std::min(t, nt - 1)) * I;
        float s[4][4];
        switch (nt) {
          case 4: DotTile<4>(r, xs, I, s); break;
          case 3: DotTile<3>(r, xs, I, s); break;
          case 2: DotTile<2>(r, xs, I, s); break;
          default: DotTile<1>(r, xs, I, s); break;
        }
        for (int t = 0; t < nt; ++t) {
          float* yr = y + static_cast<size_t>(t0 + t) * O + o0;
          for (int j = 0; j < nr; ++j) yr[j] = (accumulate ? yr[j] : 0.f) + s[t][j] + b[j];
        }
      }
    }
  });
}

void RmsNorm(float* out, const float* x, const uint8_t* w, DType wdt, int T, int C, float eps) {
  std::vector<float> wf(C);
  ToF32(w, wdt, wf.data(), C);
  for (int t = 0; t < T; ++t) {
    const float* xr = x + static_cast<size_t>(t) * C;
    float* orow = out + static_cast<size_t>(t) * C;
    float ss = Dot(xr, xr, C);
    const float scale = 1.f / std::sqrt(ss / C + eps);
    for (int i = 0; i < C; ++i) orow[i] = xr[i] * scale * wf[i];
  }
}

std::vector<float> RopeInvFreq(const ModelDesc& d) {
  const int half = d.headDim / 2;
  std::vector<float> inv(half);
  for (int i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(static_cast<double>(d.ropeTheta), (2.0 * i) / d.headDim);
    if (d.ropeScaling == RopeScaling::kLinear) {
      f /= d.ropeFactor;
    } else if (d.ropeScaling == RopeScaling::kLlama3) {
      // Llama 3.1: keep high frequencies, divide low ones by `factor`, blend linearly in between.
      const double oldLen = d.ropeOriginalMaxPositions;
      const double lowWavelen = oldLen / d.ropeLowFreqFactor;
      const double highWavelen = oldLen / d.ropeHighFreqFactor;
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen > lowWavelen) {
        f /= d.ropeFactor;
      } else if (wavelen >= highWavelen) {
        const double smooth =
            (oldLen / wavelen - d.ropeLowFreqFactor) / (d.ropeHighFreqFactor - d.ropeLowFreqFactor);
        f = (1.0 - smooth) * f / d.ropeFactor + smooth * f;
      }
    }
    inv[i] = static_cast<float>(f);
  }
  return inv;
}

void Rope(float* x, const int32_t* pos, int T, int heads, int D, const float* invFreq, bool interleaved) {
  const int half = D / 2;
  std::vector<float> c(half), s(half);
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < half; ++i) {
      const float a = static_cast<float>(pos[t]) * invFreq[i];
      c[i] = std::cos(a);
      s[i] = std::sin(a);
    }
    for (int h = 0; h < heads; ++h) {
      float* v = x + (static_cast<size_t>(t) * heads + h) * D;
      for (int i = 0; i < half; ++i) {
        const int i0 = interleaved ? 2 * i : i;
        const int i1 = interleaved ? 2 * i + 1 : i + half;
        const float a = v[i0], b = v[i1];
        v[i0] = a * c[i] - b * s[i];
        v[i1] = a * s[i] + b * c[i];
      }
    }
  }
}

void Attention(ThreadPool& pool, const std::vector<AttnSeq>& seqs, int H, int KVH, int D,
               std::vector<std::vector<float>>& scratch) {
  // Flatten (sequence, token, head) into one index space.
  std::vector<int64_t> start(seqs.size() + 1, 0);
  int64_t work = 0;  // ~ multiply-adds, for the grain
  for (size_t i = 0; i < seqs.size(); ++i) {
    start[i + 1] = start[i] + static_cast<int64_t>(seqs[i].T) * H;
    work += static_cast<int64_t>(seqs[i].T) * H * (seqs[i].pos0 + seqs[i].T) * D * 2;
  }
  const int64_t n = start.back();
  if (n == 0) return;
  if (scratch.size() < static_cast<size_t>(pool.size())) scratch.resize(pool.size());
  const int group = H / KVH;
  const int kvDim = KVH * D;
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  const int64_t perItem = std::max<int64_t>(1, work / n);
  const int64_t grain = std::max<int64_t>(1, 65536 / perItem);
  pool.ParallelFor(n, grain, [&](int64_t b, int64_t e, int tid) {
    std::vector<float>& sc = scratch[tid];
    size_t si = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
    for (int64_t idx = b; idx < e; ++idx) {
      while (idx >= start[si + 1]) ++si;
      const AttnSeq& s = seqs[si];
      const int64_t local = idx - start[si];
      const int t = static_cast<int>(local / H);
      const int h = static_cast<int>(local % H);
      const int kvh = h / group;
      const int len = s.pos0 + t + 1;  // causal: keys 0 .. pos0+t
      if (sc.size() < static_cast<size_t>(len)) sc.resize(len);
      const float* q = s.q + (static_cast<size_t>(t) * H + h) * D;
      auto row = [&s](int j) -> size_t {
        return s.blocks ? static_cast<size_t>(s.blocks[j / s.blockTokens]) * s.blockTokens + j % s.blockTokens
                        : static_cast<size_t>(j);
      };
      float mx = -INFINITY;
      for (int j = 0; j < len; ++j) {
        const float v = Dot(q, s.k + row(j) * kvDim + kvh * D, D) * scale;
        sc[j] = v;
        mx = std::max(mx, v);
      }
      float sum = 0.f;
      for (int j = 0; j < len; ++j) {
        sc[j] = std::exp(sc[j] - mx);
        sum += sc[j];
      }
      const float inv = 1.f / sum;
      float* o = s.out + (static_cast<size_t>(t) * H + h) * D;
      for (int d = 0; d < D; ++d) o[d] = 0.f;
      for (int j = 0; j < len; ++j) {
        const float p = sc[j] * inv;
        const float* v = s.v + row(j) * kvDim + kvh * D;
        for (int d = 0; d < D; ++d) o[d] += p * v[d];
      }
    }
  });
}

void SwiGLU(float* g, const float* u, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float x = g[i];
    g[i] = x / (1.f + std::exp(-x)) * u[i];
  }
}

}  // namespace swapserve::engine::cpu
