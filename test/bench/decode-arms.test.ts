// bench/quant/decode_arms.ts's arm list: names and name=JSON tunings, split at the commas outside braces, each
// validated by the engine tuning schema with an error that names the arm.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseArm, splitArms } from '../../bench/quant/decode_arms.ts';
import { engineTuningSchema } from '../../native/ts/tuning.ts';

describe('decode_arms arm list', () => {
  it('splits at top-level commas only and keeps JSON arms whole', () => {
    assert.deepEqual(splitArms('default,fold,x={"quantFold":true,"attnSplits":1},graphs'),
      ['default', 'fold', 'x={"quantFold":true,"attnSplits":1}', 'graphs']);
    assert.deepEqual(splitArms(''), []);
  });

  it('turns names and JSON into validated tunings', () => {
    assert.deepEqual(parseArm('fold+graphs').tuning, engineTuningSchema.parse({ quantFold: true, cudaGraphs: true }));
    assert.deepEqual(parseArm('s1={"attnSplits":1}'), { name: 's1', tuning: engineTuningSchema.parse({ attnSplits: 1 }) });
  });

  it('refuses an unknown name, bad JSON and an invalid tuning, naming the arm', () => {
    assert.throws(() => parseArm('nope'), /unknown arm "nope"/);
    assert.throws(() => parseArm('a={quantFold}'), /arm "a": its tuning is not JSON/);
    assert.throws(() => parseArm('b={"quantFold":1}'), /arm "b": quantFold/);
    assert.throws(() => parseArm('c={"warp":true}'), /arm "c":/);
  });
});
