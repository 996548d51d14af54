// Native error codes: the TS list (contracts/errors.ts NATIVE_ERROR_CODES) and the C++ names (native/src/common/errors.cc) stay in sync,
// and fromNative keeps the code, the native message and the JS caller's stack.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { NATIVE_ERROR_CODES } from '../../contracts/errors.ts';
import { captureSite, fromNative, SwapserveNativeError } from '../../native/ts/errors.ts';

const here = dirname(fileURLToPath(import.meta.url));

describe('native error codes', () => {
  it('every C++ code has the same name in TypeScript, and only addon is JS-only', () => {
    const cc = readFileSync(join(here, '..', '..', 'native', 'src', 'common', 'errors.cc'), 'utf8');
    const native = [...cc.matchAll(/return "([a-z_]+)"/g)].map((m) => m[1]).filter((c) => c !== 'unknown');
    assert.ok(native.length >= 10);
    assert.deepEqual([...native].sort(), NATIVE_ERROR_CODES.filter((c) => c !== 'addon').sort());
  });

  it('fromNative keeps the code and message and shows the JS caller', () => {
    function callerFrame(): SwapserveNativeError {
      const site = captureSite();
      return fromNative(Object.assign(new Error('cudaMalloc failed: out of memory'), { code: 'oom' }), site);
    }
    const e = callerFrame();
    assert.equal(e.code, 'oom');
    assert.equal(e.message, 'cudaMalloc failed: out of memory');
    assert.equal(e.recoverable, true);
    assert.match(e.stack ?? '', /\[oom\][^\n]*cudaMalloc failed[\s\S]*callerFrame/);
    assert.equal(fromNative(new Error('x'), {}).code, 'cuda', 'an uncoded native error is still typed');
  });
});
