// Issue 16: how `swapserve up` lays workers out on a multi-GPU host — the pinned host RAM split among the workers, each
// GPU worker on its GPU's NUMA node — table-driven on the pure decision, and the probe on a sysfs tree of files.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpusToUse, planHostLayout, PIN_FRACTION, type HostFacts, type Slot } from '../../services/scheduler/host-layout.ts';
import { parseGpuBusIds, parseNodeMemTotal, probeHost } from '../../services/scheduler/host-probe.ts';
import { HOST_BYTES_ENV, parseConfig } from '../../services/config/config.ts';

const GiB = 2 ** 30;
/** A 2-socket host with 8 GPUs, 4 on each node, like an HGX H100 board. */
const hgx = (numactl = true): HostFacts => ({
  gpus: Array.from({ length: 8 }, (_, i) => ({ index: i, busId: `0000:${(0x18 + i * 0x10).toString(16)}:00.0`, numaNode: i < 4 ? 0 : 1 })),
  memBytes: 2048 * GiB, nodes: [{ id: 0, memBytes: 1024 * GiB }, { id: 1, memBytes: 1024 * GiB }], numactl,
});
const oneNode = (gpus: number, memGiB: number): HostFacts => ({
  gpus: Array.from({ length: gpus }, (_, i) => ({ index: i, busId: null, numaNode: null })),
  memBytes: memGiB * GiB, nodes: [{ id: 0, memBytes: memGiB * GiB }], numactl: true,
});
const perGpu = (n: number): Slot[] => Array.from({ length: n }, (_, i) => ({ device: i, share: 1 }));

describe('planHostLayout: pinned host budgets', () => {
  const cases: { name: string; facts: HostFacts; slots: Slot[]; hostBytes: number; pinned?: number; want: number[] }[] = [
    { name: 'one GPU, budget fits: kept', facts: oneNode(1, 128), slots: perGpu(1), hostBytes: 64 * GiB, want: [64 * GiB] },
    { name: '8 GPUs x 64 GiB on 2 TiB: fits 75 %, kept', facts: hgx(), slots: perGpu(8), hostBytes: 64 * GiB, want: Array(8).fill(64 * GiB) },
    { name: '2 GPUs x 100 GiB on 128 GiB: split to 75 % (48 GiB each)', facts: oneNode(2, 128), slots: perGpu(2), hostBytes: 100 * GiB, want: [48 * GiB, 48 * GiB] },
    { name: 'host.pinnedBytes caps the sum', facts: hgx(), slots: perGpu(8), hostBytes: 64 * GiB, pinned: 256 * GiB, want: Array(8).fill(32 * GiB) },
    { name: 'co-located GPU: its two workers halve it first', facts: oneNode(2, 512), slots: [{ device: 0, share: 2 }, { device: 0, share: 2 }, { device: 1, share: 1 }], hostBytes: 64 * GiB, want: [32 * GiB, 32 * GiB, 64 * GiB] },
    { name: 'CPU workers split alike', facts: { gpus: [], memBytes: 16 * GiB, nodes: [], numactl: false }, slots: [{ device: null, share: 1 }, { device: null, share: 1 }], hostBytes: 8 * GiB, want: [6 * GiB, 6 * GiB] },
    { name: 'RAM unknown, no pinnedBytes: kept', facts: { gpus: [], memBytes: 0, nodes: [], numactl: false }, slots: [{ device: null, share: 1 }], hostBytes: 8 * GiB, want: [8 * GiB] },
    { name: 'bound workers held to 75 % of their node', facts: { ...hgx(), nodes: [{ id: 0, memBytes: 256 * GiB }, { id: 1, memBytes: 1792 * GiB }] }, slots: perGpu(8), hostBytes: 64 * GiB, want: [48, 48, 48, 48, 64, 64, 64, 64].map((g) => g * GiB) },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const l = planHostLayout(c.facts, c.slots, { hostBytesPerWorker: c.hostBytes, numa: 'auto', ...(c.pinned === undefined ? {} : { pinnedBytes: c.pinned }) });
      assert.deepEqual(l.workers.map((w) => w.hostBytes), c.want);
      const cap = c.pinned ?? (c.facts.memBytes > 0 ? c.facts.memBytes * PIN_FRACTION : Infinity);
      assert.ok(l.workers.reduce((n, w) => n + w.hostBytes, 0) <= cap, 'the sum fits the cap');
      const scaled = c.want.some((w, i) => w < Math.floor(c.hostBytes / c.slots[i].share));
      assert.equal(l.notes.some((n) => /pinned host budgets|NUMA node \d+: its/.test(n)), scaled, `a note says so exactly when a budget was scaled: ${l.notes.join(' | ')}`);
    });
  }

  it('host.pinnedBytes beyond the RAM is a clear error', () => {
    assert.throws(() => planHostLayout(oneNode(1, 64), perGpu(1), { hostBytesPerWorker: GiB, pinnedBytes: 65 * GiB, numa: 'auto' }), /host\.pinnedBytes \(65\.00 GiB\) is more than this machine's RAM \(64\.00 GiB\)/);
  });
});

