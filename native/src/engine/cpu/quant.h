// GGUF block-quantized weights on the CPU: block geometry and dequantization of whole blocks (llama.cpp's layouts,
// see native/ts/model/quant.ts for the writer's quantizers and the scalar reference the tests compare with).
//
//   Q8_0  32 values, 34 bytes: f16 d; int8 q[32]                          x = d * q
//   Q4_0  32 values, 18 bytes: f16 d; u8 qs[16] (lo nibble j, hi j+16)      x = d * (q - 8)
//   Q4_K 256 values, 144 bytes: f16 d, dmin; u8 scales[12] (8 x 6-bit scale + 6-bit min); u8 qs[128]
//                                                                        x = d * sc * q - dmin * m
//   Q5_K 256 values, 176 bytes: as Q4_K plus u8 qh[32] (the 5th bit) before qs
//   Q6_K 256 values, 210 bytes: u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d   x = d * sc * (q - 32)
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/backend.h"

namespace swapserve::engine::cpu {

bool IsQuant(DType dt);
// Values per block (1 for float types) and bytes per block (the element size for float types).
int BlockElems(DType dt);
size_t BlockBytes(DType dt);
// Bytes of a row of n values (n a multiple of BlockElems).
size_t RowBytes(DType dt, size_t n);
// dst (n) = the n values (a multiple of BlockElems) of quantized blocks at src, in fp32.
void Dequantize(const uint8_t* src, DType dt, float* dst, size_t n);

}  // namespace swapserve::engine::cpu
