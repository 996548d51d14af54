// Idempotency-Key through a real gateway and CPU worker: a key is scoped to its caller and bound to its body, so a
// retry replays its own request, a reused key with another body is a 409, and no caller gets another's answer.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyRequest } from 'fastify';
import { callerScope } from '../../services/gateway/idempotency.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { needsData } from '../helpers/requires.ts';
import { isOpenAIError } from '../helpers/raw-http.ts';
import { startStack, twoModelConfig, type Stack } from './stack.ts';

/** Why this file's tests skip on a developer's machine (under CI a missing need fails). */
const SKIP = needsData();

let redis: TestRedis;
let stack: Stack;
before(async () => {
  if (SKIP) return;
  redis = await startRedis();
  stack = await startStack(twoModelConfig(redis));
});
after(async () => {
  await stack?.close();
  await redis?.stop();
});

interface Answer { status: number; requestId: string | null; text: string; body: unknown }

async function complete(prompt: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${stack.gateway.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'story-a', prompt, max_tokens: 6, temperature: 0 }),
  });
  const body = await res.json() as { choices?: { text: string }[] };
  return { status: res.status, requestId: res.headers.get('x-request-id'), text: body.choices?.[0]?.text ?? '', body };
}

describe('Idempotency-Key scoped by caller and bound to the body', { skip: SKIP }, () => {
  it('a retry with the same key and body replays the first request', async () => {
    const a = await complete('Once upon a time', { 'idempotency-key': 'same-1' });
    const b = await complete('Once upon a time', { 'idempotency-key': 'same-1' });
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(b.requestId, a.requestId, 'attached to the first request');
    assert.equal(b.text, a.text);
  });

  it('the same key with a different body is a 409 idempotency_conflict, not the first answer', async () => {
    const first = await complete('The cat sat', { 'idempotency-key': 'reused-1' });
    assert.equal(first.status, 200);
    const second = await complete('A dog ran', { 'idempotency-key': 'reused-1' });
    assert.equal(second.status, 409);
    assert.ok(isOpenAIError(second.body));
    assert.equal((second.body as { error: { code: string; param: string } }).error.code, 'idempotency_conflict');
    assert.equal((second.body as { error: { code: string; param: string } }).error.param, 'Idempotency-Key');
  });

  it('two callers (Idempotency-Scope) with the same key each get the answer to their own prompt', async () => {
    const [alice, bob] = await Promise.all([
      complete('Once upon a time', { 'idempotency-key': 'shared-key', 'idempotency-scope': 'alice' }),
      complete('The little girl', { 'idempotency-key': 'shared-key', 'idempotency-scope': 'bob' }),
    ]);
    assert.equal(alice.status, 200);
    assert.equal(bob.status, 200);
    assert.notEqual(alice.requestId, bob.requestId);
    // Each text is what that prompt gives without any key (greedy decoding is deterministic).
    assert.equal(alice.text, (await complete('Once upon a time')).text);
    assert.equal(bob.text, (await complete('The little girl')).text);
    assert.notEqual(alice.text, bob.text, 'the two prompts give different texts (else the test proves nothing)');
    // And each caller's retry replays its own request.
    assert.equal((await complete('The little girl', { 'idempotency-key': 'shared-key', 'idempotency-scope': 'bob' })).requestId, bob.requestId);
  });

  it('a malformed Idempotency-Scope is a 400 naming it', async () => {
    const r = await complete('hi', { 'idempotency-key': 'k', 'idempotency-scope': 'bad scope' });
    assert.equal(r.status, 400);
    assert.equal((r.body as { error: { param: string } }).error.param, 'Idempotency-Scope');
  });
});

describe('callerScope', () => {
  const req = (apiKeyId: string | null, headers: Record<string, string>) => ({ apiKeyId, headers }) as unknown as FastifyRequest;
  it('is the API key id once keys exist (the header cannot override it), else the header, else anonymous', () => {
    assert.equal(callerScope(req('k1', { 'idempotency-scope': 'alice' })), 'key:k1');
    assert.equal(callerScope(req(null, { 'idempotency-scope': 'alice' })), 'scope:alice');
    assert.equal(callerScope(req(null, {})), 'anonymous');
  });
});
