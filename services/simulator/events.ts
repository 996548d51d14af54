// The simulators' virtual clock: a binary-heap event queue. Time is in ms; events at the same time run in the order
// they were scheduled, so a run is deterministic.

interface Entry { t: number; seq: number; fn: () => void }

export class EventQueue {
  /** The virtual time (ms) of the event being run. */
  now = 0;
  private heap: Entry[] = [];
  private seq = 0;

  /** Runs `fn` at time `t` (ms; clamped to now: the past cannot be scheduled). */
  at(t: number, fn: () => void): void {
    const e = { t: Math.max(t, this.now), seq: this.seq++, fn };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p], e)) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = e;
  }

  after(ms: number, fn: () => void): void {
    this.at(this.now + ms, fn);
  }

  get size(): number {
    return this.heap.length;
  }

  /** Runs events in time order until none is left (or the next is past `until`, ms). */
  run(until = Infinity): void {
    const h = this.heap;
    while (h.length > 0 && h[0].t <= until) {
      const top = h[0];
      const last = h.pop()!;
      if (h.length > 0) {
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= h.length) break;
          const r = l + 1;
          const c = r < h.length && less(h[r], h[l]) ? r : l;
          if (!less(h[c], last)) break;
          h[i] = h[c];
          i = c;
        }
        h[i] = last;
      }
      this.now = top.t;
      top.fn();
    }
  }
}

const less = (a: Entry, b: Entry): boolean => a.t < b.t || (a.t === b.t && a.seq < b.seq);
