// Issue 16: a GPU worker that `swapserve up` binds to its GPU's NUMA node runs under the prefix host-layout.ts plans
// (`numactl --cpunodebind=N --membind=N`), through the same Supervisor that starts and restarts it. Checked on a real
// process: numactl execs the worker (the supervised pid is the Node process itself, so SIGTERM drains it), and its memory
// policy is bound to the node (the kernel's own numa_maps say `bind:N`). A one-node machine can still show the policy.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Supervisor } from '../../services/cli/supervise.ts';
import { planHostLayout } from '../../services/scheduler/host-layout.ts';
import { probeHost } from '../../services/scheduler/host-probe.ts';
import { needsTool } from '../helpers/requires.ts';

async function until<T>(what: string, ms: number, f: () => T | null): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a worker bound to a NUMA node', { skip: needsTool('numactl') }, () => {
  it('runs as the supervised pid under numactl, its memory policy bound to the node', { timeout: 30_000 }, async () => {
    // The layout of one GPU on node 0 of a two-node host: the prefix up hands the Supervisor.
    const facts = probeHost({ gpus: false });
    const two = { ...facts, gpus: [{ index: 0, busId: '0000:18:00.0', numaNode: 0 }], nodes: [{ id: 0, memBytes: 2 ** 30 }, { id: 1, memBytes: 2 ** 30 }], numactl: true };
    const [w] = planHostLayout(two, [{ device: 0, share: 1 }], { hostBytesPerWorker: 2 ** 20, numa: 'auto' }).workers;
    assert.deepEqual(w.prefix, ['numactl', '--cpunodebind=0', '--membind=0']);

    const lines: string[] = [];
    const sup = new Supervisor([process.execPath], process.env, (l) => lines.push(l));
    try {
      sup.start('worker-0', ['-e', 'process.on("SIGTERM", () => process.exit(0)); setInterval(() => {}, 1000)'], { prefix: w.prefix });
      const pid = await until('the worker', 10_000, () => sup.pid('worker-0'));
      const maps = await until('its memory maps', 10_000, () => {
        try {
          const exe = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
          return exe === process.execPath ? readFileSync(`/proc/${pid}/numa_maps`, 'utf8') : null;
        } catch {
          return null;
        }
      });
      const policies = new Set(maps.split('\n').filter(Boolean).map((l) => l.split(' ')[1]));
      assert.deepEqual([...policies], ['bind:0'], 'every mapping of the worker is bound to node 0');
      const cpus = readFileSync('/sys/devices/system/node/node0/cpulist', 'utf8').trim();
      assert.equal(/Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1], cpus, "its CPUs are node 0's");
    } finally {
      await sup.stop(5000);
    }
    assert.deepEqual(lines, [], 'it ran without an exit or restart');
  });
});
