// Quantized GEMV bench (GPU machine): swapserve's LaunchQuantGemv per type on Llama-3.1-8B shapes, every variant side
// by side (the float kernel, the default; int16; dp4a with 1, 2 and 4 weight rows a warp), each checked against a
// host reference (engine/quant_blocks.h on the CPU, double sums) for T = 1 and for T = 8 distinct rows of X (and a
// NaN in X must reach the outputs) — dp4a against the reference fed the same int8-rounded X (its kernel exact), its
// error against the float reference reported — and timed in GB/s of weight bytes against the measured
// read-bandwidth floor; the bf16 GEMV (LaunchGemv) on the same shapes; and, when built with -DWITH_GGML, ggml's own
// mmvq kernels (bench/quant/ggml_ref.cu) on the same weights, their outputs compared with ours. Any mismatch is
// printed to stderr as it is found and the exit status is 2.
// Weights rotate over copies spanning >= 512 MiB so no timing is served from L2. Prints a markdown table.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/cuda/kernels.h"
#include "engine/cuda/quant.h"
#include "engine/cuda/quant_dp4a.cuh"
#include "engine/quant_blocks.h"
#include "check_util.h"

#ifdef WITH_GGML
void GgmlQuantizeQ8_1(const float* x, void* vy, int type, int K, int Kpad, cudaStream_t s);
void GgmlMmvq(const void* W, int type, const void* vy, float* dst, int N, int K, int Kpad, cudaStream_t s);
#endif

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_)); std::exit(1); } } while (0)

using swapserve::cuda::ET;
using swapserve::cuda::QGemvPath;
using swapserve::cuda::QT;

// Max |gpu - host| / max |host| allowed, for every path (dp4a: against the host reference fed its int8-rounded X, so
// only float sums differ, ~1e-7). The float path sums float products (~1e-7). The int16 path
// quantizes X per 32 values to 15 bits (step amax/32512, error <= 7.7e-6 of amax for this X): a K-term dot then
// differs by ~sqrt(K) * rms(w) * 4.4e-6 of amax, ~1e-5 of the largest output here. 1e-4 keeps ~8x margin over that
// and is far below what any misplaced value, scale or min does (>= 1e-2).
constexpr double kTol = 1e-4;
// dp4a against the float reference (X itself): the 8-bit rounding of X gives ~3e-3 (as ggml's q8_1); above this bound
// something is wrong beyond rounding.
constexpr double kDp4aVsX = 5e-2;

namespace {

// Random bytes with every f16 scale of every block set to a small finite value (blocks of any type stay valid).
__global__ void FillKernel(uint8_t* w, size_t bytes, int blockBytes, int qt, uint32_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < bytes; i += (size_t)gridDim.x * blockDim.x) {
    uint32_t h = (uint32_t)i * 2654435761u ^ seed;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
    const int o = (int)(i % blockBytes);
    uint8_t v = (uint8_t)h;
    // scale fields: Q8_0/Q4_0 d at 0..1; Q4_K/Q5_K d, dmin at 0..3; Q6_K d at 208..209. 0x1c00..0x1fff ~ 0.004..0.008
    const bool hi = (qt <= 4 && o == 1) || ((qt == 5 || qt == 6) && (o == 1 || o == 3)) || (qt == 7 && o == 209);
    if (hi) v = 0x1c | (v & 0x03);
    w[i] = v;
  }
}

__global__ void ReadKernel(const uint4* p, size_t n, uint32_t* sink) {
  uint32_t acc = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const uint4 v = __ldcs(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) *sink = acc;
}

float Bf16ToF(__nv_bfloat16 b) { return __bfloat162float(b); }

const char* Name(QT t) {
  switch (t) { case QT::kQ8_0: return "Q8_0"; case QT::kQ4_0: return "Q4_0"; case QT::kQ4_K: return "Q4_K";
               case QT::kQ5_K: return "Q5_K"; default: return "Q6_K"; }
}
#ifdef WITH_GGML
int GgmlType(QT t) {
  switch (t) { case QT::kQ8_0: return 8; case QT::kQ4_0: return 2; case QT::kQ4_K: return 12; case QT::kQ5_K: return 13; default: return 14; }
}
#endif

