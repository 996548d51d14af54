// `swapserve plan INPUT`: the cheapest fleet (GPUs per type, worker groups) for a workload, as a placement config fragment.
import { writeFileSync } from 'node:fs';
import { HELP, parseCommand, STDIO, type CommandIo } from './args.ts';
import { FleetInputError } from '../fleet/calibration.ts';
import { loadPlanInput } from '../fleet/plan-input.ts';
import { planConfigFragment, planFleet, planReport } from '../fleet/plan.ts';

const USAGE = `usage: swapserve plan INPUT [options]
  INPUT            plan input (YAML or JSON): price list, GPU types with calibration files, models and
                   their workload per request-size bucket (docs/plan.md; example: examples/fleet/plan-input.yaml)
  --out FILE       write the placement config fragment there (default: print it after the report)
  --report FILE    write the markdown report there (default: print it)
  --json FILE      write the whole plan as JSON (for \`swapserve simulate\` and scripts)
`;

export async function run(argv: string[], io: CommandIo = STDIO): Promise<number> {
  const parsed = parseCommand('plan', USAGE, {
    args: argv, allowPositionals: true,
    options: { out: { type: 'string', short: 'o' }, report: { type: 'string' }, json: { type: 'string' }, ...HELP },
  }, io);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    io.err(`swapserve plan: expected one INPUT file but received ${positionals.length}\n\n${USAGE}`);
    return 2;
  }
  const input = positionals[0];
  let result;
  try {
    result = await planFleet(loadPlanInput(input));
  } catch (e) {
    if (!(e instanceof FleetInputError)) throw e;
    io.err(`swapserve plan: ${e.message}\n`);
    return 2;
  }
  const report = planReport(result);
  const fragment = planConfigFragment(result, input);
  if (values.report) writeFileSync(values.report, report);
  else io.out(`${report}\n`);
  if (values.out) writeFileSync(values.out, fragment);
  else io.out(fragment);
  if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
  return 0;
}
