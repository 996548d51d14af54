// An in-memory span exporter that can wait for a span to be exported (event-driven, no polling or sleeps).
import type { ExportResult } from '@opentelemetry/core';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';

export class WaitingSpanExporter extends InMemorySpanExporter {
  private waiters: { pred: (s: ReadableSpan) => boolean; resolve: (s: ReadableSpan) => void }[] = [];

  override export(spans: ReadableSpan[], cb: (r: ExportResult) => void): void {
    super.export(spans, cb);
    for (const s of spans) {
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(s)) return true;
        w.resolve(s);
        return false;
      });
    }
  }

  /** Resolves with the first exported span matching `pred` (already exported or future). */
  waitFor(pred: (s: ReadableSpan) => boolean): Promise<ReadableSpan> {
    const have = this.getFinishedSpans().find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
}
