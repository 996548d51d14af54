// Stop strings over streamed text: text that could still become a stop string is held back; a match truncates
// the output before it. (Incremental detokenisation is the tokenizer's decodeStream().)

/** Holds back text that may begin a stop string; reports the first stop string found. */
export class StopMatcher {
  private held = '';

  constructor(private readonly stops: readonly string[]) {}

  /** Adds text; returns the part safe to emit, and whether a stop string ended the output. */
  push(text: string): { text: string; stopped: boolean } {
    if (this.stops.length === 0) return { text, stopped: false };
    const buf = this.held + text;
    let at = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.held = '';
      return { text: buf.slice(0, at), stopped: true };
    }
    // Longest suffix of buf that is a proper prefix of some stop string: it must wait for more text.
    let keep = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > keep; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** The held text, at the end of the output (no stop string can complete any more). */
  flush(): string {
    const t = this.held;
    this.held = '';
    return t;
  }
}