template <typename F>
float TimeUs(int reps, F&& f) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) f(i);
  CK(cudaEventRecord(a));
  for (int i = 0; i < reps; ++i) f(i);
  CK(cudaEventRecord(b));
  CK(cudaEventSynchronize(b));
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, a, b));
  CK(cudaEventDestroy(a)); CK(cudaEventDestroy(b));
  return ms * 1000.f / reps;
}

// Host reference of rows [0, rows) of W times T rows of x (T x K floats) with the lane split of
// engine/quant_blocks.h: y[t * rows + r], double sums, each block dequantized once for all T.
std::vector<double> HostRef(QT t, const std::vector<uint8_t>& w, const float* x, int T, int rows, int K) {
  std::vector<double> y((size_t)T * rows, 0.0);
  swapserve::qblocks::Dispatch(static_cast<int>(t), [&](auto blk) {
    using B = decltype(blk);
    const int nb = K / B::kElems;
    for (int r = 0; r < rows; ++r)
      for (int b = 0; b < nb; ++b)
        for (int l = 0; l < B::kLanes; ++l) {
          float v[8];
          B::Deq(w.data() + ((size_t)r * nb + b) * B::kBytes, l, v);
          for (int tt = 0; tt < T; ++tt)
            for (int k = 0; k < 8; ++k)
              y[(size_t)tt * rows + r] += (double)v[k] * x[(size_t)tt * K + (size_t)b * B::kElems + B::Idx(l, k)];
        }
  });
  return y;
}


// The variants timed side by side: a QGemvPath, and for dp4a the weight rows a warp and the warps a row group
// (s4: K split over 4 warps, for the long rows of 4096 x 14336 where ggml, which gives a row 4 warps, is ahead).
struct Variant {
  const char* name;
  QGemvPath path;
  int rows;   // dp4a rowsPerWarp (0: its default)
  int split;  // dp4a splitK (1 or 4)
};
constexpr Variant kVariants[] = {{"float", QGemvPath::kFloat, 0, 1}, {"int16", QGemvPath::kInt16, 0, 1},
                                 {"dp4a-r1", QGemvPath::kDp4a, 1, 1}, {"dp4a-r2", QGemvPath::kDp4a, 2, 1},
                                 {"dp4a-r4", QGemvPath::kDp4a, 4, 1}, {"dp4a-r1s4", QGemvPath::kDp4a, 1, 4},
                                 {"dp4a-r2s4", QGemvPath::kDp4a, 2, 4}};
constexpr int kNumV = sizeof(kVariants) / sizeof(kVariants[0]);

void Launch(const Variant& v, const void* w, QT t, int N, int K, const void* x, int T, float* y, cudaStream_t s) {
  if (v.path == QGemvPath::kDp4a) {
    if (!swapserve::cuda::QuantGemvDp4a(w, t, N, K, x, K, T, y, ET::kF32, N, 0.f, s, v.rows, v.split)) {
      std::fprintf(stderr, "dp4a does not apply to %d x %d\n", N, K);
      std::exit(1);
    }
  } else {
    swapserve::cuda::LaunchQuantGemv(w, t, N, K, x, K, T, y, ET::kF32, N, 0.f, s, v.path);
  }
}

