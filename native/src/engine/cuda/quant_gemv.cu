// Quantized weights on the GPU: decode GEMV reading GGUF blocks directly, row-band dequantization to bf16 for the
// prefill GEMM, and the quantized embedding lookup. The float lane split of each block type is engine/quant_blocks.h
// (shared with a CPU test hook that checks it against the scalar reference); the integer units of the decode GEMV
// are engine/cuda/quant_dot.cuh.
//
// Design of the decode GEMV (issue 17: at least as fast as ggml's mmvq, batch-1 decode >= 70% of the read floor).
// The first kernel (kept below as the `float` path) dequantized 8 values a lane to float and FMA'd them with bf16
// activations: ~5-7 instructions a weight (nibble extract, int->float convert, scale and min, bf16 unpack, FMA).
// A 4-bit weight is 0.56 bytes, so at 3.2 TB/s an H100 would need ~30 T lane-ops/s, about all it has: the 4-bit
// kernels were issue-bound (Q4_0 0.57-0.74x ggml, Q4_K / Q5_K 0.26-0.38x, 15-26% of the floor) and the K-quants
// also unpacked their 6-bit scales in every lane from byte loads and moved only 4 bytes a lane per load.
// The `int16` path (SWAPSERVE_QUANT_GEMV=int16; the default for Q4_0, Q5_K and Q6_K) works in integers, the way ggml's mmvq does, with our own layout:
//  - each thread block first quantizes the T rows of X it needs into shared memory, per 32 values with scale
//    d = amax/32512 to q = round(x/d) in [-32512, 32512], stored as two int8 planes q = 256*hi + lo. That is 15
//    bits of the block's range, finer than the bf16 activations themselves (8 bits of mantissa), so the result
//    matches the float path to ~1e-5 relative and the CPU-vs-CUDA logits tolerances (test/quant/cuda.test.ts)
//    keep their margins. (ggml's q8_1 keeps 8 bits: ~3e-3 relative, ~5x the noise of bf16, which would eat most
//    of the margin those tests have on the 8B-width models.) The price is two __dp4a a 4-weight word instead of one.
//  - a weight row is cut into units (quant_dot.cuh), one unit a lane: a Q4_K / Q5_K lane reads its 16-byte
//    header and 16 bytes of nibbles (+16 of high bits) with 16-byte loads, unpacks the two scales and mins it needs
//    once for 32 weights with a few word-wide masks, and does 16 dp4a; Q8_0 / Q4_0 / Q6_K blocks are only 2-byte
//    aligned and load in 16-bit pieces. Weights become int8 bytes with word-wide ops (the -8 / -32 offsets of Q4_0
//    / Q6_K by a borrow-free byte subtraction), K-quant mins use per-8 sums of the quantized activations.
//  - the activations' shared-memory layout is permuted so the 32 lanes of a warp read 32 consecutive 16-byte slots
//    (no bank conflicts); one warp a row, 16 warps a block, at most 4 waves of resident blocks that loop over rows,
//    so the X prologue is paid per block, not per row; each warp prefetches its first row into L2 before it (the
//    weights never depend on the previous kernel), which hides the prologue on the small shapes.
//  - T > 1: the X rows that fit in one block's shared memory (2.1-2.6 bytes a value a row: T = 6-7 at K = 14336 on
//    an H100) go in one launch, the rest in more launches (weights read again).
// Cost: ~1-1.5 instructions a weight for the 4-bit types (was ~5-7), so they become memory-bound; shared memory
// serves 3 bytes a weight at T = 1 (~60% of its bandwidth at the read floor). Predicted at T = 1 on an H100, not
// yet measured (ggml's figures of 2026-12-07 in brackets): Q4_K / Q5_K from 15-26% to 60-75% of the floor, 2.5-3.5x
// faster, 1.0-1.3x ggml (43-68%); Q4_0 from 30-55% to 60-75%, 1.3-2x, 1.0-1.2x ggml (49-73%); Q6_K from 30-49% to
// 55-70%, 1.3-1.8x, 1.1-1.3x ggml (40-55%); Q8_0 from 52-95% to 60-95%, 1.0-1.2x, 1.0-1.1x ggml (64-92%). The X
// prologue (an L2 read of T*K bf16, the quantization and a barrier, ~1 us) weighs most on 4096 x 4096, the shape
// most at risk of staying under ggml. Set SWAPSERVE_QUANT_GEMV=float to run the old kernel (a check on the new one).
// The `dp4a` path (SWAPSERVE_QUANT_GEMV=dp4a, the default for Q4_K; quant_dp4a.cu / quant_dp4a.cuh) is the scheme known to be
// fast on NVIDIA GPUs (ggml's mmvq), with our own layout: X quantized per block to int8 (d = amax/127, q8_1's
// ~3e-3 relative error, with d * sum(q) per 16 values for the K-quant mins and Q4_0's -8), one __dp4a per 4 weights.
// Where it differs from int16: (1) half the activation bytes and dp4a of int16 (1 byte of shared memory a weight,
// not 2-3); (2) every weight byte comes in 16-byte loads with consecutive lanes on consecutive bytes of the row,
// also for the 2-byte aligned Q8_0 / Q4_0 / Q6_K blocks (Ld128U: the one or two aligned 16-byte pieces around the
// address and a byte permute), where int16 issues 16-bit loads (8x the load instructions and L1 wavefronts per byte:
// on an H100 those alone approach the ~14 bytes/clock/SM the read floor needs); (3) R weight rows a warp at T = 1
// (R = 2 by default; 1 and 4 are instantiated for the bench), so one shared-memory read of X serves R rows and each
// lane has 2R units (>= 32 bytes each) in flight; 8 warps a block, at most 2 waves of resident blocks.
// Why three: float is measured and stays the default; int16 keeps the CPU-vs-CUDA logits margins (1e-5 relative);
// dp4a trades that for the fewest instructions and bytes a weight. Measured on an H100 (2026-12-07,
// bench/results/quant/2026-12-07-h100-16ee34a.md): dp4a fastest for Q4_0/Q4_K/Q5_K, int16 for Q6_K, float for Q8_0,
// none at least as fast as ggml's mmvq alone on every shape. Since session 6 (same measurements) the default is
// the fastest per type (DefaultPathFor): each kernel passed the CUDA-vs-CPU logits tests on that GPU.
// Choosing after bench/quant/gemv_bench (it times every variant, dp4a-r1/r2/r4, on every shape and type, and
// names the fastest per type): take the fastest variant that passes its checks; if dp4a wins, the
// CPU-vs-CUDA tolerances of test/quant/cuda.test.ts must also hold with it (ggml ships q8_1, so ~3e-3 is accepted
// practice, but those tests were sized for bf16 noise); if r1 or r4 beats r2 everywhere, change RunDp4a's default;
// if the winner differs by type, EnvPath can become a per-type table. Then flip EnvPath's default.
#include "engine/cuda/quant.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "common/cuda_check.h"
#include "engine/cuda/common.cuh"
#include "engine/cuda/quant_dot.cuh"
#include "engine/cuda/quant_gemv_kernels.cuh"
#include "engine/quant_blocks.h"

