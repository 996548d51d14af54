// Histogram bucket boundaries of swapserve's metrics (the metric names are in contracts/semconv.ts).

/** Histogram buckets, seconds. TTFT extends past 10 s to cover cold starts, as vLLM does. */
export const TTFT_BUCKETS_S = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
];
export const TPOT_BUCKETS_S = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];
export const REQUEST_DURATION_BUCKETS_S = [
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 160, 320, 640, 1280,
];
export const MOVE_DURATION_BUCKETS_S = [
  0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
];
/** Policy decisions: the scheduler bench's p99 is well under a millisecond for 1,000 models x 64 workers. */
export const DECISION_BUCKETS_S = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05];
export const WORKER_START_BUCKETS_S = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60];
/** GB/s buckets up to beyond PCIe Gen5 x16 and NVLink-class links. */
export const MOVE_BANDWIDTH_BUCKETS_GBPS = [0.1, 0.25, 0.5, 1, 2, 4, 8, 12, 16, 20, 25, 30, 40, 50, 60, 80, 120, 200];
/** Tokens per request: the GenAI conventions' advised boundaries for gen_ai.client.token.usage (powers of 4). */
export const TOKEN_USAGE_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
