// How `swapserve up` lays its workers out on one host (issue 16): one worker per GPU (or per co-located slot), the
// machine's pinned host RAM split among them, each GPU worker run on the NUMA node nearest its GPU. Pure: the host's
// facts come in (host-probe.ts reads them from nvidia-smi, sysfs and /proc), decisions come out; up.ts applies them.
//
// Why split: every worker pins its own host pool (budgets.hostBytes, pinned once, never swapped out). Eight workers
// at a per-worker budget sized for one would pin 8x that, and pinned pages the kernel cannot reclaim make the host
// OOM-kill something. Why NUMA: a pinned pool on the far node crosses the inter-socket link on every swap-in; with
// `--membind` it sits on the GPU's own node (and the worker's threads with `--cpunodebind`).
import { ConfigError } from '../config/config.ts';

/** Share of the physical RAM (and of each NUMA node's) that pinned pools may take by default: the rest stays for
 * the OS, the page cache that disk loads read through, and the Node processes. */
export const PIN_FRACTION = 0.75;

/** One GPU as the host reports it. */
export interface GpuFact {
  /** CUDA / nvidia-smi index. */
  index: number;
  /** PCI bus id in sysfs form (`0000:18:00.0`), or null when unknown. */
  busId: string | null;
  /** NUMA node of that PCI device (sysfs `numa_node`), or null when the host does not say (-1, no file). */
  numaNode: number | null;
}

/** What host-probe.ts reads from the machine. */
export interface HostFacts {
  gpus: GpuFact[];
  /** Physical RAM (bytes); 0 when unknown (then only an explicit `host.pinnedBytes` caps the sum). */
  memBytes: number;
  /** NUMA nodes that have memory, with their MemTotal (bytes). */
  nodes: { id: number; memBytes: number }[];
  /** Whether `numactl` runs. */
  numactl: boolean;
}

/** One worker process to start: its GPU (null: a CPU worker) and how many workers share that GPU (co-location). */
export interface Slot {
  device: number | null;
  share: number;
}

export interface LayoutOptions {
  /** budgets.hostBytes: each worker's pinned pool (before a co-location share divides it). */
  hostBytesPerWorker: number;
  /** host.pinnedBytes: all workers together; unset: PIN_FRACTION of facts.memBytes. */
  pinnedBytes?: number;
  numa: 'auto' | 'off';
}

export interface WorkerLayout {
  device: number | null;
  /** This worker's pinned host budget (bytes): what it is started with (HOST_BYTES_ENV). */
  hostBytes: number;
  /** The NUMA node it runs on, or null when not bound. */
  numaNode: number | null;
  /** Command prefix to run it under (`numactl ...`), empty when not bound. */
  prefix: string[];
}

export interface HostLayout {
  workers: WorkerLayout[];
  /** The cap the sum was held to (bytes), or null when none applied. */
  pinnedCapBytes: number | null;
  /** One line per decision worth logging (a budget scaled down, binding skipped and why). */
  notes: string[];
}

const gib = (b: number): string => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);

/**
 * GPUs `up` starts workers for: `configured` (host.gpus) of the `detected` ones, else all detected. More configured
 * than detected is a ConfigError (a worker for a GPU that is not there would fail at start, over and over).
 */
export function gpusToUse(detected: number, configured: number | undefined): number {
  if (configured === undefined) return detected;
  if (configured > detected) throw new ConfigError(`host.gpus is ${configured} but ${detected === 0 ? 'no GPU is' : `only ${detected} GPU${detected > 1 ? 's are' : ' is'}`} visible (nvidia-smi -L)`);
  return configured;
}

/** The NUMA binding of a worker on `device`, or why there is none. */
function numaFor(facts: HostFacts, device: number | null, numa: 'auto' | 'off'): { node: number | null; why: string | null } {
  if (device === null || numa === 'off' || facts.nodes.length <= 1 || !facts.numactl) return { node: null, why: null };
  const gpu = facts.gpus.find((g) => g.index === device);
  if (!gpu || gpu.numaNode === null) return { node: null, why: `GPU ${device}: its NUMA node is unknown (sysfs numa_node ${gpu?.busId ? 'is -1 or missing' : 'unread: no bus id'}); not bound` };
  if (!facts.nodes.some((n) => n.id === gpu.numaNode)) return { node: null, why: `GPU ${device}: NUMA node ${gpu.numaNode} has no memory of its own; not bound` };
  return { node: gpu.numaNode, why: null };
}

