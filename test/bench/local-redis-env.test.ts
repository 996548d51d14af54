// The headline bench on the GPU machine runs a carried redis-server named by SWAPSERVE_REDIS_SERVER (scripts/uncarry.sh
// sets it; there is none on the PATH there): startLocalRedis must use it, and say so clearly when it is not runnable.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';

import { findRedisServer, RedisNotFoundError, startLocalRedis } from '../../services/dev/local-redis.ts';
import { connect } from '../../services/client/queues.ts';

describe('local redis-server from SWAPSERVE_REDIS_SERVER', () => {
  const saved = process.env.SWAPSERVE_REDIS_SERVER;
  afterEach(() => {
    if (saved === undefined) delete process.env.SWAPSERVE_REDIS_SERVER;
    else process.env.SWAPSERVE_REDIS_SERVER = saved;
  });

  it('starts the binary the variable names', async () => {
    const bin = execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
    process.env.SWAPSERVE_REDIS_SERVER = bin;
    assert.equal(findRedisServer(), bin);
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-redis-env-'));
    const r = await startLocalRedis(dir);
    const c = connect(r.url);
    try {
      assert.equal(await c.ping(), 'PONG');
    } finally {
      c.disconnect();
      await r.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a variable naming nothing runnable is a RedisNotFoundError, not a crash', async () => {
    process.env.SWAPSERVE_REDIS_SERVER = '/nonexistent/redis-server';
    assert.equal(findRedisServer(), null);
    await assert.rejects(startLocalRedis(join(tmpdir(), 'unused')), RedisNotFoundError);
  });
});