describe('planHostLayout: NUMA placement', () => {
  it('8 GPUs on 2 nodes: each worker under numactl on its GPU\'s node', () => {
    const l = planHostLayout(hgx(), perGpu(8), { hostBytesPerWorker: 8 * GiB, numa: 'auto' });
    assert.deepEqual(l.workers.map((w) => w.numaNode), [0, 0, 0, 0, 1, 1, 1, 1]);
    assert.deepEqual(l.workers[5].prefix, ['numactl', '--cpunodebind=1', '--membind=1']);
    assert.deepEqual(l.notes, []);
  });
  const unbound: { name: string; facts: HostFacts; slots?: Slot[]; numa?: 'auto' | 'off'; note: RegExp | null }[] = [
    { name: 'one node: nothing to choose', facts: oneNode(2, 128), note: /NUMA: 1 node with memory: workers not bound/ },
    { name: 'numactl missing', facts: hgx(false), note: /numactl is not installed/ },
    { name: 'numa: off', facts: hgx(), numa: 'off', note: null },
    { name: 'CPU workers', facts: hgx(), slots: [{ device: null, share: 1 }], note: null },
    { name: 'GPU node unknown (-1)', facts: { ...hgx(), gpus: hgx().gpus.map((g) => ({ ...g, numaNode: null })) }, note: /GPU 0: its NUMA node is unknown/ },
    { name: 'GPU on a node without memory', facts: { ...hgx(), gpus: hgx().gpus.map((g) => ({ ...g, numaNode: 3 })) }, note: /NUMA node 3 has no memory of its own/ },
  ];
  for (const c of unbound) {
    it(`not bound: ${c.name}`, () => {
      const l = planHostLayout(c.facts, c.slots ?? perGpu(2), { hostBytesPerWorker: GiB, numa: c.numa ?? 'auto' });
      assert.ok(l.workers.every((w) => w.numaNode === null && w.prefix.length === 0));
      if (c.note) assert.ok(l.notes.some((n) => c.note!.test(n)), l.notes.join(' | '));
      else assert.deepEqual(l.notes, []);
    });
  }
});

describe('gpusToUse', () => {
  it('all detected by default, the first N when configured, more than detected refused', () => {
    assert.equal(gpusToUse(8, undefined), 8);
    assert.equal(gpusToUse(8, 2), 2);
    assert.equal(gpusToUse(8, 0), 0);
    assert.throws(() => gpusToUse(2, 4), /host\.gpus is 4 but only 2 GPUs are visible/);
    assert.throws(() => gpusToUse(0, 1), /host\.gpus is 1 but no GPU is visible/);
  });
});

