// Engine tuning (native/ts/tuning.ts): config `engine` defaults and refusals, Engine.create's validation, and the
// addon's split between production exports and its `testing` object.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadAddon } from '../../native/ts/addon.ts';
import { readArena } from '../../native/ts/arena.ts';
import { Engine, isEngineError } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { engineTuningSchema } from '../../native/ts/tuning.ts';
import { configSchema } from '../../services/config/config.ts';
import { makeTinyModel } from '../helpers/make-model.ts';

const made: string[] = [];
after(async () => { await Promise.all(made.map((p) => rm(dirname(p), { recursive: true, force: true }))); });

describe('engine tuning', () => {
  it('the config section defaults every knob and refuses unknown or out-of-range ones', () => {
    const c = configSchema.parse({});
    assert.deepEqual(c.engine, { exact: false, profile: false, pdl: true, fusedDecode: true, decodeGemv: '', l2PrefetchBytes: -1, attnSplits: 0, cudaGraphs: false, quantFold: false });
    assert.equal(configSchema.parse({ engine: { decodeGemv: 'qkv:4x4k/o:2x4', attnSplits: 8 } }).engine.attnSplits, 8);
    for (const bad of [{ attnSplits: 65 }, { decodeGemv: 'fast' }, { l2PrefetchBytes: -2 }, { pdll: false }]) {
      assert.equal(configSchema.safeParse({ engine: bad }).success, false, JSON.stringify(bad));
    }
  });

  it('Engine.create refuses bad tuning with invalid_request and runs with a valid one', async () => {
    const path = await makeTinyModel({ family: 'llama', format: 'hf', dtype: 'f32', seed: 3 });
    made.push(path);
    const source = await openModel(path);
    const arena = await readArena(source);
    const tokenizer = await loadTokenizer(source);
    await assert.rejects(Engine.createOnHostArena(arena, source, tokenizer, { tuning: { attnSplits: 100 } }),
      (e: unknown) => isEngineError(e) && e.code === 'invalid_request' && /attnSplits/.test(e.message));
    await assert.rejects(Engine.createOnHostArena(arena, source, tokenizer, { tuning: { cudaGraphs: 'yes' as unknown as boolean } }),
      (e: unknown) => isEngineError(e) && e.code === 'invalid_request' && /cudaGraphs/.test(e.message));
    const engine = await Engine.createOnHostArena(arena, source, tokenizer, { maxContext: 64, tuning: { exact: true, decodeGemv: '4x4k', cudaGraphs: true } });
    try {
      assert.deepEqual(engine.options.tuning, engineTuningSchema.parse({ exact: true, decodeGemv: '4x4k', cudaGraphs: true }));
      let tokens = 0;
      for await (const e of engine.generate({ prompt: [1, 5, 9], maxTokens: 3, temperature: 0, topP: 1, topK: 0 })) if (e.type === 'token') tokens++;
      assert.equal(tokens, 3);
    } finally {
      await engine.close();
    }
  });

  it('the production addon exports no test hooks; they live on its testing object', () => {
    const addon = loadAddon('cpu') as unknown as Record<string, unknown> & { NativeRuntime: { prototype: object }; testing: Record<string, unknown> };
    for (const hook of ['failNext', 'holdNext', 'releaseHold', 'acquireForTest', 'engineOps']) {
      assert.equal(hook in addon, false, hook);
      assert.equal(hook in addon.NativeRuntime.prototype, false, hook);
    }
    for (const hook of ['failNextMove', 'holdNextMove', 'releaseHold', 'acquireLease', 'engineOps']) assert.ok(hook in addon.testing, hook);
  });
});
