// The `swapserve` CLI: dispatches sub-commands, each in its own module (loaded only when used); the list and every
// help text come from commands.ts.
import { COMMANDS, find, mainUsage, markdownHelp } from './commands.ts';

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === 'help' && rest[0] === '--markdown') {
    process.stdout.write(markdownHelp());
    return;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(mainUsage());
    process.exitCode = name ? 0 : 1;
    return;
  }
  const cmd = find(COMMANDS, name);
  if (!cmd) {
    process.stderr.write(`swapserve: unknown command "${name}"\n\n${mainUsage()}`);
    process.exitCode = 2;
    return;
  }
  const mod = await cmd.load();
  process.exitCode = await mod.run(rest);
}
