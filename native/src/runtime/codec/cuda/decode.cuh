// The codec's GPU decoder (design: runtime/codec/design.md "GPU decode"): one 256-thread block per chunk of a
// Huffman-mode container, writing the decoded elements straight into device memory (the model's arena).
// Raw-mode containers need no kernel: their payload is the tensor (cudaMemcpyAsync it).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace swapserve::runtime::codec {

struct GpuDecodeParams {
  // payload + chunkOffset[k] is chunk k's first byte on the device. To decode chunks staged in a buffer that
  // begins at chunk `firstChunk`, pass payload = staging - chunkOffset[firstChunk] (host-side arithmetic).
  const uint8_t* payload;
  const uint64_t* chunkOffset;  // device copy of the container's chunk offset table
  const uint8_t* codeLen;       // device copy of the container's 256 code lengths
  uint8_t* out;                 // element 0 of the tensor; 4-byte aligned
  uint64_t elements;
  uint32_t firstChunk, numChunks;  // the range decoded by this launch (one block each)
  uint32_t dtype;                  // codec::DType
  uint32_t* chunkSums;             // optional (nullptr): the decoded chunk's ChunkSum, indexed by chunk
  int* error;                      // optional: set to 1 + chunk index of a lane that does not decode
};

// Enqueues the decode on `stream`. Returns the launch error (no synchronisation).
cudaError_t LaunchDecode(const GpuDecodeParams& p, cudaStream_t stream);

}  // namespace swapserve::runtime::codec
