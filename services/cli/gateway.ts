// `swapserve gateway [--config FILE]`: the HTTP gateway alone (Redis from config or REDIS_URL).
import { HELP, loadCommandConfig, parseCommand } from './args.ts';
import { startGateway } from '../gateway/server.ts';
import { createLogger } from '../config/log.ts';
import { runUntilStopped } from '../health/lifecycle.ts';
import { initTelemetry, shutdownTelemetry } from '../telemetry/sdk.ts';

const USAGE = 'usage: swapserve gateway [--config FILE]   (env: REDIS_URL, PORT, HOST, SWAPSERVE_CONFIG)\n';

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand('gateway', USAGE, { args: argv, options: { config: { type: 'string', short: 'c' }, ...HELP } });
  if (typeof parsed === 'number') return parsed;
  const config = loadCommandConfig('gateway', parsed.values.config, { needsRedis: true });
  if (typeof config === 'number') return config;
  initTelemetry({ serviceName: 'swapserve-gateway' });
  const log = createLogger({ service: 'gateway', level: config.log.level });
  const gw = await startGateway(config, { log });
  process.stdout.write(`gateway listening on ${gw.url}\n`);
  const code = await runUntilStopped({
    log, health: null, beginDrain: () => gw.beginDrain(), close: () => gw.close(), onTimeout: () => gw.forceClose(),
    graceMs: config.shutdown.graceMs, timeoutMs: config.shutdown.timeoutMs,
  });
  await shutdownTelemetry();
  if (code !== 0) process.exit(code);
  return code;
}
