// Stop strings over streamed text: held-back prefixes, matches across pieces, truncation before the match.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { StopMatcher } from '../../native/ts/stop-strings.ts';

function feed(stops: string[], pieces: string[]) {
  const m = new StopMatcher(stops);
  const out: string[] = [];
  for (const p of pieces) {
    const r = m.push(p);
    out.push(r.text);
    if (r.stopped) return { out, stopped: true, rest: '' };
  }
  return { out, stopped: false, rest: m.flush() };
}

describe('StopMatcher', () => {
  it('passes text through when there are no stop strings', () => {
    assert.deepEqual(feed([], ['a', 'b']), { out: ['a', 'b'], stopped: false, rest: '' });
  });
  it('holds back a possible start of a stop string and releases it when it does not continue', () => {
    assert.deepEqual(feed(['END'], ['the E', 'N', 'x']), { out: ['the ', '', 'ENx'], stopped: false, rest: '' });
  });
  it('matches a stop string split across pieces and truncates before it', () => {
    assert.deepEqual(feed(['END'], ['ab E', 'N', 'D and more']), { out: ['ab ', '', ''], stopped: true, rest: '' });
  });
  it('takes the earliest of several stop strings', () => {
    assert.deepEqual(feed(['yz', 'b'], ['axyzb']), { out: ['ax'], stopped: true, rest: '' });
  });
  it('flushes held text at the end of the output', () => {
    assert.deepEqual(feed(['\n\n'], ['line\n']), { out: ['line'], stopped: false, rest: '\n' });
  });
  it('holds the longest possible prefix when stop strings overlap', () => {
    assert.deepEqual(feed(['aab'], ['xaa', 'ab']), { out: ['x', 'a'], stopped: true, rest: '' }); // 'xaaab': the match starts at the second a
  });
});
