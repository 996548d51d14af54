// Model-file I/O guard: deadlines, the cap on libuv threads held by calls that never return (a dead mount), and
// lanes coming back when such calls finally do.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ModelFileError } from '../../native/ts/model/errors.ts';
import { guarded, MODEL_IO_LANES, openRegularFile } from '../../native/ts/model/safe-io.ts';

/** An operation that returns only when `release()` is called (what open() on a dead mount does, forever). */
function blocked(): { op: () => Promise<string>; release: () => void } {
  let release!: () => void;
  const p = new Promise<string>((r) => { release = () => r('late'); });
  return { op: () => p, release };
}

const isTimeout = (e: unknown) => e instanceof ModelFileError && e.code === 'timeout';

describe('safe-io guard', () => {
  it('a call past its deadline fails with timeout naming the file; stuck calls hold their lanes until they return', async () => {
    const stuck = Array.from({ length: MODEL_IO_LANES }, blocked);
    for (const s of stuck) {
      await assert.rejects(guarded('/mnt/dead/model.gguf', 'open', s.op, { timeoutMs: 50 }), (e: unknown) => {
        assert.ok(isTimeout(e));
        assert.match((e as Error).message, /^\/mnt\/dead\/model\.gguf: open did not finish within 50 ms/);
        return true;
      });
    }
    // Every lane is held by a blocked call: the next one fails at once instead of queueing behind them.
    const t0 = performance.now();
    await assert.rejects(guarded('/x', 'stat', async () => 'never runs', { timeoutMs: 5000 }), isTimeout);
    assert.ok(performance.now() - t0 < 100, 'fails at once');
    // The kernel returns at last: the lanes come back.
    for (const s of stuck) s.release();
    await new Promise((r) => setImmediate(r));
    assert.equal(await guarded('/x', 'stat', async () => 'ok', { timeoutMs: 1000 }), 'ok');
  });

  it('a late result is disposed of (a handle opened after the deadline is closed)', async () => {
    const s = blocked();
    let disposed: string | null = null;
    await assert.rejects(guarded('/f', 'open', s.op, { timeoutMs: 20 }, (late) => { disposed = late; }), isTimeout);
    s.release();
    await new Promise((r) => setImmediate(r));
    assert.equal(disposed, 'late');
  });

  it('/dev/null and a directory are refused as not regular files', async () => {
    await assert.rejects(openRegularFile('/dev/null'), /not a regular file \(a device\)/);
    await assert.rejects(openRegularFile('/tmp'), /not a regular file/);
  });
});
