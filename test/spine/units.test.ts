// Pure pieces of the spine: the path definition, attempt filtering (no duplicate tokens), config validation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { classifyPath, type GpuArrival } from '../../services/worker/residency.ts';
import { AttemptFilter } from '../../services/client/stream.ts';
import { ConfigError, parseConfig } from '../../services/config/config.ts';
import type { StreamEvent } from '../../contracts/stream.ts';
import { RequestError } from '../../contracts/errors.ts';

describe('classifyPath', () => {
  const swap: GpuArrival = { atMs: 1000, load: { startMs: 100, endMs: 300 }, swap: { startMs: 900, endMs: 1000 } };
  const disk: GpuArrival = { atMs: 1000, load: { startMs: 700, endMs: 900 }, swap: { startMs: 900, endMs: 1000 } };
  const cases: [string, number, number, GpuArrival, number, Partial<ReturnType<typeof classifyPath>>][] = [
    ['resident before arrival -> warm', 1200, 1201, swap, 0, { path: 'warm', loadMs: 0, swapMs: 0, queueMs: 1 }],
    ['waited for a host->GPU copy -> swap', 950, 1000, swap, 0, { path: 'swap', swapMs: 50, loadMs: 0, queueMs: 0 }],
    ['waited for a disk read -> cold disk_load', 600, 1000, disk, 0, { path: 'cold', coldReason: 'disk_load', loadMs: 200, swapMs: 100, queueMs: 100 }],
    ['arrived during the disk read -> cold disk_load', 800, 1000, disk, 0, { path: 'cold', coldReason: 'disk_load', loadMs: 100, swapMs: 100, queueMs: 0 }],
    ['arrived after the disk read, before the copy -> swap', 950, 1000, disk, 0, { path: 'swap', loadMs: 0, swapMs: 50 }],
    ['arrived before the worker started -> cold worker_start', 500, 1000, disk, 550, { path: 'cold', coldReason: 'worker_start' }],
  ];
  for (const [name, arrival, ready, gpu, started, want] of cases) {
    it(name, () => {
      const got = classifyPath(arrival, ready, gpu, started);
      for (const [k, v] of Object.entries(want)) assert.equal(got[k as keyof typeof got], v, k);
    });
  }
});

describe('AttemptFilter', () => {
  const tok = (attempt: string, index: number): StreamEvent => ({ type: 'token', attempt, index, id: index, text: `t${index}`, path: 'warm' });
  it('switches silently to a new attempt when nothing was delivered', () => {
    const f = new AttemptFilter();
    assert.equal(f.accept({ type: 'progress', attempt: 'a', stage: 'loading' })?.type, 'progress');
    assert.equal(f.accept(tok('b', 0))?.attempt, 'b');
    assert.equal(f.accept(tok('a', 0)), null, 'the abandoned attempt is ignored');
    assert.equal(f.accept(tok('b', 1))?.type, 'token');
  });
  it('ends with worker_lost when a new attempt follows delivered tokens', () => {
    const f = new AttemptFilter();
    f.accept(tok('a', 0));
    f.accept(tok('a', 1));
    const ev = f.accept(tok('b', 0));
    assert.equal(ev?.type, 'error');
    assert.equal(ev?.type === 'error' && ev.code, 'worker_lost');
    assert.equal(ev?.type === 'error' && ev.retryable, true);
  });
  it('drops a repeated token index', () => {
    const f = new AttemptFilter();
    f.accept(tok('a', 0));
    assert.equal(f.accept(tok('a', 0)), null);
  });
});

describe('config', () => {
  it('applies defaults, byte sizes and env overrides', () => {
    const c = parseConfig({ modelRoots: ['/models'], budgets: { gpuBytes: '1.5GiB' }, models: [{ id: 'm', path: 'a/b.gguf' }] }, { REDIS_URL: 'redis://x:1', PORT: '9000' });
    assert.equal(c.budgets.gpuBytes, 1.5 * 2 ** 30);
    assert.equal(c.gateway.port, 9000);
    assert.equal(c.redisUrl, 'redis://x:1');
    assert.equal(c.models[0].path, '/models/a/b.gguf');
    assert.equal(c.prefix, '{swapserve}');
  });
  it('refuses weights outside the model roots, duplicate ids and bad values with ConfigError', () => {
    assert.throws(() => parseConfig({ modelRoots: ['/models'], models: [{ id: 'm', path: '../etc/passwd' }] }, {}), ConfigError);
    assert.throws(() => parseConfig({ modelRoots: ['/models'], models: [{ id: 'm', path: '/etc/passwd' }] }, {}), ConfigError);
    assert.throws(() => parseConfig({ models: [{ id: 'm', path: 'a' }, { id: 'm', path: 'b' }] }, {}), /duplicate model id/);
    assert.throws(() => parseConfig({ budgets: { hostBytes: 'lots' } }, {}), /byte size/);
    assert.throws(() => parseConfig({}, { PORT: 'eighty' }), ConfigError);
  });
});

describe('errors', () => {
  it('never leaks internals in 5xx bodies', () => {
    const e = new RequestError('internal_error', { message: 'ECONNRESET at /srv/secret.ts:12' });
    assert.equal(e.toBody().error.message, 'Internal server error');
    assert.equal(e.status, 500);
  });
});
