// Spine test fixture: a real Redis, an in-process CPU worker over the native runtime, and the gateway.
import { parseConfig, type Config } from '../../services/config/config.ts';
import { startGateway, type Gateway } from '../../services/gateway/server.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { SwapWorker } from '../../services/worker/worker.ts';
import { DATA_MODELS } from '../helpers/data.ts';
import type { TestRedis } from '../helpers/redis.ts';

export { DATA_MODELS };
export const STORIES = 'stories260K/stories260K.gguf';

/** Two copies of stories260K under different ids; the GPU tier holds one (1.5 MiB), the host tier all. */
export function twoModelConfig(redis: TestRedis, extra: Record<string, unknown> = {}): Config {
  return parseConfig({
    prefix: redis.prefix(),
    modelRoots: [DATA_MODELS],
    budgets: { hostBytes: '16MiB', gpuBytes: '1.5MiB', scratchBytes: '64MiB' },
    gateway: { port: 0, keepAliveMs: 100 },
    worker: { concurrency: 2 },
    models: [{ id: 'story-a', path: STORIES }, { id: 'story-b', path: STORIES }],
    ...extra,
  }, { REDIS_URL: redis.url });
}

export async function startWorker(config: Config): Promise<SwapWorker> {
  const w = new SwapWorker({ config, backend: new NativeBackend(config, { backend: 'cpu', threads: 1 }) });
  await w.start();
  return w;
}

export interface Stack {
  config: Config;
  worker: SwapWorker;
  gateway: Gateway;
  close(): Promise<void>;
}

export async function startStack(config: Config): Promise<Stack> {
  const worker = await startWorker(config);
  const gateway = await startGateway(config);
  return {
    config, worker, gateway,
    close: async () => {
      await Promise.allSettled([gateway.close()]);
      await Promise.allSettled([worker.close()]);
    },
  };
}
