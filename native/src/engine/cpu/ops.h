// The CPU backend's operations, one function each, on fp32 activations and f32/f16/bf16 weights read in place
// (matrices may also be GGUF block-quantized: MatMul and ToF32 dequantize whole blocks, engine/cpu/quant.h).
//
// Shapes are in the comments; every matrix is row-major [out][in] as stored in the arena. The ops are exposed
// to tests (native engineOps) so each can be checked against a scalar reference. Every output element is
// reduced by one thread in a fixed order: results do not depend on the thread count.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu/thread_pool.h"

namespace swapserve::engine::cpu {

// Bytes of one element of a float dtype; of one block of a quantized dtype (see quant.h RowBytes).
size_t DTypeBytes(DType dt);
float BF16ToF32(uint16_t h);
float F16ToF32(uint16_t h);
// dst (n) = src (n) of dtype dt, converted to fp32 (quantized: n a multiple of the block size).
void ToF32(const uint8_t* src, DType dt, float* dst, size_t n);

// y (T, O) = x (T, I) · W (O, I)^T [+ bias (O)]; with accumulate, y += instead of =. One pass over W for
// all T rows of x: this is what makes a batched decode step cost about one read of the weights. A quantized W
// (I a multiple of its block size) is dequantized 4 rows at a time into a per-thread fp32 buffer, then multiplied
// as an f16/bf16 W is: same order of operations, so the result does not depend on the thread count either.
void MatMul(ThreadPool& pool, float* y, const float* x, const uint8_t* w, DType wdt, const uint8_t* bias,
            DType bdt, int T, int I, int O, bool accumulate);

// out (T, C) = x (T, C) / rms(x) * w (C); out may equal x.
void RmsNorm(float* out, const float* x, const uint8_t* w, DType wdt, int T, int C, float eps);

// The rotation frequencies (D/2) of RoPE with the model's base and scaling (none, linear, llama3).
std::vector<float> RopeInvFreq(const ModelDesc& d);

// Rotates each head of x (T, heads*D) at position pos[t]. interleaved: pairs (2i, 2i+1) as Meta / GGUF;
// else pairs (i, i + D/2) as Hugging Face's rotate_half.
void Rope(float* x, const int32_t* pos, int T, int heads, int D, const float* invFreq, bool interleaved);

// Causal grouped-query attention for one sequence's T new tokens at positions pos0..pos0+T-1.
// q (T, H*D); k, v (rows of KVH*D) already hold this sequence's keys/values up to pos0+T-1; out (T, H*D).
// Position p is row p of k and v, or with a block table (kv_pool.h) row blocks[p / blockTokens] * blockTokens +
// p % blockTokens.
struct AttnSeq {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  int T = 0;
  int pos0 = 0;
  const int32_t* blocks = nullptr;
  int blockTokens = 0;
};
// All sequences of a batch in one parallel pass over (sequence, token, head). Query head h reads KV head
// h / (H/KVH); scale 1/sqrt(D). scratch: one buffer per pool thread, grown as needed.
void Attention(ThreadPool& pool, const std::vector<AttnSeq>& seqs, int H, int KVH, int D,
               std::vector<std::vector<float>>& scratch);

// g (n) = silu(g) * u.
void SwiGLU(float* g, const float* u, size_t n);

}  // namespace swapserve::engine::cpu
