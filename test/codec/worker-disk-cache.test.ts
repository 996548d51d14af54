// The worker's compressed disk cache (config hostCodec.diskCacheBytes) with stories260K: the first cold load encodes
// and writes <dataDir>/codec-cache/<model>-<key>.ssc; the next cold load reads it (fewer bytes, compressed with no
// encode, the same greedy text); a touched source makes it stale, a bit flip or truncation corrupt: each is logged on
// the worker's structured log, deleted, the raw files read, and the file rebuilt; the byte bound evicts the least
// recently used file, also across two workers sharing the data dir.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { parseConfig } from '../../services/config/config.ts';
import { createLogger, type Logger } from '../../services/config/log.ts';
import { CACHE_DIR, DiskCache } from '../../services/worker/codec-cache.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import type { JobData } from '../../contracts/job.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';

type Line = Record<string, unknown>;

/** A pino logger whose JSON lines are kept (the test runner's LOG_LEVEL would silence it: it is read, not printed). */
function capture(): { log: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const level = process.env.LOG_LEVEL;
  delete process.env.LOG_LEVEL;
  const log = createLogger({ service: 'worker', level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Line); } } });
  if (level !== undefined) process.env.LOG_LEVEL = level;
  return { log, lines };
}

const job = { input: { type: 'completion', prompt: 'Once upon a time' }, sampling: { maxTokens: 12, temperature: 0, topP: 1, topK: 0 } } as unknown as JobData;

