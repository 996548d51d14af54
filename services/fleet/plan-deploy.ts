// From a `swapserve plan` output to what one host runs (issue 14): which of the plan's groups land on this host's GPUs,
// with how many workers per GPU and whether they share it under MPS. Parsing reads the file; the layout is pure.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { placementGroupSchema, type CoLocationConfig, type PlacementGroup } from '../config/config.ts';
import { FleetInputError } from './calibration.ts';

/** A plan's groups: those of `placement.groups` (`swapserve plan --out`, YAML) or `groups` (`swapserve plan --json`). */
const planGroupsSchema = z.array(placementGroupSchema).min(1).superRefine((groups, ctx) => {
  const seen = new Set<string>();
  groups.forEach((g, i) => {
    // A group runs on a host only by its GPU type and count: a plan without them cannot be deployed.
    if (g.gpu === undefined) ctx.addIssue({ code: 'custom', path: [i, 'gpu'], message: 'missing: the GPU type the group runs on' });
    if (g.gpus === undefined) ctx.addIssue({ code: 'custom', path: [i, 'gpus'], message: 'missing: how many GPUs the group has' });
    if (seen.has(g.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate group "${g.name}"` });
    seen.add(g.name);
  });
});

/** A plan group that names its GPU type and count. */
export type DeployGroup = PlacementGroup & { gpu: string; gpus: number };

/** The groups of a plan document already read (YAML or JSON value); throws FleetInputError naming the field. */
export function parsePlanGroups(raw: unknown, what: string): DeployGroup[] {
  const doc = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>) : {};
  let at: string, groups: unknown;
  if ('placement' in doc) {
    at = 'placement.groups';
    const p = doc.placement;
    groups = p !== null && typeof p === 'object' ? (p as Record<string, unknown>).groups : undefined;
  } else if ('groups' in doc) {
    at = 'groups';
    // The --json form carries each group's figures too: the plan's, not the deployment's.
    groups = Array.isArray(doc.groups)
      ? doc.groups.map((g: unknown) => {
        if (g === null || typeof g !== 'object') return g;
        const { utilization: _u, costPerHourUsd: _c, ...rest } = g as Record<string, unknown>;
        return rest;
      })
      : doc.groups;
  } else {
    throw new FleetInputError(`${what}: not a plan: expected placement.groups (swapserve plan --out) or groups (swapserve plan --json)`);
  }
  const r = planGroupsSchema.safeParse(groups);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${[at, ...i.path].join('.')}: ${i.message}`);
    throw new FleetInputError(`${what}: invalid plan:\n${lines.join('\n')}`);
  }
  return r.data as DeployGroup[];
}

/** Reads a plan file (`swapserve plan --out` YAML, or `--json`); throws FleetInputError naming the file and the field. */
export function loadPlanGroups(path: string): DeployGroup[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FleetInputError(`plan ${path}: cannot read: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new FleetInputError(`plan ${path}: cannot parse: ${(e as Error).message}`);
  }
  return parsePlanGroups(raw, `plan ${path}`);
}

const tokens = (s: string): string[] => s.toLowerCase().split(/[^a-z0-9]+/).filter((t) => t.length > 0);

/**
 * Whether a plan's GPU type names a GPU model: every word of the type is a word of the name, case-insensitive
 * ("H100" names "NVIDIA H100 80GB HBM3", "A100-80GB" names "NVIDIA A100-SXM4-80GB"; "L4" does not name "NVIDIA L40S").
 */
export function gpuTypeMatches(planType: string, gpuName: string): boolean {
  const have = new Set(tokens(gpuName));
  const want = tokens(planType);
  return want.length > 0 && want.every((t) => have.has(t));
}

/** One GPU of this host under the plan. */
export interface DeviceAssignment {
  device: number;
  group: string;
  workers: number;
  mps: boolean;
}

export interface HostDeployment {
  /** The GPUs the plan's groups take on this host, from device 0 up (GPUs beyond them stay idle). */
  devices: DeviceAssignment[];
  /** Every group of the plan, for `placement.groups` (the scheduler places models on other hosts' groups too). */
  groups: DeployGroup[];
  /** Lines to log: what landed where, what is left for other hosts, which GPUs stay idle. */
  notes: string[];
}

/**
 * Lays the plan's groups of this host's GPU type onto its GPUs, in plan order, each taking its `gpus` (or the GPUs
 * left: the rest of the group runs on other hosts). `only`: the groups this host runs (default: all of its type).
 * Throws FleetInputError when the host has no GPU, its type is none of the plan's, or a chosen group cannot run here.
 */
export function deployOnHost(groups: readonly DeployGroup[], host: { gpuType: string | null; gpus: number }, only?: readonly string[]): HostDeployment {
  const types = [...new Set(groups.map((g) => g.gpu))];
  if (host.gpus === 0) throw new FleetInputError(`the plan runs on ${types.join(', ')} GPUs but this host has no GPU visible (nvidia-smi -L)`);
  if (host.gpuType === null) throw new FleetInputError(`this host's GPU type is unknown (nvidia-smi gives no name): give it with --gpu-type (the plan's types: ${types.join(', ')})`);
  for (const name of only ?? []) {
    if (!groups.some((g) => g.name === name)) throw new FleetInputError(`--group ${name}: not a group of the plan (${groups.map((g) => g.name).join(', ')})`);
  }
  const mine = groups.filter((g) => gpuTypeMatches(g.gpu, host.gpuType!) && (only === undefined || only.includes(g.name)));
  const chosenElsewhere = (only ?? []).filter((n) => !mine.some((g) => g.name === n));
  if (chosenElsewhere.length > 0) {
    const g = groups.find((x) => x.name === chosenElsewhere[0])!;
    throw new FleetInputError(`--group ${g.name}: the plan runs it on ${g.gpu} GPUs, this host has ${host.gpuType}`);
  }
  if (mine.length === 0) throw new FleetInputError(`the plan names no group for this host's GPUs (${host.gpuType}): its groups run on ${types.join(', ')}`);
  const devices: DeviceAssignment[] = [];
  const notes: string[] = [];
  for (const g of mine) {
    if (g.gpusPerWorker > 1) throw new FleetInputError(`group ${g.name}: ${g.gpusPerWorker} GPUs per worker (tensor parallel), which swapserve's engine does not run yet`);
    const take = Math.min(g.gpus, host.gpus - devices.length);
    if (take === 0) {
      notes.push(`plan: group ${g.name} (${g.gpus} x ${g.gpu}) gets no GPU here: run it on another host (--group ${g.name})`);
      continue;
    }
    const first = devices.length;
    for (let i = 0; i < take; i++) devices.push({ device: first + i, group: g.name, workers: g.workersPerGpu, mps: g.mps });
    const span = take === 1 ? `GPU ${first}` : `GPUs ${first}-${first + take - 1}`;
    const per = g.workersPerGpu > 1 ? `${g.workersPerGpu} workers per GPU${g.mps ? ' under MPS' : ', time-sliced'}` : 'one worker per GPU';
    notes.push(`plan: group ${g.name} (${g.mode ?? 'placement'}; ${g.models.join(', ')}) on ${span}, ${per}${take < g.gpus ? `; its other ${g.gpus - take} GPU(s) run on other hosts` : ''}`);
  }
  if (devices.length < host.gpus) notes.push(`plan: ${host.gpus - devices.length} GPU(s) of this host are in no group of the plan and stay idle`);
  const mixed = devices.some((d) => d.workers > 1 && d.mps) && devices.some((d) => d.workers > 1 && !d.mps);
  if (mixed) throw new FleetInputError('the plan co-locates some of this host\'s GPUs under MPS and others time-sliced; one host runs one or the other (run the groups on separate hosts with --group)');
  return { devices, groups: [...groups], notes };
}

/** The co-location config a deployment means: the plan's workers per GPU, as decided (no gain check of its own). */
export function coLocationOf(base: CoLocationConfig, d: HostDeployment): CoLocationConfig {
  const colocated = d.devices.filter((x) => x.workers > 1);
  if (colocated.length === 0) return { ...base, enabled: false };
  return {
    ...base, enabled: true,
    gpus: d.devices.map((x) => ({ device: x.device, workersPerGpu: x.workers })),
    // The planner decided from the calibration's measured MPS load factor; the gain table would judge it again.
    requireGain: false,
    mps: { ...base.mps, enabled: colocated.some((x) => x.mps) },
  };
}
