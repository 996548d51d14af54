// The CUDA backend's tuning: the engine options (BackendOptions::cuda, fed from the config's `engine` section via
// native/ts/tuning.ts), the env overrides the GPU bench scripts use, and the decode products' launch shapes.
#pragma once
#include "engine/backend.h"
#include "engine/cuda/kernels.h"

namespace swapserve::engine {

// The decode products, in the order of their launch shapes.
enum { kQkvOp, kOOp, kGuOp, kDownOp, kHeadOp, kDecodeOps };

// `t` with each env var that is set taking precedence (a documented override for the dev benches, which flip them
// per run; production sets the config):
//   SWAPSERVE_CUDA_EXACT=1 (exact), SWAPSERVE_CUDA_PROFILE=1 (profile), SWAPSERVE_CUDA_PDL=0 (pdl off),
//   SWAPSERVE_CUDA_FUSED_DECODE=0 (fusedDecode off), SWAPSERVE_CUDA_QUANT_FOLD=0|1 (quantFold; any other value
//   throws), SWAPSERVE_CUDA_DECODE_GEMV=spec (decodeGemv),
//   SWAPSERVE_CUDA_L2PF=bytes (l2PrefetchBytes), SWAPSERVE_CUDA_ATTN_SPLITS=n (attnSplits),
//   SWAPSERVE_CUDA_ATTN=v1|v2|auto (attnV2MinEntries 0 / 1 / the default, 32; any other value throws), then
//   SWAPSERVE_CUDA_ATTN_V2_MIN=n (attnV2MinEntries n; 0 = v1 always).
CudaTuning WithEnvOverrides(CudaTuning t);

// Fills tunes[kDecodeOps] from the measured defaults, then t.decodeGemv and t.l2PrefetchBytes. Throws
// NativeError(kInvalidArgument) naming the option on a malformed value.
void ResolveDecodeTunings(const CudaTuning& t, cuda::DecodeTuning tunes[kDecodeOps]);

}  // namespace swapserve::engine
