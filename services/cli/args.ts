// What every sub-command does with its arguments and its config before its own work: a usage error or a bad config
// is one clear line and exit code 2 (never a stack trace), `--help` prints the usage and exits 0.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig, type Config } from '../config/config.ts';

export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

export const STDIO: CommandIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** The flag every command takes. */
export const HELP = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * Parses `swapserve <command>`'s arguments. Returns the parsed values, or the exit code to return at once: 2 after
 * printing a usage error with the usage, 0 after printing the usage for --help.
 */
export function parseCommand<T extends ParseArgsConfig>(command: string, usage: string, config: T, io: CommandIo = STDIO):
  ReturnType<typeof parseArgs<T>> | number {
  let parsed: ReturnType<typeof parseArgs<T>>;
  try {
    parsed = parseArgs(config);
  } catch (e) {
    io.err(`swapserve ${command}: ${(e as Error).message}\n\n${usage}`);
    return 2;
  }
  if ((parsed.values as { help?: unknown }).help === true) {
    io.out(usage);
    return 0;
  }
  return parsed;
}

/**
 * Loads the config (file, else SWAPSERVE_CONFIG, else defaults) for a command. Returns it, or 2 after printing why
 * it is invalid, or (with `needsRedis`) that no Redis is configured.
 */
export function loadCommandConfig(command: string, file: string | undefined, opts: { needsRedis?: boolean; io?: CommandIo } = {}): Config | number {
  const io = opts.io ?? STDIO;
  let config: Config;
  try {
    config = loadConfig(file);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    io.err(`swapserve ${command}: ${e.message}\n`);
    return 2;
  }
  if (opts.needsRedis && !config.redisUrl) {
    io.err(`swapserve ${command}: no Redis configured; set REDIS_URL or redisUrl in the config${command === 'gateway' ? ' (or use `swapserve up`)' : ''}\n`);
    return 2;
  }
  return config;
}
