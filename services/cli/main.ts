// The `swapserve` CLI: dispatches sub-commands, each in its own module (loaded only when used).
type Command = { summary: string; load: () => Promise<{ run: (argv: string[]) => Promise<number> }> };

const COMMANDS: Record<string, Command> = {
  inspect: { summary: 'validate a model folder or .gguf and print its architecture', load: () => import('./inspect.ts') },
  generate: { summary: 'generate text from a model (streams tokens, prints timings)', load: () => import('./generate.ts') },
  bench: { summary: 'benchmarks: `bench swap`, `bench spine`, `bench engine`', load: () => import('./bench.ts') },
  up: { summary: 'run the whole stack on this machine (Redis, gateway, scheduler, workers)', load: () => import('./up.ts') },
  gateway: { summary: 'run the HTTP gateway alone', load: () => import('./gateway.ts') },
  scheduler: { summary: 'run a scheduler (leader-elected)', load: () => import('./scheduler.ts') },
  worker: { summary: 'run one GPU (or CPU) worker', load: () => import('./worker.ts') },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: swapserve <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    process.exitCode = name ? 0 : 1;
    return;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`swapserve: unknown command "${name}"\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  const mod = await cmd.load();
  process.exitCode = await mod.run(rest);
}
