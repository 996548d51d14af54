// Wall-clock milliseconds with sub-millisecond resolution (epoch based, so comparable across processes).
import { performance } from 'node:perf_hooks';

/** Epoch ms, fractional: timeOrigin + the monotonic clock (Date.now() has only 1 ms resolution). */
export const nowMs = (): number => performance.timeOrigin + performance.now();
