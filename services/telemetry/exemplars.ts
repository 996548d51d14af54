// Exemplars for the latency histograms: the trace id of a recent request per bucket (served by openmetrics.ts).
import type { Attributes } from '@opentelemetry/api';

export interface Exemplar {
  /** The observed value (seconds for the latency histograms). */
  value: number;
  traceId: string;
  spanId: string;
  /** When it was observed, epoch ms. */
  atMs: number;
}

/** Latest exemplar per histogram series and bucket. */
export class ExemplarStore {
  private readonly byKey = new Map<string, Exemplar>();
  /** Series (metric + label set) kept at most; the oldest is dropped beyond (bounded memory). */
  constructor(private readonly maxSeries = 4096) {}

  /** Remember `ex` for the bucket of `metric{attrs}` its value falls in. */
  offer(metric: string, attrs: Attributes, boundaries: readonly number[], ex: Exemplar): void {
    let bucket = boundaries.findIndex((b) => ex.value <= b);
    if (bucket < 0) bucket = boundaries.length;
    const key = `${metric}\u0000${attrsKey(attrs)}\u0000${bucket}`;
    this.byKey.delete(key);
    this.byKey.set(key, ex);
    if (this.byKey.size > this.maxSeries) this.byKey.delete(this.byKey.keys().next().value as string);
  }

  get(metric: string, attrs: Attributes, bucket: number): Exemplar | undefined {
    return this.byKey.get(`${metric}\u0000${attrsKey(attrs)}\u0000${bucket}`);
  }
}

function attrsKey(attrs: Attributes): string {
  return Object.keys(attrs)
    .sort()
    .map((k) => `${k}=${String(attrs[k])}`)
    .join('\u0001');
}