describe('worker: compressed disk cache under dataDir (CPU, stories260K)', { skip: needsData() }, () => {
  let dir = '';
  let models = '';
  let dataDir = '';
  let cacheDir = '';
  let backend: NativeBackend;
  let lines: Line[] = [];
  let rawBytes = 0;
  let rawText = '';
  const config = (diskCacheBytes: string) => parseConfig({
    dataDir, modelRoots: [models], budgets: { hostBytes: '16MiB', gpuBytes: '16MiB', scratchBytes: '64MiB' },
    hostCodec: { compress: true, workBytes: '8MiB', diskCacheBytes },
    models: [{ id: 'stories', path: join(models, 'a.gguf') }, { id: 'stories-b', path: join(models, 'b.gguf') }],
  }, {});
  const entry = (id: string, _file: string) => {
    const e = config('64MiB').models.find((m) => m.id === id);
    assert.ok(e);
    return e;
  };
  const cacheFiles = () => readdirSync(cacheDir).filter((n) => n.endsWith('.ssc')).sort();
  const text = async (b: NativeBackend, id: string): Promise<string> => {
    await b.move('swap_in', id);
    const out: string[] = [];
    try {
      for await (const e of b.generate(id, job, new AbortController().signal)) if (e.type === 'token') out.push(e.text);
    } finally {
      await b.move('evict', id);
    }
    assert.equal(out.length, 12);
    return out.join('');
  };
  /** Drop, cold load, wait for the background encode / write / clean-up. */
  const reload = async (b: NativeBackend, id: string) => {
    if (b.residency(id) !== 'disk') await b.move('drop', id);
    const from = lines.length;
    const r = await b.move('load', id);
    const codecAtLoad = b.hostCodec(id)?.state;
    await b.codecSettled();
    return { r, codecAtLoad, logged: lines.slice(from) };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'swapserve-worker-cache-'));
    models = join(dir, 'models');
    dataDir = join(dir, 'data');
    cacheDir = join(dataDir, CACHE_DIR);
    mkdirSync(models);
    copyFileSync(STORIES260K_GGUF, join(models, 'a.gguf'));  // a copy: the stale test touches it
    copyFileSync(STORIES260K_GGUF, join(models, 'b.gguf'));
    const c = capture();
    lines = c.lines;
    backend = new NativeBackend(config('64MiB'), { backend: 'cpu', threads: 1, log: c.log });
    assert.ok(existsSync(cacheDir), 'the cache folder is made at start');
    ({ bytes: rawBytes } = await backend.register(entry('stories', 'a.gguf')));
  });
  after(async () => { await backend?.close(); rmSync(dir, { recursive: true, force: true }); });

  it('the first cold load encodes and writes the cache file; the second reads it: fewer bytes, no encode, same text', async () => {
    const first = await reload(backend, 'stories');
    assert.equal(first.codecAtLoad, 'encoding', 'no cache file yet: raw read, then encoded in the background');
    assert.equal(first.r.bytes, rawBytes);
    assert.equal(backend.hostCodec('stories')?.state, 'compressed');
    assert.equal(cacheFiles().length, 1);
    const file = join(cacheDir, cacheFiles()[0]);
    assert.match(cacheFiles()[0], /^stories-[0-9a-f]{16}\.ssc$/);
    assert.ok(first.logged.some((l) => l.code === 'codec_cache_written' && l.model === 'stories' && l.bytes === statSync(file).size), JSON.stringify(first.logged));
    rawText = await text(backend, 'stories');

    const second = await reload(backend, 'stories');
    assert.equal(second.codecAtLoad, 'compressed', 'compressed as the load resolves: read, not encoded');
    assert.equal(second.r.bytes, statSync(file).size);
    assert.ok(second.r.bytes < rawBytes, `${second.r.bytes} bytes read vs ${rawBytes} raw`);
    assert.ok(second.logged.some((l) => l.code === 'codec_cache_hit' && l.level === 30));
    assert.ok(!second.logged.some((l) => l.code === 'codec_cache_written'), 'not written again');
    assert.equal(await text(backend, 'stories'), rawText);
  });

  const rejected = async (outcome: string, reason: RegExp) => {
    const name = cacheFiles()[0];
    const before = readFileSync(join(cacheDir, name));
    const { r, codecAtLoad, logged } = await reload(backend, 'stories');
    assert.equal(codecAtLoad, 'encoding', 'the raw files were read (and are being encoded)');
    assert.equal(r.bytes, rawBytes);
    const warn = logged.find((l) => l.code === 'codec_cache_rejected');
    assert.ok(warn, JSON.stringify(logged));
    assert.equal(warn.level, 40, 'a warning');
    assert.equal(warn.outcome, outcome);
    assert.match(String(warn.reason), reason);
    assert.match(String(warn.msg), /deleted it/);
    // Deleted, then rebuilt from the new encode (not the bad file's bytes).
    assert.ok(logged.some((l) => l.code === 'codec_cache_written'), JSON.stringify(logged));
    assert.deepEqual(cacheFiles(), [name]);
    assert.ok(!readFileSync(join(cacheDir, name)).equals(before), 'a new file');
    const hit = await reload(backend, 'stories');
    assert.equal(hit.codecAtLoad, 'compressed', 'the rebuilt file is used');
    assert.equal(await text(backend, 'stories'), rawText);
  };

  it('a touched source file makes the cache stale: logged, deleted, raw read, rebuilt', async () => {
    const t = new Date(Date.now() + 5000);
    utimesSync(join(models, 'a.gguf'), t, t);
    await rejected('stale', /identity differs/);
  });

  it('a bit flipped in the cache file: logged as corrupt, deleted, raw read, rebuilt', async () => {
    const p = join(cacheDir, cacheFiles()[0]);
    const b = readFileSync(p);
    b[b.length - 100] ^= 0x04;
    writeFileSync(p, b);
    await rejected('corrupt', /checksum mismatch/);
  });

  it('a truncated cache file: logged as corrupt, deleted, raw read, rebuilt', async () => {
    const p = join(cacheDir, cacheFiles()[0]);
    truncateSync(p, statSync(p).size - 4096);
    await rejected('corrupt', /truncated/);
  });

  it('the byte bound evicts the least recently used file, across two workers sharing the data dir', async () => {
    const size = statSync(join(cacheDir, cacheFiles()[0])).size;
    const c = capture();
    // Room for one file, not two.
    const other = new NativeBackend(config(String(Math.floor(1.5 * size))), { backend: 'cpu', threads: 1, log: c.log });
    try {
      await other.register(entry('stories', 'a.gguf'));
      await other.register(entry('stories-b', 'b.gguf'));
      const a = cacheFiles()[0];
      await other.move('load', 'stories');
      assert.equal(other.hostCodec('stories')?.state, 'compressed', "the other worker reads the first one's file");
      await other.codecSettled();
      await other.move('load', 'stories-b');
      await other.codecSettled();
      const b = cacheFiles().find((n) => n !== a);
      assert.ok(b?.startsWith('stories-b-'), String(cacheFiles()));
      assert.deepEqual(cacheFiles(), [b], `the older file is evicted: ${cacheFiles()}`);
      assert.ok(c.lines.some((l) => l.code === 'codec_cache_evicted' && l.path === join(cacheDir, a)));
      // The evicted model loads raw again (and is cached again, evicting the other).
      await other.move('drop', 'stories');
      await other.move('load', 'stories');
      assert.equal(other.hostCodec('stories')?.state, 'encoding');
      await other.codecSettled();
      assert.deepEqual(cacheFiles(), [a]);
    } finally {
      await other.close();
    }
  });

  it('an image larger than the bound is not written', async () => {
    const c = capture();
    const small = new NativeBackend(config('64KiB'), { backend: 'cpu', threads: 1, log: c.log });
    try {
      await small.register(entry('stories-b', 'b.gguf'));
      await small.move('load', 'stories-b');
      await small.codecSettled();
      assert.equal(small.hostCodec('stories-b')?.state, 'compressed');
      assert.ok(c.lines.some((l) => l.code === 'codec_cache_skipped'));
      assert.ok(!cacheFiles().some((n) => n.startsWith('stories-b-')));
    } finally {
      await small.close();
    }
  });
});