namespace swapserve::cuda {

namespace {

using namespace qgemv;

template <typename B, typename TO>
void LaunchDequant(const void* W, const int32_t* rowIds, int row0, int rows, int K, TO* out, size_t ldo,
                   cudaStream_t s) {
  const size_t threads = static_cast<size_t>(rows) * (K / B::kElems) * B::kLanes;
  const int bs = 256;
  SS_REQUIRE((threads + bs - 1) / bs < (1u << 31), "dequant: too many rows at once");
  LaunchK(DequantKernel<B, TO>, static_cast<unsigned>((threads + bs - 1) / bs), bs, 0, s,
          static_cast<const uint8_t*>(W), rowIds, row0, rows, K, out, ldo);
}

template <typename B, typename TY>
void RunGemv(int blocks, cudaStream_t s, const uint8_t* w, int N, int K, const bf16* x, int ldx, int T, TY* y, int ldy,
             float beta) {
  switch (T) {
#define SS_QGEMV_CASE(nt) \
  case nt: LaunchK(QuantGemvKernel<B, TY, nt>, blocks, kWarps * 32, 0, s, w, N, K, x, ldx, y, ldy, beta); break;
    SS_QGEMV_CASE(1) SS_QGEMV_CASE(2) SS_QGEMV_CASE(3) SS_QGEMV_CASE(4)
    SS_QGEMV_CASE(5) SS_QGEMV_CASE(6) SS_QGEMV_CASE(7) SS_QGEMV_CASE(8)
#undef SS_QGEMV_CASE
  }
}

template <typename D, typename TY, int NT>
void LaunchInt(cudaStream_t s, const uint8_t* w, int N, int K, const bf16* x, int ldx, TY* y, int ldy, float beta) {
  auto* kernel = QuantGemvIntKernel<D, TY, NT>;
  const size_t smem = XLayout<D>(K).Bytes(NT);
  const int threads = kIntWarps * 32;
  const LaunchInfo li = QueryLaunch(reinterpret_cast<const void*>(kernel), threads, smem);
  SS_REQUIRE(li.perSm > 0, "quant gemv: the int16 kernel does not fit on an SM");
  // Up to 4 waves of resident blocks: fewer blocks would leave rows-per-warp uneven (14336 rows over 4224 warps:
  // 3 or 4 each), more would repeat the X prologue for little gain (it is ~3% of the bytes at 4 waves, 128256 rows).
  const int blocks = std::min((N + kIntWarps - 1) / kIntWarps, 4 * li.perSm * li.sms);
  LaunchK(kernel, blocks, threads, smem, s, w, N, K, x, ldx, y, ldy, beta);
}

// Rows of X per launch of the int16 path: as many as fit in one block's shared memory (up to 8).
template <typename D>
int IntRowsPerLaunch(int K) {
  const size_t optin = static_cast<size_t>(QueryLaunch(nullptr, 0, 0).smemOptin);
  int nt = 8;
  while (nt > 1 && XLayout<D>(K).Bytes(nt) > optin) --nt;
  return XLayout<D>(K).Bytes(nt) <= optin ? nt : 0;
}

template <typename D, typename TY>
void RunInt(cudaStream_t s, const uint8_t* w, int N, int K, const bf16* x, int ldx, int T, TY* y, int ldy,
            float beta) {
  switch (T) {
#define SS_QGEMV_INT(nt) case nt: LaunchInt<D, TY, nt>(s, w, N, K, x, ldx, y, ldy, beta); break;
    SS_QGEMV_INT(1) SS_QGEMV_INT(2) SS_QGEMV_INT(3) SS_QGEMV_INT(4)
    SS_QGEMV_INT(5) SS_QGEMV_INT(6) SS_QGEMV_INT(7) SS_QGEMV_INT(8)
#undef SS_QGEMV_INT
  }
}

// The path SWAPSERVE_QUANT_GEMV names (read once): "float", "int16" or "dp4a" force that kernel for every type;
// unset or "auto" → kDefault, the measured fastest kernel per type (DefaultPathFor).
QGemvPath EnvPath() {
  static const QGemvPath path = [] {
    const char* v = std::getenv("SWAPSERVE_QUANT_GEMV");
    if (!v || !*v || std::strcmp(v, "auto") == 0) return QGemvPath::kDefault;
    if (std::strcmp(v, "int16") == 0) return QGemvPath::kInt16;
    if (std::strcmp(v, "dp4a") == 0) return QGemvPath::kDp4a;
    if (std::strcmp(v, "float") == 0) return QGemvPath::kFloat;
    ThrowInvalid(std::string("Expected \"auto\", \"float\", \"int16\" or \"dp4a\" for SWAPSERVE_QUANT_GEMV but received \"") +
                 v + "\"");
  }();
  return path;
}

// The kernel with the least time summed over the four Llama-3.1-8B decode shapes at T = 1, among those the engine
// runs (dp4a at its default 2 rows a warp), on an H100 (2026-12-07, bench/results/quant/2026-12-07-h100-16ee34a.md):
// Q8_0 float 254 us (int16 270, dp4a 286); Q4_0 int16 152 (dp4a 161, float 229); Q4_K dp4a 148 (int16 164, float
// 549); Q5_K int16 188.3 and dp4a 187.5, a tie, int16 taken: it is the one at least as fast as ggml's q8_1 + mmvq on
// every shape (dp4a: 0.87x on 4096 x 14336); Q6_K int16 234 (dp4a 299, float 365). Each passed the CUDA-vs-CPU
// logits tests under its kernel on that GPU.
QGemvPath DefaultPathFor(QT t) {
  switch (t) {
    case QT::kQ4_0: case QT::kQ5_K: case QT::kQ6_K: return QGemvPath::kInt16;
    case QT::kQ4_K: return QGemvPath::kDp4a;
    default: return QGemvPath::kFloat;
  }
}

bool Aligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

}  // namespace

LaunchInfo QueryLaunch(const void* fn, int threads, size_t smem) {
  struct Entry { const void* fn; int dev; size_t smem; LaunchInfo info; };
  static std::mutex mu;
  static std::vector<Entry> cache;
  int dev = 0;
  SS_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  for (const Entry& e : cache)
    if (e.fn == fn && e.dev == dev && e.smem == smem) return e.info;
  LaunchInfo info;
  SS_CUDA_CHECK(cudaDeviceGetAttribute(&info.sms, cudaDevAttrMultiProcessorCount, dev));
  SS_CUDA_CHECK(cudaDeviceGetAttribute(&info.smemOptin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  if (fn) {
    if (smem > 48 * 1024)
      SS_CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, info.smemOptin));
    SS_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&info.perSm, fn, threads, smem));
  }
  cache.push_back({fn, dev, smem, info});
  return info;
}

