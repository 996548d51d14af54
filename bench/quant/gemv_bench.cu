// Quantized GEMV bench (GPU machine): swapserve's LaunchQuantGemv per type on Llama-3.1-8B shapes, both paths (the
// default int16 kernel and the float kernel), checked against a host reference (engine/quant_blocks.h on the CPU,
// double sums) for T = 1 and for T = 8 distinct rows of X (and a NaN in X must reach the outputs), and timed in GB/s of weight bytes against the measured
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
#include "engine/quant_blocks.h"

#ifdef WITH_GGML
void GgmlQuantizeQ8_1(const float* x, void* vy, int type, int K, int Kpad, cudaStream_t s);
void GgmlMmvq(const void* W, int type, const void* vy, float* dst, int N, int K, int Kpad, cudaStream_t s);
#endif

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_)); std::exit(1); } } while (0)

using swapserve::cuda::ET;
using swapserve::cuda::QGemvPath;
using swapserve::cuda::QT;

// Max |gpu - host| / max |host| allowed, for both paths. The float path sums float products (~1e-7). The int16 path
// quantizes X per 32 values to 15 bits (step amax/32512, error <= 7.7e-6 of amax for this X): a K-term dot then
// differs by ~sqrt(K) * rms(w) * 4.4e-6 of amax, ~1e-5 of the largest output here. 1e-4 keeps ~8x margin over that
// and is far below what any misplaced value, scale or min does (>= 1e-2).
constexpr double kTol = 1e-4;

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
  std::printf("swapserve us: the default int16 path at T = 1, its X quantization included; float path us: the float kernel\n"
              "(SWAPSERVE_QUANT_GEMV=float); T=4 us: int16 with 4 rows of X; ggml mmvq us excludes ggml's q8_1 quantization of X\n"
              "(its own column). max rel err vs host: int16 path, T = 1.\n\n");
  std::printf("| shape (N x K) | type | MB | swapserve us | GB/s | %% floor | float path us | T=4 us | max rel err vs host | ggml mmvq us | ggml GB/s | ggml q8_1 us | ours/ggml | rel diff vs ggml |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  const int shapes[4][2] = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
  const QT types[5] = {QT::kQ8_0, QT::kQ4_0, QT::kQ4_K, QT::kQ5_K, QT::kQ6_K};
  bool allOk = true;
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
      std::printf("| %d x %d | BF16 | %.1f | %.1f | %.0f | %.0f%% | - | - | - | - | - | - | - | - |\n", N, K, bytes / 1e6, us,
                  bytes / (us * 1e3), 100 * bytes / (us * 1e3) / floorGBs);
      CK(cudaFree(w));
    }
    for (QT t : types) {
      const size_t rowBytes = swapserve::cuda::QtRowBytes(t, K), bytes = rowBytes * N;
      const int copies = (int)std::max<size_t>(1, (size_t(512) << 20) / bytes + 1);
      uint8_t* w;
      CK(cudaMalloc(&w, bytes * copies));
      FillKernel<<<1024, 256>>>(w, bytes * copies, (int)swapserve::cuda::QtBlockBytes(t), (int)t, 11);
      CK(cudaDeviceSynchronize());
      // Correctness (copy 0), both paths: T = 1 on the first 256 rows, then T = 8 distinct rows of X (more than one
      // launch's shared memory holds at K = 14336) on the first 64 rows.
      double rel = 0;
      std::vector<uint8_t> wh(rowBytes * std::min(N, 256));
      CK(cudaMemcpy(wh.data(), w, wh.size(), cudaMemcpyDeviceToHost));
      const std::vector<double> ref1 = HostRef(t, wh, xh.data(), 1, std::min(N, 256), K);
      const std::vector<double> ref8 = HostRef(t, wh, x8h.data(), 8, std::min(N, 64), K);
      for (QGemvPath path : {QGemvPath::kInt16, QGemvPath::kFloat}) {
        const char* pn = path == QGemvPath::kInt16 ? "int16" : "float";
        for (int T : {1, 8}) {
          const int rows = std::min(N, T == 1 ? 256 : 64);
          const std::vector<double>& ref = T == 1 ? ref1 : ref8;
          CK(cudaMemset(y8d, 0xff, (size_t)N * 8 * 4));  // NaN: an output never written fails the check
          swapserve::cuda::LaunchQuantGemv(w, t, N, K, T == 1 ? xd : x8d, K, T, y8d, ET::kF32, N, 0.f, s, path);
          CK(cudaDeviceSynchronize());
          std::vector<float> y((size_t)N * T);
          CK(cudaMemcpy(y.data(), y8d, y.size() * 4, cudaMemcpyDeviceToHost));
          for (int tt = 0; tt < T; ++tt) {
            double maxRef = 0, maxErr = 0;
            for (int r = 0; r < rows; ++r) {
              const double want = ref[(size_t)tt * rows + r];
              maxRef = std::max(maxRef, std::fabs(want));
              const double e = std::fabs(want - y[(size_t)tt * N + r]);
              maxErr = std::isnan(e) ? INFINITY : std::max(maxErr, e);
            }
            const double r = maxErr / std::max(1e-30, maxRef);
            if (!(r < kTol)) {
              allOk = false;
              std::fprintf(stderr, "MISMATCH %s %d x %d %s path T=%d row-of-X %d: max rel err %.3e (bound %.0e)\n",
                           Name(t), N, K, pn, T, tt, r, kTol);
            }
            if (path == QGemvPath::kInt16 && T == 1) rel = r;
          }
        }
      }
      // A NaN activation (row 0 of X, value 100 here) must give NaN outputs on both paths, not be rounded away.
      {
        const __nv_bfloat16 nanB = __float2bfloat16(NAN);
        CK(cudaMemcpy(x8d + 100, &nanB, 2, cudaMemcpyHostToDevice));
        for (QGemvPath path : {QGemvPath::kInt16, QGemvPath::kFloat}) {
          swapserve::cuda::LaunchQuantGemv(w, t, N, K, x8d, K, 1, y8d, ET::kF32, N, 0.f, s, path);
          float y0[4];
          CK(cudaMemcpy(y0, y8d, sizeof y0, cudaMemcpyDeviceToHost));
          if (!(std::isnan(y0[0]) && std::isnan(y0[3]))) {
            allOk = false;
            std::fprintf(stderr, "MISMATCH %s %d x %d %s path: a NaN in X gave %g, %g\n", Name(t), N, K,
                         path == QGemvPath::kInt16 ? "int16" : "float", y0[0], y0[3]);
          }
        }
        CK(cudaMemcpy(x8d + 100, x8b.data() + 100, 2, cudaMemcpyHostToDevice));
      }
      const float us = TimeUs(reps, [&](int i) {
        swapserve::cuda::LaunchQuantGemv(w + bytes * (i % copies), t, N, K, xd, K, 1, yd, ET::kF32, N, 0.f, s, QGemvPath::kInt16);
      });
      const float fus = TimeUs(reps, [&](int i) {
        swapserve::cuda::LaunchQuantGemv(w + bytes * (i % copies), t, N, K, xd, K, 1, yd, ET::kF32, N, 0.f, s, QGemvPath::kFloat);
      });
      const float us4 = TimeUs(reps, [&](int i) {
        swapserve::cuda::LaunchQuantGemv(w + bytes * (i % copies), t, N, K, x8d, K, 4, y8d, ET::kF32, N, 0.f, s, QGemvPath::kInt16);
      });
      const double gbs = bytes / (us * 1e3);
      std::string g = "- | - | - | - | -";
#ifdef WITH_GGML
      {
        const int Kpad = (K + 511) / 512 * 512;
        void* vy; float* yg;
        CK(cudaMalloc(&vy, (size_t)Kpad / 32 * 36 + 512)); CK(cudaMalloc(&yg, (size_t)N * 4));
        CK(cudaMemset(vy, 0, (size_t)Kpad / 32 * 36 + 512));
        GgmlQuantizeQ8_1(xf, vy, GgmlType(t), K, Kpad, s);
        GgmlMmvq(w, GgmlType(t), vy, yg, N, K, Kpad, s);
        swapserve::cuda::LaunchQuantGemv(w, t, N, K, xd, K, 1, yd, ET::kF32, N, 0.f, s, QGemvPath::kInt16);
        CK(cudaDeviceSynchronize());
        std::vector<float> y(N), yr(N);
        CK(cudaMemcpy(y.data(), yd, (size_t)N * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(yr.data(), yg, (size_t)N * 4, cudaMemcpyDeviceToHost));
        double md = 0, mr = 0;
        for (int r = 0; r < N; ++r) { md = std::max(md, (double)std::fabs(yr[r] - y[r])); mr = std::max(mr, (double)std::fabs(y[r])); }
        const float gus = TimeUs(reps, [&](int i) { GgmlMmvq(w + bytes * (i % copies), GgmlType(t), vy, yg, N, K, Kpad, s); });
        const float qus = TimeUs(reps, [&](int) { GgmlQuantizeQ8_1(xf, vy, GgmlType(t), K, Kpad, s); });
        char buf[256];
        std::snprintf(buf, sizeof buf, "%.1f | %.0f | %.1f | %.2fx | %.1e", gus, bytes / (gus * 1e3), qus, gus / us, md / std::max(1e-30, mr));
        g = buf;
        CK(cudaFree(vy)); CK(cudaFree(yg));
      }
#endif
      std::printf("| %d x %d | %s | %.1f | %.1f | %.0f | %.0f%% | %.1f | %.1f | %.1e | %s |\n", N, K, Name(t), bytes / 1e6, us,
                  gbs, 100 * gbs / floorGBs, fus, us4, rel, g.c_str());
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
      std::printf("| 4096 x %d | Q4_K dequant→bf16 (prefill band) | %.1f | %.1f | %.0f (read+write) | %.0f%% | - | - | - | - | - | - | - | - |\n",
                  K, bytes / 1e6, us, (bytes + 4096.0 * K * 2) / (us * 1e3), 100 * (bytes + 4096.0 * K * 2) / (us * 1e3) / floorGBs);
      CK(cudaFree(w)); CK(cudaFree(out));
    }
    CK(cudaFree(xd)); CK(cudaFree(xf)); CK(cudaFree(yd)); CK(cudaFree(x8d)); CK(cudaFree(y8d));
  }
  std::printf("\nswapserve quant GEMV vs host reference: %s\n",
              allOk ? "OK (max rel err < 1e-4, int16 and float paths, T = 1 on 256 rows and T = 8 on 64 rows per case)"
                    : "MISMATCH (see stderr)");
  return allOk ? 0 : 2;
}