/** Scales `xs[i]` (for i in `idx`) down so that their sum fits `cap`; returns whether it had to. */
function fit(xs: number[], idx: number[], cap: number): boolean {
  const sum = idx.reduce((n, i) => n + xs[i], 0);
  if (sum <= cap) return false;
  for (const i of idx) xs[i] = Math.floor((xs[i] * cap) / sum);
  return true;
}

/**
 * Each worker's pinned host budget and NUMA binding. A worker's budget is `hostBytesPerWorker / share` unless the sum
 * over every worker exceeds the cap (host.pinnedBytes, else PIN_FRACTION of the RAM): then every budget is scaled by
 * the same factor so the sum fits. Workers bound to one NUMA node are held, the same way, to PIN_FRACTION of that
 * node's memory (under `--membind` a pool that outgrows its node fails to pin rather than spilling over).
 */
export function planHostLayout(facts: HostFacts, slots: Slot[], o: LayoutOptions): HostLayout {
  const notes: string[] = [];
  if (o.pinnedBytes !== undefined && facts.memBytes > 0 && o.pinnedBytes > facts.memBytes) {
    throw new ConfigError(`host.pinnedBytes (${gib(o.pinnedBytes)}) is more than this machine's RAM (${gib(facts.memBytes)})`);
  }
  const host = slots.map((s) => Math.floor(o.hostBytesPerWorker / Math.max(1, s.share)));
  const bind = slots.map((s) => numaFor(facts, s.device, o.numa));
  const cap = o.pinnedBytes ?? (facts.memBytes > 0 ? Math.floor(facts.memBytes * PIN_FRACTION) : null);
  const asked = host.reduce((a, b) => a + b, 0);
  if (cap !== null && fit(host, host.map((_, i) => i), cap)) {
    notes.push(`pinned host budgets: ${slots.length} workers x ${gib(asked / slots.length)} = ${gib(asked)} is more than ${o.pinnedBytes !== undefined ? 'host.pinnedBytes' : `${PIN_FRACTION * 100} % of the RAM`} (${gib(cap)}): each worker gets its part (${host.map(gib).join(', ')})`);
  }
  for (const n of facts.nodes) {
    const on = bind.flatMap((b, i) => (b.node === n.id ? [i] : []));
    const nodeCap = Math.floor(n.memBytes * PIN_FRACTION);
    if (on.length && fit(host, on, nodeCap)) notes.push(`NUMA node ${n.id}: its ${on.length} bound worker(s) pinned more than ${PIN_FRACTION * 100} % of its ${gib(n.memBytes)}: scaled to ${gib(host[on[0]])} each`);
  }
  for (const b of bind) if (b.why) notes.push(b.why);
  const gpuSlots = slots.some((s) => s.device !== null);
  if (gpuSlots && o.numa === 'auto') {
    if (facts.nodes.length <= 1) notes.push(`NUMA: ${facts.nodes.length || 'no'} node${facts.nodes.length === 1 ? '' : 's'} with memory: workers not bound (nothing to choose)`);
    else if (!facts.numactl) notes.push(`NUMA: ${facts.nodes.length} nodes but numactl is not installed: workers not bound (apt-get install numactl)`);
  }
  const workers = slots.map((s, i): WorkerLayout => {
    const node = bind[i].node;
    return { device: s.device, hostBytes: host[i], numaNode: node, prefix: node === null ? [] : ['numactl', `--cpunodebind=${node}`, `--membind=${node}`] };
  });
  return { workers, pinnedCapBytes: cap, notes };
}

/** One log line per worker: its GPU, NUMA node and pinned host budget. */
export function describeWorker(name: string, w: WorkerLayout, facts: HostFacts): string {
  const gpu = w.device === null ? 'CPU' : `GPU ${w.device}${facts.gpus.find((g) => g.index === w.device)?.busId ? ` (${facts.gpus.find((g) => g.index === w.device)!.busId})` : ''}`;
  const numa = w.numaNode === null ? 'not bound' : `NUMA node ${w.numaNode} (${w.prefix.join(' ')})`;
  return `${name}: ${gpu}, ${numa}, pinned host ${gib(w.hostBytes)}`;
}
