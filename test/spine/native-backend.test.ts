// NativeBackend: registering a model opens its weight files only. Its tokenizer is built after (a move towards the
// GPU or a job builds it at once), so a fresh worker's first move never waits for a large vocabulary; a tokenizer
// that cannot load fails the job that needs it with the reason, and the next job tries again.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseConfig } from '../../services/config/config.ts';
import type { JobData } from '../../contracts/job.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { makeTinyModel } from '../helpers/make-model.ts';

let dir: string;
let backend: NativeBackend;

const job = (prompt: string): JobData => ({
  v: 1, requestId: `nb-test-${Math.random().toString(36).slice(2, 10)}`, model: 'tiny', kind: 'completion', input: { type: 'text', prompt },
  sampling: { maxTokens: 4, temperature: 0, topP: 1, stop: [] }, arrivalMs: Date.now(), source: 'sdk',
});

async function generateText(prompt: string): Promise<string> {
  let text = '';
  for await (const ev of backend.generate('tiny', job(prompt), new AbortController().signal)) if ('text' in ev && typeof ev.text === 'string') text += ev.text;
  return text;
}

before(async () => {
  dir = await makeTinyModel({ family: 'llama', format: 'hf', seed: 9 });
  const config = parseConfig({ modelRoots: [dirname(dir)], budgets: { hostBytes: '64MiB', gpuBytes: '64MiB', scratchBytes: '64MiB' }, models: [{ id: 'tiny', path: dir }] }, {});
  backend = new NativeBackend(config, { backend: 'cpu', threads: 1 });
});
after(async () => {
  await backend?.close();
});

describe('NativeBackend registration and tokenizers', () => {
  it('registers and moves a model whose tokenizer cannot load; its job fails with the reason, the next one (file fixed) runs', async () => {
    const tokFile = join(dir, 'tokenizer.json');
    const good = readFileSync(tokFile, 'utf8');
    writeFileSync(tokFile, '{"model": ');
    const { bytes } = await backend.register({ id: 'tiny', path: dir } as Parameters<NativeBackend['register']>[0]);
    assert.ok(bytes > 0);
    assert.equal((await backend.move('load', 'tiny')).bytes, bytes);
    await backend.move('swap_in', 'tiny');
    assert.equal(backend.residency('tiny'), 'gpu');
    await assert.rejects(generateText('once upon'), (e: Error) => /tokenizer/i.test(e.message), 'the tokenizer error names the tokenizer');
    writeFileSync(tokFile, good);
    const text = await generateText('once upon');
    assert.ok(text.length > 0, 'generates once the tokenizer loads');
  });
});
