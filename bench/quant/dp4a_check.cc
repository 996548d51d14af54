// CPU check of the dp4a decode GEMV's units (engine/cuda/quant_dp4a.cuh, compiled here by g++): the kernel of
// engine/cuda/quant_dp4a.cu replayed on the host — X quantized per 32 values to int8 (QuantScale, RoundI) into the
// permuted 16-byte slots (D::Slot), each lane's units loaded (D::Load, Ld128U at every 2-byte offset) and dotted
// (D::Dot, an exact emulation of __dp4a) — against the float reference of engine/quant_blocks.h, for every type, on
// random blocks, rows of W at varied alignments (K = 1280: 210-byte Q6_K super-blocks) and rows of X with outliers
// and zero blocks. Two bounds: against the reference fed the int8-rounded X (x8 = d * q, the values the kernel
// multiplies, so only float rounding differs): 1e-5 — catches a misplaced value, scale, min, sum or slot; and against
// the reference fed X itself: 3e-2 (the 8-bit rounding, ~3e-3 here as ggml's q8_1; more where an outlier shares its
// block). Exit status 1 on a mismatch.
//   g++ -std=c++17 -O2 -Wall -Wextra -Inative/src bench/quant/dp4a_check.cc -o /tmp/dp4a_check
//   (test/quant/int-units.test.ts and bench/quant/build.sh build and run it.)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "engine/cuda/quant_dp4a.cuh"
#include "check_util.h"

namespace {

using namespace swapserve;
using namespace swapserve::qcheck;
using namespace swapserve::cuda::q8;

// One row of X quantized as the kernel's prologue does: q (K int8), d per 32, d * sum(q) per 16.
struct XQ {
  std::vector<int8_t> q;
  std::vector<float> d, s16;
};
XQ Quantize(const float* x, int K) {
  XQ r{std::vector<int8_t>(K), std::vector<float>(K / 32), std::vector<float>(K / 16)};
  for (int b = 0; b < K / 32; ++b) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[32 * b + j]));
    float d, inv;
    QuantScale(amax, d, inv);
    r.d[b] = d;
    for (int h = 0; h < 2; ++h) {
      int sum = 0;
      for (int j = 16 * h; j < 16 * h + 16; ++j) {
        const int q = RoundI(x[32 * b + j] * inv);
        if (q < -127 || q > 127) { std::fprintf(stderr, "q %d out of int8\n", q); std::exit(1); }
        r.q[32 * b + j] = static_cast<int8_t>(q);
        sum += q;
      }
      r.s16[2 * b + h] = d * static_cast<float>(sum);
    }
  }
  return r;
}

// The kernel's row loop for rows [0, rows) of W against one row of X (its units in any order: sums in double).
template <typename D>
std::vector<double> Dp4aPath(const std::vector<uint8_t>& w, int rows, const XQ& x, int K) {
  const int units = K / D::kElems * D::kUnits;
  const int slots = (units + 31) / 32 * 32 * D::kS;
  std::vector<int4> xq(slots, make_int4(0x55555555, 0x55555555, 0x55555555, 0x55555555));
  std::vector<bool> used(slots, false);
  for (int k16 = 0; k16 < K / 16; ++k16) {
    uint32_t v[4];
    std::memcpy(v, x.q.data() + 16 * k16, 16);
    const int at = D::Slot(k16);
    if (at < 0 || at >= slots || used[at]) { std::fprintf(stderr, "slot %d of piece %d taken twice or out of range\n", at, k16); std::exit(1); }
    used[at] = true;
    xq[at] = make_int4(static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2]), static_cast<int>(v[3]));
  }
  const size_t rowBytes = static_cast<size_t>(K / D::kElems) * D::kBytes;
  std::vector<double> y(rows, 0.0);
  for (int n = 0; n < rows; ++n)
    for (int u = 0; u < units; ++u) {
      typename D::W wt;
      D::Load(w.data() + n * rowBytes, u, wt);
      y[n] += D::Dot(wt, u, xq.data(), x.d.data(), x.s16.data());
    }
  return y;
}


}  // namespace

int main() {
  bool ok = true;
  // Ld128U at every 2-byte offset of a 16-byte aligned buffer.
  {
    alignas(16) uint8_t buf[64];
    for (int i = 0; i < 64; ++i) buf[i] = static_cast<uint8_t>(Hash(i, 5));
    bool good = true;
    for (int o = 0; o < 32; o += 2) {
      const uint4 v = Ld128U(buf + o);
      uint32_t want[4];
      std::memcpy(want, buf + o, 16);
      good = good && v.x == want[0] && v.y == want[1] && v.z == want[2] && v.w == want[3];
    }
    ok = ok && good;
    std::printf("Ld128U at 2-byte offsets 0..30: %s\n", good ? "ok" : "MISMATCH");
  }
  const char* names[] = {"", "", "", "Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"};
  for (int K : {768, 1280, 4096}) {
    const int rows = 24, T = 3;
    const std::vector<float> x = TestX(T, K);
    for (int qt = 3; qt <= 7; ++qt) {
      qblocks::Dispatch(qt, [&](auto blk) {
        using B = decltype(blk);
        using D = typename cuda::q8::Of<B>::T;
        const std::vector<uint8_t> w = Fill(static_cast<size_t>(rows) * (K / B::kElems) * B::kBytes, B::kBytes, qt, 11 + K, 16);
        for (int t = 0; t < T; ++t) {
          const float* xt = x.data() + static_cast<size_t>(t) * K;
          const XQ xq = Quantize(xt, K);
          std::vector<float> x8(K);
          for (int k = 0; k < K; ++k) x8[k] = xq.d[k / 32] * static_cast<float>(xq.q[k]);
          const std::vector<double> y = Dp4aPath<D>(w, rows, xq, K);
          const double r8 = RelErr(FloatRef<B>(w, rows, x8.data(), K), y);
          const double rx = RelErr(FloatRef<B>(w, rows, xt, K), y);
          const bool good = r8 < 1e-5 && rx < 3e-2;
          ok = ok && good;
          std::printf("%s K=%d row-of-X %d: max rel err %.2e vs int8-rounded X (< 1e-5), %.2e vs X (< 3e-2) %s\n",
                      names[qt], K, t, r8, rx, good ? "ok" : "MISMATCH");
        }
      });
    }
  }
  std::printf("%s\n", ok ? "dp4a units: OK" : "dp4a units: MISMATCH");
  return ok ? 0 : 1;
}
