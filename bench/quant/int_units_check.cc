// CPU check of the int16 decode GEMV's units (engine/cuda/quant_dot.cuh, compiled here by g++): the kernel of
// engine/cuda/quant_gemv.cu replayed on the host — X quantized per 32 values into the permuted slots (D::Slot), each
// lane's units (D::Unit) dotted with their slots (SlotOf) by an exact emulation of __dp4a — against the float
// reference of engine/quant_blocks.h, for every type, on random blocks and rows of X with outliers and zero blocks.
// Two bounds: against the reference fed the int16-rounded X (x16 = d * round(x / d), the same float ops as the
// kernel, so only float rounding differs): 1e-5 — catches a misplaced value, scale, min or slot without a GPU; and
// against the reference fed X itself: 1e-3 (the 15-bit rounding; up to ~1e-4 here, where a 30.0 outlier shares its
// 32-value block with values ~1 whose step is then 30/32512). Exit status 1 on a mismatch.
//   g++ -std=c++17 -O2 -Inative/src bench/quant/int_units_check.cc -o /tmp/int_units_check
//   (test/quant/int-units.test.ts and bench/quant/build.sh build and run it.)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "engine/cuda/quant_dot.cuh"
#include "check_util.h"

namespace {

using namespace swapserve;
using namespace swapserve::qcheck;
using namespace swapserve::cuda::qdot;  // int4 / make_int4 (its own where the CUDA headers are absent)

int Dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; ++i) c += static_cast<int8_t>(a >> (8 * i)) * static_cast<int8_t>(b >> (8 * i));
  return c;
}

// The kernel's prologue and row loop for row n of W against X (T rows of K), as quant_gemv.cu does them.
template <typename D>
std::vector<double> IntPath(const std::vector<uint8_t>& w, int rows, const std::vector<float>& x, int T, int K) {
  const int units = K / D::kElems * D::kUnits;
  const int slots = (units + 31) / 32 * 32 * D::kM;
  std::vector<int4> xq(static_cast<size_t>(T) * slots, make_int4(0x55555555, 0, 0, 0));
  std::vector<float> xs(static_cast<size_t>(T) * slots, NAN), xd(static_cast<size_t>(T) * (K / 32), NAN);
  for (int t = 0; t < T; ++t)
    for (int b = 0; b < K / 32; ++b) {
      const float* xb = x.data() + static_cast<size_t>(t) * K + 32 * b;
      float amax = 0.f;
      for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
      const float d = amax / 32512.f, inv = amax > 0.f ? 32512.f / amax : 0.f;
      xd[static_cast<size_t>(t) * (K / 32) + b] = d;
      for (int r = 0; r < 4; ++r) {
        uint32_t hw[2] = {0, 0}, lw[2] = {0, 0};
        int sum = 0;
        for (int j = 0; j < 8; ++j) {
          const int q = static_cast<int>(std::nearbyint(xb[8 * r + j] * inv));
          const int lo = ((q + 128) & 255) - 128, hi = (q - lo) >> 8;
          if (hi < -127 || hi > 127 || 256 * hi + lo != q) { std::fprintf(stderr, "bad split of %d\n", q); std::exit(1); }
          hw[j >> 2] |= static_cast<uint32_t>(hi & 255) << (8 * (j & 3));
          lw[j >> 2] |= static_cast<uint32_t>(lo & 255) << (8 * (j & 3));
          sum += q;
        }
        const size_t at = static_cast<size_t>(t) * slots + D::Slot(4 * b + r);
        xq[at] = make_int4(static_cast<int>(hw[0]), static_cast<int>(lw[0]), static_cast<int>(hw[1]), static_cast<int>(lw[1]));
        xs[at] = d * static_cast<float>(sum);
      }
    }
  const size_t rowBytes = static_cast<size_t>(K / D::kElems) * D::kBytes;
  std::vector<double> y(static_cast<size_t>(T) * rows);
  for (int n = 0; n < rows; ++n) {
    std::vector<double> acc(T, 0.0);
    for (int u = 0; u < units; ++u) {
      int wq[2 * D::kM];
      float ds[D::kM], dm[D::kM] = {};
      int b32[D::kM];
      D::Unit(w.data() + n * rowBytes, u, wq, ds, dm, b32);
      const int s0 = SlotOf<D::kM>(u, 0);
      for (int t = 0; t < T; ++t)
        for (int m = 0; m < D::kM; ++m) {
          const size_t at = static_cast<size_t>(t) * slots + s0 + 32 * m;
          const int4 q = xq[at];
          const int hi = Dp4a(wq[2 * m + 1], q.z, Dp4a(wq[2 * m], q.x, 0));
          const int lo = Dp4a(wq[2 * m + 1], q.w, Dp4a(wq[2 * m], q.y, 0));
          acc[t] += static_cast<double>(ds[m] * xd[static_cast<size_t>(t) * (K / 32) + b32[m]]) * (hi * 256 + lo);
          if (D::kMins) acc[t] -= static_cast<double>(dm[m]) * xs[at];
        }
    }
    for (int t = 0; t < T; ++t) y[static_cast<size_t>(t) * rows + n] = acc[t];
  }
  return y;
}

// X with each value replaced by its int16 rounding d * q (the values the int16 path multiplies).
std::vector<float> Int16Rounded(const std::vector<float>& x, int K) {
  std::vector<float> r(x.size());
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[32 * b + j]));
    const float d = amax / 32512.f, inv = amax > 0.f ? 32512.f / amax : 0.f;
    for (int j = 0; j < 32; ++j) r[32 * b + j] = d * static_cast<float>(std::nearbyint(x[32 * b + j] * inv));
  }
  (void)K;
  return r;
}

}  // namespace

int main() {
  bool ok = true;
  const char* names[] = {"", "", "", "Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"};
  for (int K : {768, 4096}) {
    const int rows = 24, T = 3;
    const std::vector<float> x = TestX(T, K);
    for (int qt = 3; qt <= 7; ++qt) {
      qblocks::Dispatch(qt, [&](auto blk) {
        using B = decltype(blk);
        using D = typename cuda::qdot::Of<B>::T;
        const std::vector<uint8_t> w = Fill(static_cast<size_t>(rows) * (K / B::kElems) * B::kBytes, B::kBytes, qt, 11 + K);
        const std::vector<double> y = IntPath<D>(w, rows, x, T, K);
        const std::vector<float> x16 = Int16Rounded(x, K);
        for (int t = 0; t < T; ++t) {
          double rel[2];
          for (int v = 0; v < 2; ++v) {
            const std::vector<double> ref = FloatRef<B>(w, rows, (v ? x : x16).data() + static_cast<size_t>(t) * K, K);
            double maxRef = 0, maxErr = 0;
            for (int r = 0; r < rows; ++r) {
              maxRef = std::fmax(maxRef, std::fabs(ref[r]));
              const double e = std::fabs(ref[r] - y[static_cast<size_t>(t) * rows + r]);
              maxErr = std::isnan(e) ? INFINITY : std::fmax(maxErr, e);
            }
            rel[v] = maxErr / std::fmax(1e-30, maxRef);
          }
          const bool good = rel[0] < 1e-5 && rel[1] < 1e-3;
          ok = ok && good;
          std::printf("%s K=%d row-of-X %d: max rel err %.2e vs int16-rounded X (< 1e-5), %.2e vs X (< 1e-3) %s\n",
                      names[qt], K, t, rel[0], rel[1], good ? "ok" : "MISMATCH");
        }
      });
    }
  }
  std::printf("%s\n", ok ? "int16 units: OK" : "int16 units: MISMATCH");
  return ok ? 0 : 1;
}
