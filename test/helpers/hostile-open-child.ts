// Child process of hostile-rss.test.ts: opens each path of a JSON list (stdin) and reports, per path, the time,
// the error and the process's peak RSS, so a memory spike shows even if the allocation is freed again.
import { openModel } from '../../native/ts/model/index.ts';

const input = JSON.parse(await new Promise<string>((resolve) => {
  let s = '';
  process.stdin.setEncoding('utf8').on('data', (d) => { s += d; }).on('end', () => resolve(s));
})) as { warm: string; paths: string[] };

/** Peak resident set size of this process so far (bytes). */
const peakRss = () => process.resourceUsage().maxRSS * 1024;

await openModel(input.warm); // every module loaded and JIT-warm before the baseline
const baseline = peakRss();
const results = [];
for (const path of input.paths) {
  const t0 = performance.now();
  let code = 'ok';
  let message = '';
  try {
    await openModel(path);
  } catch (e) {
    code = (e as { code?: string }).code ?? 'untyped';
    message = (e as Error).message;
  }
  results.push({ path, ms: performance.now() - t0, code, message, peakRss: peakRss() });
}
process.stdout.write(JSON.stringify({ baseline, results }));
