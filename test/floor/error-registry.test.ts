// One error vocabulary (contracts/errors.ts): every layer's codes in one casing, each code meaning one thing, every
// request error with an HTTP status and a message, and each error class carrying a code from its table.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterDataError } from '../../contracts/cluster.ts';
import { ERROR_REGISTRY, ERRORS, RequestError, SwapserveError } from '../../contracts/errors.ts';
import { EngineError } from '../../native/ts/engine-errors.ts';
import { SwapserveNativeError } from '../../native/ts/errors.ts';
import { ModelFileError } from '../../native/ts/model/errors.ts';
import { TokenizerError } from '../../native/ts/tokenizer/types.ts';

describe('error registry', () => {
  it('has snake_case codes in every layer, the native addon included', () => {
    for (const [layer, codes] of Object.entries(ERROR_REGISTRY)) {
      assert.ok(codes.length > 0, layer);
      for (const c of codes) assert.match(c, /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/, `${layer}: ${c}`);
      assert.equal(new Set(codes).size, codes.length, `${layer}: a code twice`);
    }
  });

  it('gives every request error an HTTP status, an OpenAI error type and a message', () => {
    for (const [code, e] of Object.entries(ERRORS)) {
      assert.ok(e.status >= 400 && e.status < 600, code);
      assert.ok(e.type.endsWith('_error'), code);
      assert.ok(e.message.length > 0, code);
      assert.equal(new RequestError(code as keyof typeof ERRORS).status, e.status);
    }
  });

  it('has each error class derive from SwapserveError and carry a code of its layer', () => {
    const carried: [string, SwapserveError][] = [
      ['model_file', new ModelFileError('bad_magic', '/m.gguf', 'not GGUF')],
      ['tokenizer', new TokenizerError('bad_token_id', 'id 9999')],
      ['engine', new EngineError('closed', 'closed')],
      ['native', new SwapserveNativeError('oom', 'oom')],
      ['cluster', new ClusterDataError('worker state', 'not JSON')],
      ['request', new RequestError('timeout')],
      ['cli', new SwapserveError('usage', 'no model')],
    ];
    for (const [layer, { code }] of carried) {
      assert.ok((ERROR_REGISTRY[layer as keyof typeof ERROR_REGISTRY] as readonly string[]).includes(code), `${layer}: ${code}`);
    }
  });
});