void LaunchQuantGemv(const void* W, QT wT, int N, int K, const void* X, int ldx, int T, void* Y, ET yT, int ldy,
                     float beta, cudaStream_t s, QGemvPath path) {
  SS_REQUIRE(T >= 1 && T <= 8, "quant gemv: T must be 1..8");
  SS_REQUIRE(N > 0 && K > 0 && K % QtBlockElems(wT) == 0 && ldx >= K && ldx % 8 == 0 && ldy >= N,
             "quant gemv: bad shape");
  SS_REQUIRE(Aligned(W, 2) && Aligned(X, 16), "quant gemv: misaligned operands");
  if (path == QGemvPath::kDefault) path = EnvPath();
  if (path == QGemvPath::kDefault) path = DefaultPathFor(wT);
  if (path == QGemvPath::kDp4a) {
    if (QuantGemvDp4a(W, wT, N, K, X, ldx, T, Y, yT, ldy, beta, s)) return;
    path = QGemvPath::kFloat;
  }
  const uint8_t* w = static_cast<const uint8_t*>(W);
  const bf16* x = static_cast<const bf16*>(X);
  // The K-quant units load 16 bytes at a time: their rows (144 / 176 * K/256 bytes) are 16-byte aligned if W is.
  const bool kq = wT == QT::kQ4_K || wT == QT::kQ5_K;
  if (path == QGemvPath::kInt16 && kq && !Aligned(W, 16)) path = QGemvPath::kFloat;
  qblocks::Dispatch(static_cast<int>(wT), [&](auto blk) {
    using B = decltype(blk);
    using D = typename qdot::Of<B>::T;
    const int chunk = path == QGemvPath::kInt16 ? IntRowsPerLaunch<D>(K) : 0;
    SS_DISPATCH_ET(yT, TY, {
      TY* y = static_cast<TY*>(Y);
      if (chunk == 0) {
        RunGemv<B, TY>((N + kWarps - 1) / kWarps, s, w, N, K, x, ldx, T, y, ldy, beta);
      } else {
        // X rows beyond what one block's shared memory holds (e.g. T = 8 at K = 14336) go in further launches.
        for (int t0 = 0; t0 < T; t0 += chunk)
          RunInt<D, TY>(s, w, N, K, x + static_cast<size_t>(t0) * ldx, ldx, std::min(chunk, T - t0),
                        y + static_cast<size_t>(t0) * ldy, ldy, beta);
      }
    });
  });
  SS_CUDA_CHECK_LAUNCH("quant gemv");
}

