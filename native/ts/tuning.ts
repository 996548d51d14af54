// The engine's backend tuning: one schema with documented defaults, used by the config's `engine` section
// (services/config/config.ts) and by Engine.create (native/ts/engine.ts), passed to the CUDA backend as
// BackendOptions::cuda (native/src/engine/backend.h; the C++ defaults are the same). The CPU backend ignores it.
// Env vars SWAPSERVE_CUDA_* still override each knob where set (native/src/engine/cuda/tuning.h): the GPU dev
// benches flip them per run.
import { z } from 'zod';

export const engineTuningSchema = z.object({
  /** fp32 residual stream and one rounding per op, instead of rounding where transformers rounds (env SWAPSERVE_CUDA_EXACT=1). @defaultValue false */
  exact: z.boolean().default(false),
  /** Per-op CUDA events, one summary line per forward pass on stderr; turns `pdl` off (env SWAPSERVE_CUDA_PROFILE=1). @defaultValue false */
  profile: z.boolean().default(false),
  /** Programmatic dependent launch in decode passes (env SWAPSERVE_CUDA_PDL=0 turns it off). @defaultValue true */
  pdl: z.boolean().default(true),
  /** One-token decode steps with RMSNorm, RoPE + KV write and SwiGLU folded into the products (env SWAPSERVE_CUDA_FUSED_DECODE=0 turns it off). @defaultValue true */
  fusedDecode: z.boolean().default(true),
  /**
   * Decode products' launch shape: one for all ("4x4k") or per product ("qkv:4x4k/o:2x4/gu:4x4k/down:2x4/head:4x4k",
   * any subset); rows per warp x chunks in flight, k: a block's warps split K. '' = the shapes measured best on an
   * H200 (bench/results/engine/2026-11-21-h200-0c64c4f.md) (env SWAPSERVE_CUDA_DECODE_GEMV). @defaultValue ''
   */
  decodeGemv: z.string().regex(/^$|^(\d+x\d+k?|[a-z]+:\d+x\d+k?(\/[a-z]+:\d+x\d+k?)*)$/, 'decodeGemv: a launch shape like 4x4k, or op:shape items joined by /').default(''),
  /** Bytes per row the decode products prefetch into L2, 0..1048576; -1 = each product's default (env SWAPSERVE_CUDA_L2PF). @defaultValue -1 */
  l2PrefetchBytes: z.number().int().min(-1).max(1 << 20).default(-1),
  /** Context splits of decode attention, 1..64; 0 = chosen from the shape (env SWAPSERVE_CUDA_ATTN_SPLITS). @defaultValue 0 */
  attnSplits: z.number().int().min(0).max(64).default(0),
  /**
   * Decode steps (every sequence feeding one token) replayed as CUDA graphs, one per batch-size bucket (1, 2, 4, ...,
   * 256, padded), captured lazily from a bucket's third pass and freed with the engine; off until measured on the GPU
   * (env SWAPSERVE_CUDA_GRAPHS=1 / 0). @defaultValue false
   */
  cudaGraphs: z.boolean().default(false),
  /**
   * Quantized models' one-token decode steps with the attention and FFN norms, RoPE + the KV write and SwiGLU folded
   * into the q|k|v and gate|up products (four launches a layer fewer; their X is quantized to int8 as the dp4a GEMV
   * does); off by default: on an H100 it took a Q4_K_M step from 3.90 to 3.60 ms and made a Q8_0 step slower (4.82 to
   * 5.32 ms) (env SWAPSERVE_CUDA_QUANT_FOLD=1 / 0). Needs `fusedDecode`. @defaultValue false
   */
  quantFold: z.boolean().default(false),
}).strict();

export type EngineTuning = z.infer<typeof engineTuningSchema>;