// Max |y - ref| / max |ref| over rows [0, rows) of row-of-X tt (y: rows of N, ref: rows of `rows`); NaN -> inf.
double RelErr(const std::vector<double>& ref, const std::vector<float>& y, int tt, int rows, int N) {
  double maxRef = 0, maxErr = 0;
  for (int r = 0; r < rows; ++r) {
    const double want = ref[(size_t)tt * rows + r];
    maxRef = std::max(maxRef, std::fabs(want));
    const double e = std::fabs(want - y[(size_t)tt * N + r]);
    maxErr = std::isnan(e) ? INFINITY : std::max(maxErr, e);
  }
  return maxErr / std::max(1e-30, maxRef);
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t s = 0;
  uint32_t* sink;
  CK(cudaMalloc(&sink, 4));
  // Floor: best streaming read of 2 GiB.
  const size_t floorBytes = size_t(2) << 30;
  uint8_t* big;
  CK(cudaMalloc(&big, floorBytes));
  CK(cudaMemset(big, 1, floorBytes));
  float floorUs = 1e30f;
  for (int i = 0; i < 5; ++i)
    floorUs = std::min(floorUs, TimeUs(3, [&](int) { ReadKernel<<<prop.multiProcessorCount * 8, 512, 0, s>>>((const uint4*)big, floorBytes / 16, sink); }));
  CK(cudaFree(big));
  const double floorGBs = floorBytes / (floorUs * 1e3);
  std::printf("device: %s, %d SMs; read floor (2 GiB streaming read): %.0f GB/s\n\n", prop.name, prop.multiProcessorCount, floorGBs);
  std::printf("Times in us at T = 1 (X quantization included) for each variant: float, int16, dp4a-rR (R weight rows a\n"
              "warp; the engine uses R = 2), dp4a-rRs4 (K split over 4 warps; not used by the engine yet). The engine's default\n"
              "per type: Q8_0 float, Q4_0 / Q5_K / Q6_K int16, Q4_K dp4a-r2 (SWAPSERVE_QUANT_GEMV=float|int16|dp4a forces one).\n"
              "best: the fastest variant, its GB/s and %% of the floor. T=4: 4 rows of X. err: max rel err vs the host reference\n"
              "at T = 1 (dp4a-r2: vs the reference fed its int8-rounded X; 'vs X': against the float reference). ggml mmvq us\n"
              "excludes ggml's q8_1 quantization of X (its own column); V/ggml = ggml us / V us (> 1: faster than ggml).\n\n");
  std::printf("| shape (N x K) | type | MB |");
  for (const Variant& v : kVariants) std::printf(" %s |", v.name);
  std::printf(" best | GB/s | %% floor | int16 T=4 | dp4a T=4 | err float / int16 / dp4a | dp4a err vs X | ggml us | ggml GB/s | ggml q8_1 us |");
  for (const Variant& v : kVariants) std::printf(" %s/ggml |", v.name);
  std::printf(" dp4a rel diff vs ggml |\n|");
  for (int c = 0; c < 3 + kNumV + 10 + kNumV + 1; ++c) std::printf("---|");
  std::printf("\n");
  const int shapes[4][2] = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
  const QT types[5] = {QT::kQ8_0, QT::kQ4_0, QT::kQ4_K, QT::kQ5_K, QT::kQ6_K};
  double sumUs[5][kNumV] = {}, worstVsGgml[5][kNumV];
  for (auto& row : worstVsGgml) for (double& v : row) v = INFINITY;
  bool allOk = true, haveGgml = false;
  std::string prefill;  // the prefill-band lines, printed after the table
  for (auto& sh : shapes) {
    const int N = sh[0], K = sh[1];
    std::vector<float> xh(K);
    for (int k = 0; k < K; ++k) xh[k] = std::sin(0.37 * k) * 0.5f;
    std::vector<__nv_bfloat16> xb(K);
    for (int k = 0; k < K; ++k) { xb[k] = __float2bfloat16(xh[k]); xh[k] = Bf16ToF(xb[k]); }
    __nv_bfloat16* xd; float* xf; float* yd;
    CK(cudaMalloc(&xd, K * 2)); CK(cudaMalloc(&xf, K * 4)); CK(cudaMalloc(&yd, (size_t)N * 4));
    CK(cudaMemcpy(xd, xb.data(), K * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(xf, xh.data(), K * 4, cudaMemcpyHostToDevice));
    // 8 distinct rows of X for the T > 1 checks (row t scaled and phase-shifted; one row with a large outlier).
    std::vector<float> x8h((size_t)8 * K);
    std::vector<__nv_bfloat16> x8b((size_t)8 * K);
    for (int tt = 0; tt < 8; ++tt)
      for (int k = 0; k < K; ++k) {
        const float v = (tt == 5 && k == 77) ? 40.f : std::cos(0.11 * k + tt) * (0.25f + 0.3f * tt);
        x8b[(size_t)tt * K + k] = __float2bfloat16(v);
        x8h[(size_t)tt * K + k] = Bf16ToF(x8b[(size_t)tt * K + k]);
      }
    const std::vector<float> xq1 = swapserve::qcheck::Int8Rounded(xh), xq8 = swapserve::qcheck::Int8Rounded(x8h);
    __nv_bfloat16* x8d; float* y8d;
    CK(cudaMalloc(&x8d, (size_t)8 * K * 2)); CK(cudaMalloc(&y8d, (size_t)8 * N * 4));
    CK(cudaMemcpy(x8d, x8b.data(), (size_t)8 * K * 2, cudaMemcpyHostToDevice));
    // bf16 GEMV reference point on the same shape.
    {
      const size_t bytes = (size_t)N * K * 2;
      const int copies = (int)std::max<size_t>(1, (size_t(512) << 20) / bytes + 1);
      uint8_t* w;
      CK(cudaMalloc(&w, bytes * copies));
      FillKernel<<<1024, 256>>>(w, bytes * copies, 2, 0, 7);
      const float us = TimeUs(reps, [&](int i) {
        swapserve::cuda::LaunchGemv(w + bytes * (i % copies), ET::kBF16, N, K, xd, K, 1, yd, ET::kF32, N, 0.f, s);
      });
      std::printf("| %d x %d | BF16 | %.1f | %.1f (bf16 GEMV) |", N, K, bytes / 1e6, us);
      for (int c = 1; c < kNumV; ++c) std::printf(" - |");
      std::printf(" bf16 | %.0f | %.0f%% |", bytes / (us * 1e3), 100 * bytes / (us * 1e3) / floorGBs);
      for (int c = 0; c < 7 + kNumV + 1; ++c) std::printf(" - |");
      std::printf("\n");
      CK(cudaFree(w));
    }
    for (int ti = 0; ti < 5; ++ti) {
      const QT t = types[ti];
      const size_t rowBytes = swapserve::cuda::QtRowBytes(t, K), bytes = rowBytes * N;
      const int copies = (int)std::max<size_t>(1, (size_t(512) << 20) / bytes + 1);
      uint8_t* w;
      CK(cudaMalloc(&w, bytes * copies));
      FillKernel<<<1024, 256>>>(w, bytes * copies, (int)swapserve::cuda::QtBlockBytes(t), (int)t, 11);
      CK(cudaDeviceSynchronize());
      // Correctness (copy 0), every variant: T = 1 on the first 256 rows, then T = 8 distinct rows of X (more than
      // one launch's shared memory holds at K = 14336 for int16) on the first 64 rows.
      const int rows1 = std::min(N, 256), rows8 = std::min(N, 64);
      std::vector<uint8_t> wh(rowBytes * rows1);
      CK(cudaMemcpy(wh.data(), w, wh.size(), cudaMemcpyDeviceToHost));
      const std::vector<double> ref1 = HostRef(t, wh, xh.data(), 1, rows1, K);
      const std::vector<double> ref8 = HostRef(t, wh, x8h.data(), 8, rows8, K);
      const std::vector<double> refq1 = HostRef(t, wh, xq1.data(), 1, rows1, K);
      const std::vector<double> refq8 = HostRef(t, wh, xq8.data(), 8, rows8, K);
      double err[kNumV] = {}, dp4aVsX = 0;
      for (int vi = 0; vi < kNumV; ++vi) {
        const Variant& v = kVariants[vi];
        const bool q8 = v.path == QGemvPath::kDp4a;
        for (int T : {1, 8}) {
          const int rows = T == 1 ? rows1 : rows8;
          const std::vector<double>& ref = T == 1 ? (q8 ? refq1 : ref1) : (q8 ? refq8 : ref8);
          CK(cudaMemset(y8d, 0xff, (size_t)N * 8 * 4));  // NaN: an output never written fails the check
          Launch(v, w, t, N, K, T == 1 ? xd : x8d, T, y8d, s);
          CK(cudaDeviceSynchronize());
          std::vector<float> y((size_t)N * T);
          CK(cudaMemcpy(y.data(), y8d, y.size() * 4, cudaMemcpyDeviceToHost));
          for (int tt = 0; tt < T; ++tt) {
            const double r = RelErr(ref, y, tt, rows, N);
            if (!(r < kTol)) {
              allOk = false;
              std::fprintf(stderr, "MISMATCH %s %d x %d %s T=%d row-of-X %d: max rel err %.3e (bound %.0e)\n",
                           Name(t), N, K, v.name, T, tt, r, kTol);
            }
            if (q8) {
              const double rx = RelErr(T == 1 ? ref1 : ref8, y, tt, rows, N);
              if (!(rx < kDp4aVsX)) {
                allOk = false;
                std::fprintf(stderr, "MISMATCH %s %d x %d %s T=%d row-of-X %d: max rel err vs X %.3e (bound %.0e)\n",
                             Name(t), N, K, v.name, T, tt, rx, kDp4aVsX);
              }
              if (T == 1 && v.rows == 2 && v.split == 1) dp4aVsX = rx;
            }
            if (T == 1) err[vi] = r;
          }
        }
      }
      // A NaN activation (row 0 of X, value 100 here) must give NaN outputs on every path, not be rounded away.
      {
        const __nv_bfloat16 nanB = __float2bfloat16(NAN);
        CK(cudaMemcpy(x8d + 100, &nanB, 2, cudaMemcpyHostToDevice));
        for (const Variant& v : kVariants) {
          Launch(v, w, t, N, K, x8d, 1, y8d, s);
          float y0[4];
          CK(cudaMemcpy(y0, y8d, sizeof y0, cudaMemcpyDeviceToHost));
          if (!(std::isnan(y0[0]) && std::isnan(y0[3]))) {
            allOk = false;
            std::fprintf(stderr, "MISMATCH %s %d x %d %s: a NaN in X gave %g, %g\n", Name(t), N, K, v.name, y0[0], y0[3]);
          }
        }
        CK(cudaMemcpy(x8d + 100, x8b.data() + 100, 2, cudaMemcpyHostToDevice));
      }
      float us[kNumV];
      int best = 0;
      for (int vi = 0; vi < kNumV; ++vi) {
        us[vi] = TimeUs(reps, [&](int i) { Launch(kVariants[vi], w + bytes * (i % copies), t, N, K, xd, 1, yd, s); });
        sumUs[ti][vi] += us[vi];
        if (us[vi] < us[best]) best = vi;
      }
      const float us4i = TimeUs(reps, [&](int i) { Launch(kVariants[1], w + bytes * (i % copies), t, N, K, x8d, 4, y8d, s); });
      const float us4d = TimeUs(reps, [&](int i) { Launch(kVariants[3], w + bytes * (i % copies), t, N, K, x8d, 4, y8d, s); });
      const double gbs = bytes / (us[best] * 1e3);
      std::string g = "- | - | -";
      std::string ratios;
      for (int vi = 0; vi < kNumV; ++vi) ratios += " - |";
      std::string gdiff = "-";
#ifdef WITH_GGML
      {
        haveGgml = true;
        const int Kpad = (K + 511) / 512 * 512;
        void* vy; float* yg;
        CK(cudaMalloc(&vy, (size_t)Kpad / 32 * 36 + 512)); CK(cudaMalloc(&yg, (size_t)N * 4));
        CK(cudaMemset(vy, 0, (size_t)Kpad / 32 * 36 + 512));
        GgmlQuantizeQ8_1(xf, vy, GgmlType(t), K, Kpad, s);
        GgmlMmvq(w, GgmlType(t), vy, yg, N, K, Kpad, s);
        Launch(kVariants[3], w, t, N, K, xd, 1, yd, s);
        CK(cudaDeviceSynchronize());
        std::vector<float> y(N), yr(N);
        CK(cudaMemcpy(y.data(), yd, (size_t)N * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(yr.data(), yg, (size_t)N * 4, cudaMemcpyDeviceToHost));
        double md = 0, mr = 0;
        for (int r = 0; r < N; ++r) { md = std::max(md, (double)std::fabs(yr[r] - y[r])); mr = std::max(mr, (double)std::fabs(y[r])); }
        const float gus = TimeUs(reps, [&](int i) { GgmlMmvq(w + bytes * (i % copies), GgmlType(t), vy, yg, N, K, Kpad, s); });
        const float qus = TimeUs(reps, [&](int) { GgmlQuantizeQ8_1(xf, vy, GgmlType(t), K, Kpad, s); });
        char buf[256];
        std::snprintf(buf, sizeof buf, "%.1f | %.0f | %.1f", gus, bytes / (gus * 1e3), qus);
        g = buf;
        ratios.clear();
        for (int vi = 0; vi < kNumV; ++vi) {
          std::snprintf(buf, sizeof buf, " %.2fx |", gus / us[vi]);
          ratios += buf;
          worstVsGgml[ti][vi] = std::min(worstVsGgml[ti][vi], (double)(gus / us[vi]));
        }
        std::snprintf(buf, sizeof buf, "%.1e", md / std::max(1e-30, mr));
        gdiff = buf;
        CK(cudaFree(vy)); CK(cudaFree(yg));
      }
#endif
      std::printf("| %d x %d | %s | %.1f |", N, K, Name(t), bytes / 1e6);
      for (int vi = 0; vi < kNumV; ++vi) std::printf(" %.1f |", us[vi]);
      std::printf(" %s | %.0f | %.0f%% | %.1f | %.1f | %.1e / %.1e / %.1e | %.1e | %s |%s %s |\n", kVariants[best].name, gbs,
                  100 * gbs / floorGBs, us4i, us4d, err[0], err[1], err[3], dp4aVsX, g.c_str(), ratios.c_str(), gdiff.c_str());
      CK(cudaFree(w));
    }
    // Prefill path: one band of rows dequantized to bf16 (what the backend feeds cuBLASLt), 4096 x K of Q4_K.
    {
      const QT t = QT::kQ4_K;
      const size_t bytes = swapserve::cuda::QtRowBytes(t, K) * 4096;
      uint8_t* w; void* out;
      CK(cudaMalloc(&w, bytes)); CK(cudaMalloc(&out, (size_t)4096 * K * 2));
      FillKernel<<<1024, 256>>>(w, bytes, 144, 5, 3);
      const float us = TimeUs(reps, [&](int) { swapserve::cuda::LaunchDequantRows(w, t, 0, 4096, K, out, s); });
      char line[256];
      std::snprintf(line, sizeof line, "prefill band: 4096 x %d Q4_K dequant->bf16: %.1f MB read, %.1f us, %.0f GB/s read+write (%.0f%% of the floor)\n",
                    K, bytes / 1e6, us, (bytes + 4096.0 * K * 2) / (us * 1e3), 100 * (bytes + 4096.0 * K * 2) / (us * 1e3) / floorGBs);
      prefill += line;
      CK(cudaFree(w)); CK(cudaFree(out));
    }
    CK(cudaFree(xd)); CK(cudaFree(xf)); CK(cudaFree(yd)); CK(cudaFree(x8d)); CK(cudaFree(y8d));
  }
  std::printf("\n%s\n", prefill.c_str());
  // The fastest variant per type: least summed T = 1 time over the shapes; and how it fares against ggml.
  std::printf("fastest variant per type (least summed T = 1 us over the %d shapes; min over shapes of ggml us / its us):\n",
              (int)(sizeof shapes / sizeof shapes[0]));
  for (int ti = 0; ti < 5; ++ti) {
    int best = 0;
    for (int vi = 1; vi < kNumV; ++vi)
      if (sumUs[ti][vi] < sumUs[ti][best]) best = vi;
    std::printf("  %s: %s (%.1f us;", Name(types[ti]), kVariants[best].name, sumUs[ti][best]);
    for (int vi = 0; vi < kNumV; ++vi)
      if (vi != best) std::printf(" %s %.1f", kVariants[vi].name, sumUs[ti][vi]);
    if (haveGgml) std::printf(") vs ggml: %.2fx at worst\n", worstVsGgml[ti][best]);
    else std::printf("; no ggml in this build)\n");
  }
  std::printf("\nswapserve quant GEMV vs host reference: %s\n",
              allOk ? "OK (max rel err < 1e-4, every variant, T = 1 on 256 rows and T = 8 on 64 rows per case; dp4a vs its "
                      "int8-rounded X, and < 5e-2 vs X)"
                    : "MISMATCH (see stderr)");
  return allOk ? 0 : 2;
}
