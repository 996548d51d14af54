// CLI progress for long loads and benchmarks: a redrawn bar on a terminal, plain lines everywhere else (CI logs,
// pipes, files), so output stays readable when it is not a TTY. Writes nothing else and never throws.
import type { Writable } from 'node:stream';

export type ProgressMode = 'bar' | 'plain' | 'off';

export interface ProgressOptions {
  /** Shown before the bar / at the start of each line. */
  label: string;
  /** Units of work in all; unknown totals show a count and rate only. @defaultValue undefined */
  total?: number;
  /** How amounts are printed. @defaultValue 'items' */
  unit?: 'bytes' | 'items';
  /** Where to write. @defaultValue process.stderr */
  stream?: Writable & { isTTY?: boolean; columns?: number };
  /** Force a mode. @defaultValue env SWAPSERVE_PROGRESS, else 'bar' on a TTY and 'plain' elsewhere */
  mode?: ProgressMode;
  /** Least time between redraws on a TTY, ms. @defaultValue 80 */
  barIntervalMs?: number;
  /** Least time between plain lines, ms (a line is also written at each quarter of the total). @defaultValue 5000 */
  lineIntervalMs?: number;
  /** Clock in ms (tests). @defaultValue performance.now */
  now?: () => number;
}

const DEFAULTS = { unit: 'items' as const, barIntervalMs: 80, lineIntervalMs: 5000 };

export function formatAmount(n: number, unit: 'bytes' | 'items'): string {
  if (unit === 'items') return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(Math.round(n));
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${Math.round(n)} B`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

function resolveMode(opts: ProgressOptions, isTTY: boolean): ProgressMode {
  if (opts.mode) return opts.mode;
  const env = process.env.SWAPSERVE_PROGRESS;
  if (env === 'bar' || env === 'plain' || env === 'off') return env;
  return isTTY ? 'bar' : 'plain';
}

export class Progress {
  private readonly o: Required<Omit<ProgressOptions, 'total' | 'stream' | 'mode' | 'now'>> & { total: number | undefined };
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly mode: ProgressMode;
  private readonly now: () => number;
  private readonly startMs: number;
  private done = 0;
  private lastDrawMs = -Infinity;
  private lastQuarter = 0;
  private drawn = false;
  private finished = false;

  constructor(opts: ProgressOptions) {
    this.o = { ...DEFAULTS, ...opts, total: opts.total };
    this.stream = opts.stream ?? process.stderr;
    this.mode = resolveMode(opts, !!this.stream.isTTY);
    this.now = opts.now ?? (() => performance.now());
    this.startMs = this.now();
    if (this.mode === 'plain') this.write(`${this.o.label}: started${this.o.total ? ` (${formatAmount(this.o.total, this.o.unit)})` : ''}\n`);
  }

  /** Set the amount done so far (and the total when it becomes known). */
  update(done: number, total?: number): void {
    if (this.finished || !Number.isFinite(done)) return;
    if (total !== undefined && Number.isFinite(total) && total > 0) this.o.total = total;
    this.done = Math.max(0, done);
    this.render(false);
  }

  /** Add `n` to the amount done. */
  tick(n = 1): void {
    this.update(this.done + n);
  }

  /** Print a line without breaking the bar (it is redrawn below). */
  log(line: string): void {
    if (this.mode === 'off') return;
    if (this.mode === 'bar' && this.drawn) this.write('\r\x1b[2K');
    this.write(line.endsWith('\n') ? line : `${line}\n`);
    if (this.mode === 'bar' && this.drawn && !this.finished) this.write(this.barLine());
  }

  /** Finish with a summary line (idempotent). */
  finish(message?: string): void {
    if (this.finished) return;
    if (this.o.total !== undefined) this.done = Math.max(this.done, this.o.total);
    this.render(true);
    this.finished = true;
    const elapsed = this.now() - this.startMs;
    const summary = `${this.o.label}: ${message ?? 'done'} — ${formatAmount(this.done, this.o.unit)} in ${formatDuration(elapsed)}${this.rateText(elapsed)}`;
    if (this.mode === 'bar') this.write(`\r\x1b[2K${summary}\n`);
    else if (this.mode === 'plain') this.write(`${summary}\n`);
  }

  /** Finish with a failure line (idempotent). */
  fail(message: string): void {
    if (this.finished) return;
    this.finished = true;
    const line = `${this.o.label}: failed — ${message}`;
    if (this.mode === 'bar') this.write(`\r\x1b[2K${line}\n`);
    else if (this.mode === 'plain') this.write(`${line}\n`);
  }

  private rateText(elapsedMs: number): string {
    if (elapsedMs <= 0 || this.done <= 0) return '';
    const perS = (this.done / elapsedMs) * 1000;
    return this.o.unit === 'bytes' ? `, ${formatAmount(perS, 'bytes')}/s` : `, ${perS.toFixed(perS < 10 ? 2 : 0)}/s`;
  }

  private barLine(): string {
    const elapsed = this.now() - this.startMs;
    const total = this.o.total;
    const frac = total ? Math.min(1, this.done / total) : null;
    const amounts = total ? `${formatAmount(this.done, this.o.unit)}/${formatAmount(total, this.o.unit)}` : formatAmount(this.done, this.o.unit);
    const eta = frac && frac < 1 && this.done > 0 ? ` ETA ${formatDuration((elapsed * (1 - frac)) / frac)}` : '';
    const tail = ` ${frac === null ? '' : `${(frac * 100).toFixed(0).padStart(3)}% `}${amounts}${this.rateText(elapsed)}${eta}`;
    const cols = this.stream.columns ?? 80;
    const width = Math.max(10, Math.min(40, cols - this.o.label.length - tail.length - 4));
    const bar = frac === null ? '' : ` [${'#'.repeat(Math.round(frac * width)).padEnd(width, '-')}]`;
    return `\r\x1b[2K${this.o.label}${bar}${tail}`.slice(0, cols + 8);
  }

  private render(force: boolean): void {
    if (this.mode === 'off') return;
    const t = this.now();
    if (this.mode === 'bar') {
      if (!force && t - this.lastDrawMs < this.o.barIntervalMs) return;
      this.lastDrawMs = t;
      this.drawn = true;
      this.write(this.barLine());
      return;
    }
    // plain: a line at each new quarter of the total, or every lineIntervalMs, never a redraw; the summary
    // line of finish() stands for the last one.
    if (force) return;
    const quarter = this.o.total ? Math.floor(Math.min(1, this.done / this.o.total) * 4) : 0;
    const since = t - (this.lastDrawMs === -Infinity ? this.startMs : this.lastDrawMs);
    if (quarter <= this.lastQuarter && since < this.o.lineIntervalMs) return;
    this.lastQuarter = Math.max(this.lastQuarter, quarter);
    this.lastDrawMs = t;
    const total = this.o.total;
    const pct = total ? `${Math.min(100, Math.floor((this.done / total) * 100))}% ` : '';
    const amounts = total ? `${formatAmount(this.done, this.o.unit)}/${formatAmount(total, this.o.unit)}` : formatAmount(this.done, this.o.unit);
    this.write(`${this.o.label}: ${pct}(${amounts}${this.rateText(t - this.startMs)})\n`);
  }

  private write(s: string): void {
    try {
      this.stream.write(s);
    } catch {
      // a closed stream must not break the load it reports on
    }
  }
}

/** Start a progress report. */
export function progress(opts: ProgressOptions): Progress {
  return new Progress(opts);
}
