// GGUF block-quantized weights on the GPU (quant_gemv.cu): the matrices stay in their file layout in the arena
// (llama.cpp's blocks, engine/cpu/quant.h) and are dequantized on the fly. Activations of a quantized model are
// bf16. No cuBLAS here (nvcc compile-checks this file on machines without it).
//   decode (T <= 8):  LaunchQuantGemv, each weight byte read once for all T rows; by default the float kernel,
//                     opt-in integer dot products against X quantized per 32 values to 15 bits (int16) or 8 bits
//                     (dp4a) (quant_gemv.cu's design note says why three and how to choose).
//   prefill (T > 8):  LaunchDequantRows turns a band of rows into bf16 in a scratch tile that the backend feeds to
//                     the cuBLASLt bf16 GEMM (tensor cores), band by band.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "engine/cuda/kernels.h"

namespace swapserve::cuda {

// Values match engine::DType.
enum class QT : int { kQ8_0 = 3, kQ4_0 = 4, kQ4_K = 5, kQ5_K = 6, kQ6_K = 7 };

inline bool IsQt(int dtype) { return dtype >= 3 && dtype <= 7; }
inline int QtBlockElems(QT t) { return t == QT::kQ8_0 || t == QT::kQ4_0 ? 32 : 256; }
inline size_t QtBlockBytes(QT t) {
  switch (t) {
    case QT::kQ8_0: return 34;
    case QT::kQ4_0: return 18;
    case QT::kQ4_K: return 144;
    case QT::kQ5_K: return 176;
    default: return 210;
  }
}
inline size_t QtRowBytes(QT t, int K) { return static_cast<size_t>(K) / QtBlockElems(t) * QtBlockBytes(t); }

// Decode GEMV kernels. kDefault: SWAPSERVE_QUANT_GEMV=float|int16|dp4a if set (read once; another value but "auto"
// throws), else the kernel measured fastest for the weight type (quant_gemv.cu DefaultPathFor: Q8_0 float, Q4_0, Q5_K
// and Q6_K int16, Q4_K dp4a). kInt16: X quantized per 32 values to round(x / (amax/32512)), integer dot products
// (results within ~1e-5 relative of kFloat); falls back to kFloat for Q4_K / Q5_K weights not 16-byte aligned.
// kFloat: weights dequantized to float, FMA with the bf16 activations.
// kDp4a: X quantized per 32 values to int8 (scale amax / 127, as ggml's q8_1), one __dp4a per 4 weights (~3e-3
// relative to kFloat, as ggml); falls back to kFloat for W not 16-byte aligned or X rows too wide for shared memory.
enum class QGemvPath : int { kDefault = 0, kInt16 = 1, kFloat = 2, kDp4a = 3 };

// Y (T, N; row stride ldy; yT) = beta*Y + X (T, K; bf16, row stride ldx) W^T, W (N, K) quantized row-major.
// Requires 1 <= T <= 8, K a multiple of the block size, X 16-byte aligned with ldx a multiple of 8.
void LaunchQuantGemv(const void* W, QT wT, int N, int K, const void* X, int ldx, int T, void* Y, ET yT, int ldy,
                     float beta, cudaStream_t s, QGemvPath path = QGemvPath::kDefault);

// Per (kernel, device, shared memory bytes): resident blocks per SM, and the device's SM count and opt-in shared
// memory per block; queried once (a decode step launches hundreds of GEMVs) under a lock (engines run on several
// threads). The kernel's dynamic shared memory limit is raised to the device's opt-in maximum on first use.
// fn = nullptr: only the device's numbers. Used by both quantized GEMV files (quant_gemv.cu, quant_dp4a.cu).
struct LaunchInfo {
  int perSm = 0;
  int sms = 0;
  int smemOptin = 0;
};
LaunchInfo QueryLaunch(const void* fn, int threads, size_t smem);

// The kDp4a kernel itself (quant_dp4a.cu), with its tuning knob for gemv_bench: rowsPerWarp weight rows a warp at
// T = 1 (1, 2 or 4; 0: the default, 2). Returns false, launching nothing, where it does not apply (W not 16-byte
// aligned, or one row of X does not fit in shared memory); LaunchQuantGemv then runs kFloat.
bool QuantGemvDp4a(const void* W, QT wT, int N, int K, const void* X, int ldx, int T, void* Y, ET yT, int ldy,
                   float beta, cudaStream_t s, int rowsPerWarp = 0, int splitK = 1);

// The folded one-token decode product of quantized weights (quant_dp4a.cu; the quantized twin of LaunchDecodeGemv's
// kNorm products): x (K, bf16) RMS-normalised with a.normW inside the product (the kernel sums the squares itself:
// a.ssIn is not read), quantized to int8 per 32 values as the dp4a kernel does, then runs of rows of the logical
// output, each of one weight type, held by the weight segments of `a`: one run, or for q|k|v two consecutive runs of
// two types in one launch (Q4_K_M: q|k Q4_K, v Q6_K), so that the second does not wait for the first. out kQkvRope:
// whole heads of q|k|v (run bounds multiples of D) with bias, RoPE and the KV-cache write of LaunchQkvPost (q into
// a.y); kSwiGlu: all of gate|up, silu(gate) * up into a.y. a.wT and a.yT must be bf16 (the activation type).
struct QuantRows {
  QT type = QT::kQ4_K;
  int r0 = 0, r1 = 0;
};
void LaunchQuantDecodeGemv(DecodeOut out, const DecodeGemvArgs& a, const QuantRows* runs, int nRuns, cudaStream_t s);
// Whether a row of x (K values) quantized for weights of type t fits in one block's shared memory on the current
// device (the folded decode's condition; false also when K is not a whole number of t's blocks).
bool QuantDecodeFits(QT t, int K);

// out (rows, K) bf16 = rows [row0, row0 + rows) of W (N, K) dequantized.
void LaunchDequantRows(const void* W, QT wT, int row0, int rows, int K, void* out, cudaStream_t s);

// x[t] ((T, C) of xT) = dequantized emb[tokens[t]]: the embedding lookup of a quantized token_embd.
void LaunchQuantEmbedding(const int32_t* tokens, int T, const void* emb, QT embT, int C, void* x, ET xT,
                          cudaStream_t s);

}  // namespace swapserve::cuda
