// One pino logger per process: JSON lines on stdout, level from config (env LOG_LEVEL wins), a short human format on a TTY.
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LogOptions {
  /** The service name on every line (`gateway`, `scheduler`, `worker`). */
  service: string;
  /** pino level; env LOG_LEVEL wins when set. @defaultValue "info" */
  level?: string;
  /** Where lines go. @defaultValue stdout: JSON, or the short human format when stdout is a terminal */
  destination?: DestinationStream;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'service', 'msg']);

/** Renders one JSON line as `12:00:01.234 INFO  gateway msg key=value …` (terminal only; files and pipes get JSON). */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = new Date(Number(o.time)).toISOString().slice(11, 23);
  const rest = Object.entries(o).filter(([k]) => !SKIP.has(k)).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return `${time} ${(LEVEL_NAMES[Number(o.level)] ?? String(o.level)).padEnd(5)} ${String(o.service ?? '')} ${String(o.msg ?? '')}${rest.length ? ' ' + rest.join(' ') : ''}\n`;
}

const prettyStdout: DestinationStream = { write: (line: string) => void process.stdout.write(prettyLine(line)) };

export function createLogger(opts: LogOptions): Logger {
  const destination = opts.destination ?? (process.stdout.isTTY ? prettyStdout : pino.destination({ dest: 1, sync: true }));
  return pino({
    level: process.env.LOG_LEVEL || opts.level || 'info',
    base: { service: opts.service },
    // Errors as { type, message, stack, cause } (pino's serializer follows `cause`).
    serializers: { err: pino.stdSerializers.errWithCause },
  }, destination);
}
