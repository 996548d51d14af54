#!/usr/bin/env node
// The `swapserve` command: runs the TypeScript CLI through tsx (no build step between edit and run).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../services/cli/main.ts');
await main(process.argv.slice(2));