describe('DiskCache.evict: LRU by mtime, temporary files of crashed writers', () => {
  it('deletes the oldest files until under the bound, never the kept one, and stale temporaries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-evict-'));
    try {
      const c = capture();
      const cache = new DiskCache(dir, 2500, c.log);
      mkdirSync(cache.dir);
      const at = (name: string, bytes: number, ageS: number) => {
        const p = join(cache.dir, name);
        writeFileSync(p, Buffer.alloc(bytes));
        const t = new Date(Date.now() - ageS * 1000);
        utimesSync(p, t, t);
        return p;
      };
      const oldest = at('a-0.ssc', 1000, 300);
      const kept = at('b-0.ssc', 1000, 200);  // older than c but kept (just written)
      const mid = at('c-0.ssc', 1000, 100);
      const fresh = at('d-0.ssc', 1000, 10);
      const deadTmp = at('e-0.ssc.tmp-1-abcd', 1000, 7200);
      const liveTmp = at('f-0.ssc.tmp-2-abcd', 1000, 60);
      const other = at('notes.txt', 5000, 9999);
      const deleted = await cache.evict(kept);
      assert.deepEqual(deleted.sort(), [oldest, mid, deadTmp].sort());
      for (const p of [kept, fresh, liveTmp, other]) assert.ok(existsSync(p), p);
      assert.equal(c.lines.filter((l) => l.code === 'codec_cache_evicted').length, 2);
      // A kept file larger than the bound by itself goes too.
      const huge = at('g-0.ssc', 4000, 0);
      assert.ok((await cache.evict(huge)).includes(huge));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('config: hostCodec.diskCacheBytes', () => {
  it('is off by default and refused without compress', () => {
    assert.equal(parseConfig({}, {}).hostCodec.diskCacheBytes, 0);
    assert.throws(() => parseConfig({ hostCodec: { diskCacheBytes: '1GiB' } }, {}), /hostCodec\.diskCacheBytes.*needs hostCodec\.compress/s);
  });
});
