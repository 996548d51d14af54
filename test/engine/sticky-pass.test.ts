// The engine-pass test hook (issue 11, health wire): failNextPass on an engine or on its runtime makes the next pass
// fail; a sticky code marks the runtime unusable exactly as a move's does (runtime.healthy false, moves refused) and
// every later pass over that runtime fails fast with `unusable`; any other code fails that one pass only.
// Real native runtime and engine (CPU backend), stories260K.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Engine, EngineError, type GenerateEvent } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { failNextPass } from '../../native/ts/testing.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';

const MiB = 1 << 20;

async function ids(it: AsyncIterable<GenerateEvent>): Promise<number[]> {
  const out: number[] = [];
  for await (const e of it) if (e.type === 'token') out.push(e.id);
  return out;
}

/** A CPU runtime holding stories260K on its compute tier, and an engine-maker over it. */
async function setUp(): Promise<{ rt: Runtime; engine: () => Promise<Engine> }> {
  const source = await openModel(STORIES260K_GGUF);
  const tokenizer = await loadTokenizer(source);
  const rt = Runtime.open({ backend: 'cpu', hostBudgetBytes: 4 * MiB, gpuBudgetBytes: 4 * MiB, scratchBudgetBytes: 64 * MiB });
  rt.register('stories', source.layout);
  await rt.load('stories');
  await rt.swapIn('stories');
  return { rt, engine: () => Engine.create(rt, 'stories', source, tokenizer, { maxContext: 64 }) };
}

const req = { prompt: [1], maxTokens: 4, temperature: 0, topP: 1, topK: 0 };

function native(code: string, message?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof EngineError, `an EngineError, got ${String(e)}`);
    assert.equal(e.nativeCode, code);
    if (message) assert.match(e.message, message);
    return true;
  };
}

describe('failNextPass (CPU backend)', { skip: needsData() }, () => {
  it("a sticky pass on one engine: that pass fails cuda_sticky, the runtime is unusable, later passes fail 'unusable'", async () => {
    const { rt, engine } = await setUp();
    const a = await engine();
    const b = await engine();
    try {
      assert.equal((await ids(a.generate(req))).length, 4, 'a healthy pass first');
      failNextPass(a, 'cuda_sticky');
      await assert.rejects(ids(a.generate(req)), native('cuda_sticky', /cudaErrorLaunchFailure/));
      assert.equal(rt.healthy, false, 'the engine pass marked the runtime unusable');
      // Every engine over the runtime, and its moves, now refuse: the context is the process's.
      await assert.rejects(ids(a.generate(req)), native('unusable', /sticky CUDA error/));
      await assert.rejects(ids(b.generate(req)), native('unusable'));
      await assert.rejects(rt.load('stories'), (e: unknown) => (e as { code?: string }).code === 'unusable');
    } finally {
      await a.close();
      await b.close();
      await rt.close();
    }
  });

  it('armed on the runtime before any engine exists: the first pass of the engine made later fails', async () => {
    const { rt, engine } = await setUp();
    failNextPass(rt, 'cuda_sticky');
    const e = await engine();
    try {
      await assert.rejects(ids(e.generate(req)), native('cuda_sticky'));
      assert.equal(rt.healthy, false);
    } finally {
      await e.close();
      await rt.close();
    }
  });

  it('a non-sticky code fails that pass only: the runtime stays healthy and the next request completes', async () => {
    const { rt, engine } = await setUp();
    const e = await engine();
    try {
      failNextPass(e, 'cuda');
      await assert.rejects(ids(e.generate(req)), native('cuda', /injected fault/));
      assert.equal(rt.healthy, true);
      assert.equal((await ids(e.generate(req))).length, 4);
    } finally {
      await e.close();
      await rt.close();
    }
  });

  it('refuses an unknown code and a closed engine with clear errors', async () => {
    const { rt, engine } = await setUp();
    const e = await engine();
    try {
      assert.throws(() => failNextPass(e, 'no_such_code' as 'cuda'), /Expected a native error code for code but received "no_such_code"/);
      assert.throws(() => failNextPass(rt, 'no_such_code' as 'cuda'), /Expected a native error code/);
      await e.close();
      assert.throws(() => failNextPass(e, 'cuda_sticky'), /engine is closed/);
      assert.equal(rt.healthy, true, 'nothing was armed');
    } finally {
      await e.close();
      await rt.close();
    }
  });
});
