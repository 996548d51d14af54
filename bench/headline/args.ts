// `swapserve bench headline`'s arguments: the usage text, parsing and checks (a usage error is exit code 2).
import { parseArgs } from 'node:util';
import { SwapserveError } from '../../contracts/errors.ts';

export interface Args {
  tiny: boolean;
  modelsDir: string | null;
  baseline: string | null;
  out: string | null;
  md: string | null;
  reps: number;
  coldReps: number;
  startReps: number;
  deadlineS: number;
  prompts: number[];
  /** Which phases run, in their fixed order: start (worker starts), swap (warm and swap), cold (disk loads). */
  phases: Set<'start' | 'swap' | 'cold'>;
}

export const USAGE = `usage: swapserve bench headline [--tiny | --models-dir DIR] [options]
  --tiny              three tiny models written here, CPU backend (a dry run of the harness)
  --models-dir DIR    the three models written by bench/headline/make_models.py (llama8b, mistral7b, l11b)
  --baseline FILE     floors and transformers figures from bench/headline/baselines.py (JSON)
  --reps N            samples per warm / swap cell (default 5)
  --cold-reps N       samples per cold cell (default 1; the 8B model gets one more where time allows)
  --start-reps N      samples per worker-start cell, taken first (default 1; one more 8B/128 at the end if time allows)
  --deadline-s S      stop starting new cells after S seconds (default 420)
  --prompts A,B       prompt lengths in tokens (default 128,2048)
  --phases A,B        phases to run, of start,swap,cold (default all; the first worker start always runs)
  --out FILE          raw samples and medians (JSON)
  --md FILE           the markdown tables
`;

export function parse(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      tiny: { type: 'boolean' }, 'models-dir': { type: 'string' }, baseline: { type: 'string' }, out: { type: 'string' }, md: { type: 'string' },
      reps: { type: 'string' }, 'cold-reps': { type: 'string' }, 'start-reps': { type: 'string' }, 'deadline-s': { type: 'string' }, prompts: { type: 'string' }, phases: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) throw new SwapserveError('usage', '');
  if (!values.tiny && !values['models-dir']) throw new SwapserveError('usage', 'give --tiny or --models-dir DIR');
  const int = (name: string, v: string | undefined, d: number) => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new SwapserveError('usage', `Expected an integer >= 1 for --${name} but received "${v}"`);
    return n;
  };
  const prompts = (values.prompts ?? '128,2048').split(',').map((p) => int('prompts', p.trim(), 0));
  const phases = new Set<'start' | 'swap' | 'cold'>();
  for (const ph of (values.phases ?? 'start,swap,cold').split(',').map((x) => x.trim())) {
    if (ph !== 'start' && ph !== 'swap' && ph !== 'cold') throw new SwapserveError('usage', `Expected phases from start,swap,cold for --phases but received "${ph}"`);
    phases.add(ph);
  }
  return {
    phases,
    tiny: !!values.tiny, modelsDir: values['models-dir'] ?? null, baseline: values.baseline ?? null, out: values.out ?? null, md: values.md ?? null,
    reps: int('reps', values.reps, 5), coldReps: int('cold-reps', values['cold-reps'], 1),
    startReps: int('start-reps', values['start-reps'], 1), deadlineS: int('deadline-s', values['deadline-s'], 420), prompts,
  };
}