describe('host probe', () => {
  it('parses nvidia-smi bus ids into sysfs form', () => {
    assert.deepEqual(parseGpuBusIds('0, 00000000:18:00.0\n1, 00000000:2A:00.0\nNo devices were found\n'), [
      { index: 0, busId: '0000:18:00.0' }, { index: 1, busId: '0000:2a:00.0' },
    ]);
    assert.equal(parseNodeMemTotal('Node 1 MemTotal:       131891012 kB\nNode 1 MemFree: 1 kB\n'), 131891012 * 1024);
  });

  it('reads each GPU\'s NUMA node and the nodes\' memory from a sysfs tree', () => {
    const sys = mkdtempSync(join(tmpdir(), 'swapserve-sysfs-'));
    try {
      const dev = (bus: string, node: string) => {
        mkdirSync(join(sys, 'bus/pci/devices', bus), { recursive: true });
        writeFileSync(join(sys, 'bus/pci/devices', bus, 'numa_node'), `${node}\n`);
      };
      dev('0000:18:00.0', '0');
      dev('0000:9a:00.0', '1');
      dev('0000:ab:00.0', '-1');
      for (const [n, kb] of [[0, 1000], [1, 2000]] as const) {
        mkdirSync(join(sys, `devices/system/node/node${n}`), { recursive: true });
        writeFileSync(join(sys, `devices/system/node/node${n}/meminfo`), `Node ${n} MemTotal: ${kb} kB\n`);
      }
      mkdirSync(join(sys, 'devices/system/node/node2'));
      const exec = (cmd: string) => (cmd === 'nvidia-smi' ? '0, 00000000:18:00.0\n1, 00000000:9A:00.0\n2, 00000000:AB:00.0\n' : null);
      const f = probeHost({ sysRoot: sys, exec });
      assert.deepEqual(f.gpus.map((g) => g.numaNode), [0, 1, null]);
      assert.deepEqual(f.nodes, [{ id: 0, memBytes: 1000 * 1024 }, { id: 1, memBytes: 2000 * 1024 }], 'a node without memory is left out');
      assert.equal(f.numactl, false);
      assert.deepEqual(probeHost({ sysRoot: sys, exec, gpus: false }).gpus, []);
      // nvidia-smi missing: the CUDA runtime's count, without bus ids or nodes; one that throws counts none.
      const none = () => null;
      assert.deepEqual(probeHost({ sysRoot: sys, exec: none, deviceCount: () => 2 }).gpus, [{ index: 0, busId: null, numaNode: null }, { index: 1, busId: null, numaNode: null }]);
      assert.deepEqual(probeHost({ sysRoot: sys, exec: none, deviceCount: () => { throw new Error('no driver'); } }).gpus, []);
    } finally {
      rmSync(sys, { recursive: true, force: true });
    }
  });

  it('this machine: a probe answers (no GPU here is fine)', () => {
    const f = probeHost({ gpus: false });
    assert.ok(f.memBytes > 0);
    assert.ok(f.nodes.length >= 1, 'Linux lists at least node0');
  });
});

describe(`${HOST_BYTES_ENV}`, () => {
  it('sets the worker\'s pinned host budget after the co-location share; a bad value is refused', () => {
    const raw = { modelRoots: ['/tmp'], budgets: { hostBytes: '8GiB' } };
    assert.equal(parseConfig(raw, { [HOST_BYTES_ENV]: String(3 * GiB), SWAPSERVE_GPU_SHARE: '2' }).budgets.hostBytes, 3 * GiB);
    assert.equal(parseConfig(raw, { SWAPSERVE_GPU_SHARE: '2' }).budgets.hostBytes, 4 * GiB);
    assert.throws(() => parseConfig(raw, { [HOST_BYTES_ENV]: '1.5' }), /SWAPSERVE_HOST_BYTES must be a byte count/);
    assert.throws(() => parseConfig({ ...raw, host: { numa: 'on' } }, {}), /host\.numa/);
  });
});
