// Reads the host facts host-layout.ts decides from (issue 16): the GPUs and their PCI bus ids (nvidia-smi), each
// GPU's NUMA node and each node's memory (sysfs), the physical RAM, whether numactl runs. Effects only; the parsers
// are exported for tests.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import type { GpuFact, HostFacts } from './host-layout.ts';

/** Runs a command; stdout on exit 0, null otherwise (not installed, no driver). */
export type Run = (cmd: string, args: string[]) => string | null;

const run: Run = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout : null;
};

/**
 * `nvidia-smi --query-gpu=index,pci.bus_id --format=csv,noheader` lines ("0, 00000000:18:00.0") to [index, sysfs bus
 * id]: nvidia-smi writes an 8-digit PCI domain in upper case, sysfs a 4-digit one in lower case.
 */
export function parseGpuBusIds(text: string): { index: number; busId: string }[] {
  const out: { index: number; busId: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s*,\s*([0-9a-fA-F]+):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])\s*$/.exec(line);
    if (!m) continue;
    out.push({ index: Number(m[1]), busId: `${m[2].slice(-4).padStart(4, '0')}:${m[3]}:${m[4]}.${m[5]}`.toLowerCase() });
  }
  return out;
}

/** MemTotal (bytes) of a sysfs `nodeN/meminfo` ("Node 0 MemTotal:  131891012 kB"), or 0. */
export function parseNodeMemTotal(text: string): number {
  const m = /MemTotal:\s*(\d+)\s*kB/.exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * The facts, from `sysRoot` (the `/sys` tree; tests give a folder of their own) and the commands `exec` runs. Where
 * nvidia-smi lists nothing (not installed in a container, say), `deviceCount` (the CUDA addon's, handed in by the
 * entry point: this floor imports no native code) still gives the GPUs, without bus ids (so without NUMA nodes).
 */
export function probeHost(o: { sysRoot?: string; exec?: Run; gpus?: boolean; deviceCount?: () => number } = {}): HostFacts {
  const sys = o.sysRoot ?? '/sys';
  const exec = o.exec ?? run;
  const gpus: GpuFact[] = [];
  if (o.gpus !== false) {
    const listed = exec('nvidia-smi', ['--query-gpu=index,pci.bus_id', '--format=csv,noheader']);
    for (const g of parseGpuBusIds(listed ?? '')) {
      const f = join(sys, 'bus', 'pci', 'devices', g.busId, 'numa_node');
      const n = existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) : -1;
      gpus.push({ index: g.index, busId: g.busId, numaNode: Number.isInteger(n) && n >= 0 ? n : null });
    }
    if (gpus.length === 0 && o.deviceCount) {
      let n = 0;
      try {
        n = o.deviceCount();
      } catch {
        n = 0; // no CUDA build, no driver: no GPU
      }
      for (let i = 0; i < n; i++) gpus.push({ index: i, busId: null, numaNode: null });
    }
  }
  const nodeDir = join(sys, 'devices', 'system', 'node');
  const nodes: HostFacts['nodes'] = [];
  if (existsSync(nodeDir)) {
    for (const d of readdirSync(nodeDir)) {
      const m = /^node(\d+)$/.exec(d);
      if (!m) continue;
      const mem = existsSync(join(nodeDir, d, 'meminfo')) ? parseNodeMemTotal(readFileSync(join(nodeDir, d, 'meminfo'), 'utf8')) : 0;
      if (mem > 0) nodes.push({ id: Number(m[1]), memBytes: mem });
    }
  }
  nodes.sort((a, b) => a.id - b.id);
  return { gpus, memBytes: totalmem(), nodes, numactl: exec('numactl', ['--show']) !== null };
}

/**
 * The GPU model of this host (`nvidia-smi --query-gpu=name`: "NVIDIA H100 80GB HBM3"), for matching a fleet plan's GPU
 * type; null when nvidia-smi lists none. A host of mixed models gives its GPU 0's (the plan's groups are one type each).
 */
export function probeGpuName(exec: Run = run): string | null {
  const first = (exec('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader']) ?? '').split('\n').map((l) => l.trim()).find((l) => l.length > 0);
  return first ?? null;
}
