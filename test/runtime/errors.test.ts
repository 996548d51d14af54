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
  it('every C++ code has the same name in TypeScript, and only SWAPSERVE_ADDON is JS-only', () => {
    const cc = readFileSync(join(here, '..', '..', 'native', 'src', 'common', 'errors.cc'), 'utf8');
    const native = [...cc.matchAll(/return "(SWAPSERVE_[A-Z_]+)"/g)].map((m) => m[1]).filter((c) => c !== 'SWAPSERVE_UNKNOWN');
    assert.ok(native.length >= 10);
    assert.deepEqual([...native].sort(), NATIVE_ERROR_CODES.filter((c) => c !== 'SWAPSERVE_ADDON').sort());
  });

  it('fromNative keeps the code and message and shows the JS caller', () => {
    function callerFrame(): SwapserveNativeError {
      const site = captureSite();
      return fromNative(Object.assign(new Error('cudaMalloc failed: out of memory'), { code: 'SWAPSERVE_OOM' }), site);
    }
    const e = callerFrame();
    assert.equal(e.code, 'SWAPSERVE_OOM');
    assert.equal(e.message, 'cudaMalloc failed: out of memory');
    assert.equal(e.recoverable, true);
    assert.match(e.stack ?? '', /SWAPSERVE_OOM[^\n]*cudaMalloc failed[\s\S]*callerFrame/);
    assert.equal(fromNative(new Error('x'), {}).code, 'SWAPSERVE_CUDA', 'an uncoded native error is still typed');
  });
});
