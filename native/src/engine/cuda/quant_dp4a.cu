// The `dp4a` decode GEMV of quantized weights (the default for Q4_K, or SWAPSERVE_QUANT_GEMV=dp4a; why it exists and how it compares with
// the `float` and `int16` kernels: the design note of quant_gemv.cu). Each thread block quantizes the T rows of X
// it needs to int8 in shared memory (per 32 values, scale amax / 127, as ggml's q8_1), then its warps stream weight
// rows: a warp takes R consecutive rows (R = rowsPerWarp at T = 1, 1 otherwise), lane l units l, l+32, .. of each
// (quant_dp4a.cuh), 16-byte loads of weight bytes, one __dp4a per 4 weights, int32 sums per 16 weights scaled in
// float, a warp-shuffle reduction per (row of X, row of W).
#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/cuda_check.h"
#include "engine/cuda/common.cuh"
#include "engine/cuda/quant.h"
#include "engine/cuda/quant_dp4a_kernels.cuh"

namespace swapserve::cuda {

namespace {

using namespace dp4a;

template <typename D, typename TY, int NT, int R, int S = 1>
void LaunchDp4a(cudaStream_t s, const uint8_t* w, int N, int K, const bf16* x, int ldx, TY* y, int ldy, float beta) {
  auto* kernel = QuantGemvDp4aKernel<D, TY, NT, R, S>;
  const size_t smem = XL8<D>(K).Bytes(NT);
  const int threads = kDpWarps * 32;
  const LaunchInfo o = QueryLaunch(reinterpret_cast<const void*>(kernel), threads, smem);
  SS_REQUIRE(o.perSm > 0, "quant gemv: the dp4a kernel does not fit on an SM");
  const int groups = (N + R - 1) / R;
  constexpr int kGroupsPerBlock = kDpWarps / S;
  const int blocks = std::min((groups + kGroupsPerBlock - 1) / kGroupsPerBlock, kDpWaves * o.perSm * o.sms);
  LaunchK(kernel, blocks, threads, smem, s, w, N, K, x, ldx, y, ldy, beta);
}

template <typename D, typename TY>
void RunDp4a(cudaStream_t s, const uint8_t* w, int N, int K, const bf16* x, int ldx, int T, TY* y, int ldy,
             float beta, int rowsPerWarp, int splitK) {
  if (T == 1 && splitK == 4) {
    if (rowsPerWarp == 1) LaunchDp4a<D, TY, 1, 1, 4>(s, w, N, K, x, ldx, y, ldy, beta);
    else LaunchDp4a<D, TY, 1, 2, 4>(s, w, N, K, x, ldx, y, ldy, beta);
    return;
  }
  if (T == 1) {
    switch (rowsPerWarp) {
      case 1: LaunchDp4a<D, TY, 1, 1>(s, w, N, K, x, ldx, y, ldy, beta); return;
      case 4: LaunchDp4a<D, TY, 1, 4>(s, w, N, K, x, ldx, y, ldy, beta); return;
      default: LaunchDp4a<D, TY, 1, 2>(s, w, N, K, x, ldx, y, ldy, beta); return;
    }
  }
  switch (T) {
#define SS_QGEMV_DP4A(nt) case nt: LaunchDp4a<D, TY, nt, 1>(s, w, N, K, x, ldx, y, ldy, beta); break;
    SS_QGEMV_DP4A(2) SS_QGEMV_DP4A(3) SS_QGEMV_DP4A(4) SS_QGEMV_DP4A(5) SS_QGEMV_DP4A(6) SS_QGEMV_DP4A(7)
    SS_QGEMV_DP4A(8)
#undef SS_QGEMV_DP4A
  }
}

// Blocks a run of rows wants: one per kDpWarps pairs.
int FoldBlocks(const QuantRows& r) { return ((r.r1 - r.r0) / 2 + kDpWarps - 1) / kDpWarps; }

// Blocks for `want` blocks' worth of work within `cap` (the resident waves of the kernel), at least one.
int CapBlocks(int want, int cap, int total) {
  return total <= cap ? want : std::max(1, static_cast<int>(static_cast<long long>(want) * cap / total));
}

template <typename D, int OUT>
void LaunchFold1(const DecodeGemvArgs& a, const QuantRows& run, cudaStream_t s) {
  auto* kernel = QuantDecodeKernel<D, OUT>;
  const size_t smem = XL8<D>(a.K).Bytes(1);
  const int threads = kDpWarps * 32;
  const LaunchInfo o = QueryLaunch(reinterpret_cast<const void*>(kernel), threads, smem);
  SS_REQUIRE(o.perSm > 0, "quant decode gemv: the kernel (its row of x in shared memory) does not fit on an SM");
  const int want = FoldBlocks(run);
  LaunchK(kernel, CapBlocks(want, kDpWaves * o.perSm * o.sms, want), threads, smem, s, a, run.r0, run.r1);
}

template <typename D1, typename D2, int OUT>
void LaunchFold2(const DecodeGemvArgs& a, const QuantRows& r1, const QuantRows& r2, cudaStream_t s) {
  auto* kernel = QuantDecodeKernel2<D1, D2, OUT>;
  const size_t smem = std::max(XL8<D1>(a.K).Bytes(1), XL8<D2>(a.K).Bytes(1));
  const int threads = kDpWarps * 32;
  const LaunchInfo o = QueryLaunch(reinterpret_cast<const void*>(kernel), threads, smem);
  SS_REQUIRE(o.perSm > 0, "quant decode gemv: the kernel (its row of x in shared memory) does not fit on an SM");
  const int w1 = FoldBlocks(r1), w2 = FoldBlocks(r2);
  const int cap = kDpWaves * o.perSm * o.sms;
  const int b1 = CapBlocks(w1, cap, w1 + w2), b2 = CapBlocks(w2, cap, w1 + w2);
  LaunchK(kernel, b1 + b2, threads, smem, s, a, r1.r0, r1.r1, r2.r1, b1);
}

bool IsAligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

}  // namespace

bool QuantGemvDp4a(const void* W, QT wT, int N, int K, const void* X, int ldx, int T, void* Y, ET yT, int ldy,
                   float beta, cudaStream_t s, int rowsPerWarp, int splitK) {
  SS_REQUIRE(T >= 1 && T <= 8, "quant gemv: T must be 1..8");
  SS_REQUIRE(rowsPerWarp == 0 || rowsPerWarp == 1 || rowsPerWarp == 2 || rowsPerWarp == 4,
             "quant gemv: rowsPerWarp must be 0 (default), 1, 2 or 4");
  SS_REQUIRE(splitK == 1 || (splitK == 4 && rowsPerWarp != 4), "quant gemv: splitK must be 1, or 4 with 1 or 2 rows a warp");
  SS_REQUIRE(N > 0 && K > 0 && K % QtBlockElems(wT) == 0 && ldx >= K && ldx % 8 == 0 && ldy >= N,
             "quant gemv: bad shape");
  SS_REQUIRE(IsAligned(W, 2) && IsAligned(X, 16), "quant gemv: misaligned operands");
  // 16-byte loads need W 16-byte aligned: Q4_K / Q5_K rows (multiples of 144 / 176 bytes) are then 16-byte
  // aligned too, and Ld128U's aligned pieces around a 2-byte aligned address never start before W. Otherwise the
  // caller takes another path.
  if (!IsAligned(W, 16)) return false;
  bool done = false;
  qblocks::Dispatch(static_cast<int>(wT), [&](auto blk) {
    using D = typename q8::Of<decltype(blk)>::T;
    // Rows of X per launch: as many as fit in one block's shared memory (up to 8).
    const size_t optin = static_cast<size_t>(QueryLaunch(nullptr, 0, 0).smemOptin);
    int chunk = T;
    while (chunk > 1 && XL8<D>(K).Bytes(chunk) > optin) --chunk;
    if (XL8<D>(K).Bytes(chunk) > optin) return;
    const uint8_t* w = static_cast<const uint8_t*>(W);
    const bf16* x = static_cast<const bf16*>(X);
    SS_DISPATCH_ET(yT, TY, {
      TY* y = static_cast<TY*>(Y);
      for (int t0 = 0; t0 < T; t0 += chunk)
        RunDp4a<D, TY>(s, w, N, K, x + static_cast<size_t>(t0) * ldx, ldx, std::min(chunk, T - t0),
                       y + static_cast<size_t>(t0) * ldy, ldy, beta, rowsPerWarp, splitK);
    });
    done = true;
  });
  if (done) SS_CUDA_CHECK_LAUNCH("quant gemv (dp4a)");
  return done;
}

bool QuantDecodeFits(QT t, int K) {
  if (K <= 0 || K % QtBlockElems(t) != 0) return false;
  bool fits = false;
  qblocks::Dispatch(static_cast<int>(t), [&](auto blk) {
    using D = typename q8::Of<decltype(blk)>::T;
    fits = XL8<D>(K).Bytes(1) <= static_cast<size_t>(QueryLaunch(nullptr, 0, 0).smemOptin);
  });
  return fits;
}

void LaunchQuantDecodeGemv(DecodeOut out, const DecodeGemvArgs& a, const QuantRows* runs, int nRuns, cudaStream_t s) {
  SS_REQUIRE(out == DecodeOut::kQkvRope || out == DecodeOut::kSwiGlu,
             "quant decode gemv: the output must be q|k|v with RoPE or gate|up with SwiGLU");
  RequireDecodeOut(out, a);
  SS_REQUIRE(runs && (nRuns == 1 || (nRuns == 2 && out == DecodeOut::kQkvRope)),
             "quant decode gemv: one run of rows, or two for q|k|v");
  SS_REQUIRE(a.K > 0 && a.N > 0 && a.seg1 <= a.seg2 && a.seg2 <= a.N, "quant decode gemv: bad shape");
  for (int i = 0; i < nRuns; ++i) {
    const QuantRows& r = runs[i];
    SS_REQUIRE(a.K % QtBlockElems(r.type) == 0, "quant decode gemv: K is not a whole number of the type's blocks");
    SS_REQUIRE(r.r0 >= 0 && r.r0 < r.r1 && r.r1 <= a.N && (r.r1 - r.r0) % 2 == 0 && (i == 0 || r.r0 == runs[i - 1].r1),
               "quant decode gemv: bad row range");
    if (out == DecodeOut::kSwiGlu) SS_REQUIRE(r.r0 == 0 && r.r1 == a.N, "quant decode gemv: gate|up takes all its rows");
    if (out == DecodeOut::kQkvRope) SS_REQUIRE(r.r0 % a.D == 0 && r.r1 % a.D == 0, "quant decode gemv: whole heads only");
  }
  const int r0 = runs[0].r0, r1 = runs[nRuns - 1].r1;
  // Every weight segment that holds rows of [r0, r1) must be there, 16-byte aligned (Ld128U).
  const void* seg[3] = {a.w0, a.w1, a.w2};
  const int lo[3] = {0, a.seg1, a.seg2}, hi[3] = {a.seg1, a.seg2, a.N};
  for (int i = 0; i < 3; ++i)
    if (lo[i] < hi[i] && lo[i] < r1 && r0 < hi[i])
      SS_REQUIRE(seg[i] && IsAligned(seg[i], 16), "quant decode gemv: a weight segment is missing or misaligned");
  SS_REQUIRE(a.x && IsAligned(a.x, 16) && a.normW && IsAligned(a.normW, 16) && a.y,
             "quant decode gemv: x, the norm weight (16-byte aligned) and y are required");
  SS_REQUIRE(a.wT == ET::kBF16 && a.yT == ET::kBF16, "quant decode gemv: activations and output must be bf16");
  // A row of x too wide for shared memory is refused by the launchers' occupancy check (the backend asks
  // QuantDecodeFits once, at construction, so that it never gets here).
  qblocks::Dispatch(static_cast<int>(runs[0].type), [&](auto b1) {
    using D1 = typename q8::Of<decltype(b1)>::T;
    constexpr int kRope = static_cast<int>(DecodeOut::kQkvRope), kSwiGlu = static_cast<int>(DecodeOut::kSwiGlu);
    if (nRuns == 1) {
      if (out == DecodeOut::kQkvRope) LaunchFold1<D1, kRope>(a, runs[0], s);
      else LaunchFold1<D1, kSwiGlu>(a, runs[0], s);
      return;
    }
    qblocks::Dispatch(static_cast<int>(runs[1].type), [&](auto b2) {
      using D2 = typename q8::Of<decltype(b2)>::T;
      if constexpr (std::is_same_v<D1, D2>) ThrowInvalid("quant decode gemv: two runs of one type make one run");
      else LaunchFold2<D1, D2, kRope>(a, runs[0], runs[1], s);
    });
  });
  SS_CUDA_CHECK_LAUNCH("quant decode gemv");
}

}  // namespace swapserve::cuda
