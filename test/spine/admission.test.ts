// The worker's admission gate (services/worker/admission.ts): caps, engine capacity from Engine.stats(), fairness
// between models. Pure decisions over given numbers; the gate in front of real BullMQ consumers is exercised end to
// end by test/bench/load.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Admission, type EngineStats, type ModelCapacity } from '../../services/worker/admission.ts';

const stats = (s: Partial<EngineStats>): EngineStats => ({ active: 0, waiting: 0, blockTokens: 16, blocksTotal: 100, blocksFree: 100, maxBatch: 256, ...s });

describe('Admission', { timeout: 10_000 }, () => {
  it('holds at most the worker cap and a model at most its own cap', () => {
    const a = new Admission(3, () => null);
    a.setModelCap('m', 2);
    assert.equal(a.room('m'), true);
    a.took('m'); a.took('m');
    assert.equal(a.room('m'), false, 'model cap 2');
    assert.equal(a.room('n'), true);
    a.took('n');
    assert.equal(a.room('n'), false, 'worker cap 3');
    a.release('m');
    assert.equal(a.room('n'), true);
  });

  it('without engine stats holds one batch per model', () => {
    const cap: ModelCapacity = { stats: null, maxBatch: 2, meanSeqTokens: 0 };
    const a = new Admission(64, () => cap);
    a.took('m');
    assert.equal(a.room('m'), true);
    a.took('m');
    assert.equal(a.room('m'), false);
  });

  it('with stats takes jobs while the free KV blocks hold them at the recent mean length', () => {
    let s = stats({ active: 10, blocksFree: 8 }); // 8 blocks × 16 tokens = 128 tokens free
    const a = new Admission(256, () => ({ stats: s, maxBatch: 256, meanSeqTokens: 64 }));
    for (let i = 0; i < 10; i++) a.took('m'); // the 10 running
    assert.equal(a.room('m'), true, 'room for 2 sequences of 64 tokens');
    a.took('m'); // on its way to the engine
    assert.equal(a.room('m'), true);
    a.took('m');
    assert.equal(a.room('m'), false, 'two taken, not in the engine yet: the free blocks are spoken for');
    s = stats({ active: 10, waiting: 2, blocksFree: 8 });
    assert.equal(a.room('m'), false, 'the engine queues them: still no room');
    s = stats({ active: 12, waiting: 0, blocksFree: 0 });
    assert.equal(a.room('m'), false, 'no free block');
    s = stats({ active: 0, waiting: 0, blocksFree: 0 });
    for (let i = 0; i < 12; i++) a.release('m');
    assert.equal(a.room('m'), true, 'an idle engine always takes one');
    s = stats({ active: 256, blocksFree: 50 });
    assert.equal(a.room('m'), false, 'batch full');
  });

  it('serves waiting consumers fewest-held first, so models share the cap', async () => {
    const a = new Admission(4, () => null);
    for (let i = 0; i < 4; i++) a.took('big');
    const order: string[] = [];
    const never = () => false;
    // 'big' asks first, then 'small': the freed slot goes to 'small' (0 held) although 'big' waited longer.
    const pBig = a.acquire('big', never).then((ok) => { order.push(`big:${ok}`); if (ok) a.settle('big', true); });
    const pSmall = a.acquire('small', never).then((ok) => { order.push(`small:${ok}`); if (ok) a.settle('small', true); });
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(order, []);
    a.release('big');
    await pSmall;
    assert.deepEqual(order, ['small:true']);
    a.release('big');
    await pBig;
    assert.deepEqual(order, ['small:true', 'big:true']);
    a.close();
  });

  it('ends a wait with false once its consumer closes', async () => {
    const a = new Admission(1, () => null);
    a.took('m');
    let closing = false;
    const p = a.acquire('m', () => closing);
    closing = true;
    assert.equal(await p, false);
    a.close();
  });
});
