// CLI progress: a redrawn bar on a TTY, plain throttled lines elsewhere, nothing when off; time is injected.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { formatAmount, formatDuration, progress } from '../../services/dev/progress.ts';

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = Object.assign(
    new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } }),
    { isTTY, columns: 100 },
  );
  return { stream, text: () => chunks.join(''), chunks };
}

describe('progress', () => {
  it('draws a bar with percent, amounts, rate and ETA on a TTY, throttled, then a summary', () => {
    const out = sink(true);
    let t = 0;
    const p = progress({ label: 'load stories', total: 2e9, unit: 'bytes', stream: out.stream, now: () => t, mode: undefined });
    t = 1000;
    p.update(5e8);
    assert.match(out.text(), /\r\x1b\[2Kload stories \[#+-+\]  25% 500\.0 MB\/2\.00 GB, 500\.0 MB\/s ETA 3\.0s/);
    const before = out.chunks.length;
    t = 1010;
    p.update(6e8); // within 80 ms of the last draw: not redrawn
    assert.equal(out.chunks.length, before);
    t = 2000;
    p.log('a message');
    assert.ok(out.text().includes('\r\x1b[2Ka message\n'), 'clears the bar, prints, redraws');
    p.finish();
    assert.match(out.text(), /load stories: done — 2\.00 GB in 2\.0s, 1\.00 GB\/s\n$/);
    p.update(1); // after finish: ignored
    assert.match(out.text(), /\n$/);
  });

  it('writes plain lines at each quarter (no carriage returns) when not a TTY', () => {
    const out = sink(false);
    let t = 0;
    const p = progress({ label: 'bench swap', total: 100, stream: out.stream, now: () => t });
    for (let i = 1; i <= 100; i++) {
      t += 10;
      p.update(i);
    }
    p.finish('ok');
    const lines = out.text().trimEnd().split('\n');
    assert.ok(!out.text().includes('\r'));
    assert.deepEqual(lines.map((l) => l.replace(/ \(.*\)$/, '')), [
      'bench swap: started', 'bench swap: 25%', 'bench swap: 50%', 'bench swap: 75%', 'bench swap: 100%',
      'bench swap: ok — 100 in 1.0s, 100/s',
    ]);
  });

  it('writes a line every interval when the total is unknown, nothing when off, a failure line on fail', () => {
    const out = sink(false);
    let t = 0;
    const p = progress({ label: 'scan', stream: out.stream, now: () => t, lineIntervalMs: 1000 });
    for (let i = 0; i < 30; i++) {
      t += 100;
      p.tick();
    }
    p.fail('disk error');
    assert.deepEqual(out.text().trimEnd().split('\n'), ['scan: started', 'scan: (10, 10/s)', 'scan: (20, 10/s)', 'scan: (30, 10/s)', 'scan: failed — disk error']);
    const off = sink(true);
    const q = progress({ label: 'x', total: 10, stream: off.stream, mode: 'off' });
    q.update(5);
    q.finish();
    assert.equal(off.text(), '');
  });

  it('formats amounts and durations', () => {
    assert.deepEqual([formatAmount(512, 'bytes'), formatAmount(16e9, 'bytes'), formatAmount(12_345, 'items')], ['512 B', '16.00 GB', '12.3k']);
    assert.deepEqual([formatDuration(250), formatDuration(12_340), formatDuration(125_000)], ['250ms', '12.3s', '2m05s']);
  });
});
