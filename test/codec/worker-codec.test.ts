// The worker's host-tier codec (config hostCodec.compress): a model loaded into the host tier is encoded in the
// background, its codec state is visible through the backend (what the worker publishes), the host usage drops to
// the compressed bytes, and a swap-in from the compressed copy serves the same greedy tokens.
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { parseConfig } from '../../services/config/config.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import type { JobData } from '../../contracts/job.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';

describe('worker: models entering the host tier are compressed in the background (CPU)', { skip: needsData() }, () => {
  let backend: NativeBackend;
  let config: ReturnType<typeof parseConfig>;
  before(() => {
    config = parseConfig({
      modelRoots: [dirname(STORIES260K_GGUF)], budgets: { hostBytes: '16MiB', gpuBytes: '16MiB', scratchBytes: '64MiB' },
      hostCodec: { compress: true, maxRatio: 0.9, workBytes: '8MiB' }, models: [{ id: 'stories', path: STORIES260K_GGUF }],
    }, {});
    backend = new NativeBackend(config, { backend: 'cpu', threads: 1 });
  });
  after(async () => { await backend?.close(); });

  it('encodes after load, charges the compressed bytes, and swaps in from them', async () => {
    assert.equal(backend.budgets.gpu, 8 * 1024 * 1024);  // 16 MiB less the codec work buffer
    // The parsed entry (with its maxTokens, which the worker enforces), not a bare { id, path }.
    const { bytes } = await backend.register(config.models[0]);
    assert.equal(backend.hostCodec('stories')?.state, 'none');
    await backend.move('load', 'stories');
    await backend.codecSettled();
    const c = backend.hostCodec('stories');
    assert.equal(c?.state, 'compressed');
    assert.ok(c.ratio > 0.5 && c.ratio < 0.9, `ratio ${c.ratio}`);
    assert.equal(backend.usage().host, Math.ceil(c.storedBytes / 4096) * 4096);
    assert.ok(backend.usage().host < bytes);
    await backend.move('swap_in', 'stories');
    assert.equal(backend.residency('stories'), 'gpu');
    const job = { input: { type: 'completion', prompt: 'Once upon a time' }, sampling: { maxTokens: 8, temperature: 0, topP: 1, topK: 0 } } as unknown as JobData;
    const text: string[] = [];
    for await (const e of backend.generate('stories', job, new AbortController().signal)) if (e.type === 'token') text.push(e.text);
    assert.equal(text.length, 8);
  });
});