void LaunchDequantRows(const void* W, QT wT, int row0, int rows, int K, void* out, cudaStream_t s) {
  SS_REQUIRE(rows > 0 && row0 >= 0 && K > 0 && K % QtBlockElems(wT) == 0, "dequant: bad shape");
  qblocks::Dispatch(static_cast<int>(wT), [&](auto blk) {
    LaunchDequant<decltype(blk), bf16>(W, nullptr, row0, rows, K, static_cast<bf16*>(out), static_cast<size_t>(K), s);
  });
  SS_CUDA_CHECK_LAUNCH("dequant rows");
}

void LaunchQuantEmbedding(const int32_t* tokens, int T, const void* emb, QT embT, int C, void* x, ET xT,
                          cudaStream_t s) {
  SS_REQUIRE(T > 0 && C > 0 && C % QtBlockElems(embT) == 0, "quant embedding: bad shape");
  qblocks::Dispatch(static_cast<int>(embT), [&](auto blk) {
    SS_DISPATCH_ET(xT, TX, LaunchDequant<decltype(blk), TX>(emb, tokens, 0, T, C, static_cast<TX*>(x), static_cast<size_t>(C), s));
  });
  SS_CUDA_CHECK_LAUNCH("quant embedding");
}

}  // namespace swapserve::cuda
