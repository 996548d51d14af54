// The codec's GPU decoder (decode.cuh; format: runtime/codec/codec.h). Per block (one chunk of 65536 elements):
//   1. the 4096-entry (length << 8 | symbol) table from the 256 canonical code lengths, in shared memory;
//   2. thread t decodes lane t (256 exponents, MSB-first bits, byte-aligned start from the lane-length prefix sum)
//      into a 64 KiB shared exponent buffer;
//   3. all threads merge exponents with the raw sign+mantissa stream and store the elements (coalesced);
//   4. optionally, the chunk's position-dependent checksum (codec::ChunkSum) by one block reduction.
#include "runtime/codec/codec.h"
#include "runtime/codec/cuda/decode.cuh"

namespace swapserve::runtime::codec {
namespace {

constexpr int kThreads = 256;
constexpr uint32_t kTableEntries = 1u << kMaxCodeLen;
constexpr size_t kSmemBytes = kTableEntries * 2 + kChunkElems;  // table + exponents: 72 KiB (opt-in > 48 KiB)
static_assert(kLanesPerChunk == kThreads, "one lane per thread");

__device__ __forceinline__ uint32_t DevMix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

__global__ void __launch_bounds__(kThreads) DecodeKernel(GpuDecodeParams p) {
  extern __shared__ __align__(16) uint8_t smem[];
  uint16_t* table = reinterpret_cast<uint16_t*>(smem);
  uint8_t* exps = smem + kTableEntries * 2;
  __shared__ uint32_t count[kMaxCodeLen + 1], firstCode[kMaxCodeLen + 1];
  __shared__ uint32_t laneStart[kThreads];
  __shared__ uint32_t red[kThreads / 32];
  __shared__ int bad;

  const int t = threadIdx.x;
  const uint32_t k = p.firstChunk + blockIdx.x;
  const Format F = FormatOf(static_cast<DType>(p.dtype));
  const uint64_t first = uint64_t{k} * kChunkElems;
  const uint32_t n = static_cast<uint32_t>((p.elements - first < kChunkElems ? p.elements - first : uint64_t{kChunkElems}));
  const uint32_t lanes = (n + kLaneElems - 1) / kLaneElems;
  const uint8_t* src = p.payload + p.chunkOffset[k];

  // 1. Canonical decode table (deflate's construction, equal to the encoder's (length, symbol) order).
  if (t <= static_cast<int>(kMaxCodeLen)) count[t] = 0;
  if (t == 0) bad = 0;
  for (uint32_t i = t; i < kTableEntries; i += kThreads) table[i] = 0;
  __syncthreads();
  const uint32_t len = p.codeLen[t];
  if (len) atomicAdd(&count[len], 1u);
  __syncthreads();
  if (t == 0) {
    uint32_t code = 0;
    count[0] = 0;
    for (uint32_t l = 1; l <= kMaxCodeLen; ++l) {
      code = (code + count[l - 1]) << 1;
      firstCode[l] = code;
    }
  }
  __syncthreads();
  if (len && len <= kMaxCodeLen) {
    uint32_t rank = 0;
    for (int s = 0; s < t; ++s) rank += (p.codeLen[s] == len);
    const uint32_t code = firstCode[len] + rank, shift = kMaxCodeLen - len;
    const uint32_t lo = code << shift, hi = min((code + 1) << shift, kTableEntries);
    for (uint32_t i = lo; i < hi; ++i) table[i] = static_cast<uint16_t>(len << 8 | t);
  }
  // Lane byte lengths -> exclusive prefix sum (Hillis-Steele over 256 entries).
  const uint32_t myBytes = t < static_cast<int>(lanes) ? (uint32_t{src[2 * t]} | uint32_t{src[2 * t + 1]} << 8) : 0;
  laneStart[t] = myBytes;
  __syncthreads();
  for (int off = 1; off < kThreads; off <<= 1) {
    uint32_t v = t >= off ? laneStart[t - off] : 0;
    __syncthreads();
    laneStart[t] += v;
    __syncthreads();
  }
  const uint32_t expBytes = laneStart[kThreads - 1];
  const uint32_t myStart = laneStart[t] - myBytes;

  // 2. Lane t's exponents.
  if (t < static_cast<int>(lanes)) {
    const uint8_t* lp = src + 2 * lanes + myStart;
    const uint32_t e0 = t * kLaneElems, e1 = min(e0 + kLaneElems, n);
    uint64_t buf = 0, consumed = 0;
    int have = 0;
    uint32_t next = 0;
    for (uint32_t i = e0; i < e1; ++i) {
      while (have <= 56) {
        buf |= uint64_t{next < myBytes ? __ldg(lp + next) : uint8_t{0}} << (56 - have);
        ++next;
        have += 8;
      }
      const uint16_t e = table[buf >> (64 - kMaxCodeLen)];
      const uint32_t l = e >> 8;
      if (!l) {
        bad = 1;
        break;
      }
      exps[i] = static_cast<uint8_t>(e);
      buf <<= l;
      have -= l;
      consumed += l;
    }
    if ((consumed + 7) / 8 != myBytes) bad = 1;
  }
  __syncthreads();
  if (bad) {
    if (t == 0 && p.error) atomicCAS(p.error, 0, static_cast<int>(k) + 1);
    return;
  }

  // 3. Merge with the sign+mantissa stream and store.
  const uint8_t* rest = src + ((2 * lanes + expBytes + 15) & ~15u);
  uint8_t* dst = p.out + first * F.elemBytes;
  if (p.dtype == static_cast<uint32_t>(DType::kBf16)) {
    uint16_t* d16 = reinterpret_cast<uint16_t*>(dst);
    for (uint32_t i = t; i < n; i += kThreads) {
      const uint32_t r = __ldg(rest + i);
      d16[i] = static_cast<uint16_t>((r & 0x80u) << 8 | uint32_t{exps[i]} << 7 | (r & 0x7Fu));
    }
  } else {
    const uint32_t restBytes = (n * F.restBits + 7) / 8;
    const uint32_t restMask = (1u << F.restBits) - 1, lowMask = (1u << F.expShift) - 1;
    for (uint32_t i = t; i < n; i += kThreads) {
      const uint64_t bit = uint64_t{i} * F.restBits;
      const uint32_t b = static_cast<uint32_t>(bit >> 3), sh = static_cast<uint32_t>(bit & 7);
      uint64_t w = 0;
      for (uint32_t j = 0; j < 4 && b + j < restBytes; ++j) w |= uint64_t{__ldg(rest + b + j)} << (8 * j);
      const uint32_t r = static_cast<uint32_t>(w >> sh) & restMask;
      const uint32_t v = (r & lowMask) | uint32_t{exps[i]} << F.expShift | (r >> F.expShift) << (F.expShift + F.expBits);
      if (F.elemBytes == 2) reinterpret_cast<uint16_t*>(dst)[i] = static_cast<uint16_t>(v);
      else reinterpret_cast<uint32_t*>(dst)[i] = v;
    }
  }
  if (!p.chunkSums) return;

  // 4. Checksum of what this block wrote (global writes of the block are visible after __syncthreads).
  __syncthreads();
  const uint32_t bytes = n * F.elemBytes, words = (bytes + 3) / 4;
  uint32_t s = 0;
  for (uint32_t j = t; j < words; j += kThreads) {
    uint32_t w;
    if (4 * j + 4 <= bytes) {
      w = reinterpret_cast<const uint32_t*>(dst)[j];
    } else {
      w = 0;
      for (uint32_t q = 0; 4 * j + q < bytes; ++q) w |= uint32_t{dst[4 * j + q]} << (8 * q);
    }
    s += DevMix32(w + j * 0x9E3779B9u);
  }
  for (int off = 16; off; off >>= 1) s += __shfl_down_sync(0xFFFFFFFFu, s, off);
  if ((t & 31) == 0) red[t >> 5] = s;
  __syncthreads();
  if (t == 0) {
    uint32_t total = 0;
    for (int w = 0; w < kThreads / 32; ++w) total += red[w];
    p.chunkSums[k] = total;
  }
}

}  // namespace

cudaError_t LaunchDecode(const GpuDecodeParams& p, cudaStream_t stream) {
  if (p.numChunks == 0) return cudaSuccess;
  static bool attr = false;  // opt-in shared memory above 48 KiB; idempotent, so a race only repeats it
  if (!attr) {
    cudaError_t e = cudaFuncSetAttribute(DecodeKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmemBytes));
    if (e != cudaSuccess) return e;
    attr = true;
  }
  DecodeKernel<<<p.numChunks, kThreads, kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace swapserve::runtime::codec
