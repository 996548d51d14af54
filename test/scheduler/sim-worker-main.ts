// A simulated worker process (what LocalProcessProvider starts in the scale-from-zero test):
//   node --import tsx test/scheduler/sim-worker-main.ts --id <id> --redis <url> --prefix <prefix>
// It exits 0 after a drain or shutdown command, as a real worker does.
import { parseArgs } from 'node:util';
import { SimWorker } from './sim-worker.ts';

const { values } = parseArgs({ options: { id: { type: 'string' }, redis: { type: 'string' }, prefix: { type: 'string' } } });
if (!values.id || !values.redis || !values.prefix) {
  process.stderr.write('usage: sim-worker-main --id ID --redis URL --prefix PREFIX\n');
  process.exit(2);
}
const worker = new SimWorker(values.id, values.redis, values.prefix, {});
worker.once('exit-requested', () => {
  void worker.stop().then(() => process.exit(0));
});
process.once('SIGTERM', () => {
  void worker.stop().then(() => process.exit(0));
});
await worker.start();
