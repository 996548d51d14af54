// `swapserve gateway [--config FILE]`: the HTTP gateway alone (Redis from config or REDIS_URL).
import { HELP, loadCommandConfig, parseCommand } from './args.ts';
import { startGateway } from '../gateway/server.ts';
import { initTelemetry, shutdownTelemetry } from '../telemetry/sdk.ts';

const USAGE = 'usage: swapserve gateway [--config FILE]   (env: REDIS_URL, PORT, HOST, SWAPSERVE_CONFIG)\n';

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand('gateway', USAGE, { args: argv, options: { config: { type: 'string', short: 'c' }, ...HELP } });
  if (typeof parsed === 'number') return parsed;
  const config = loadCommandConfig('gateway', parsed.values.config, { needsRedis: true });
  if (typeof config === 'number') return config;
  initTelemetry({ serviceName: 'swapserve-gateway' });
  const gw = await startGateway(config);
  process.stdout.write(`gateway listening on ${gw.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await gw.close();
  await shutdownTelemetry();
  return 0;
}
