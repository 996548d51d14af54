// `swapserve bench <name>`: dispatches to each benchmark module (each exports run(argv) -> exit code); the list is
// BENCHES in commands.ts.
import { BENCHES, benchUsage, find } from './commands.ts';

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h') {
    process.stdout.write(benchUsage());
    return 0;
  }
  const bench = find(BENCHES, name);
  if (!bench) {
    process.stderr.write(`${name ? `swapserve bench: unknown benchmark "${name}"\n\n` : ''}${benchUsage()}`);
    return name ? 2 : 1;
  }
  return (await bench.load()).run(rest);
}
