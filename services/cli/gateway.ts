// `swapserve gateway [--config FILE]`: the HTTP gateway alone (Redis from config or REDIS_URL).
import { parseArgs } from 'node:util';
import { loadConfig } from '../shared/config.ts';
import { startGateway } from '../gateway/server.ts';
import { initTelemetry, shutdownTelemetry } from '../telemetry/sdk.ts';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write('usage: swapserve gateway [--config FILE]   (env: REDIS_URL, PORT, HOST, SWAPSERVE_CONFIG)\n');
    return 0;
  }
  const config = loadConfig(values.config);
  if (!config.redisUrl) {
    process.stderr.write('swapserve gateway: no Redis configured; set REDIS_URL or redisUrl in the config (or use `swapserve up`)\n');
    return 2;
  }
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
