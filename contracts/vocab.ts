// One vocabulary for every service: residency states, tiers, serving paths, move kinds.

/** Where a model's weights are, per worker. Transitional states name the move under way. */
export const RESIDENCY = ['disk', 'loading', 'host', 'swapping-in', 'gpu', 'evicting'] as const;
export type Residency = (typeof RESIDENCY)[number];

/** The three memory tiers a model can be held in. */
export const TIERS = ['disk', 'host', 'gpu'] as const;
export type Tier = (typeof TIERS)[number];

/** What a request waited for: nothing (warm), a host->GPU transfer (swap), a disk load or worker start (cold). */
export const PATHS = ['warm', 'swap', 'cold'] as const;
export type ServePath = (typeof PATHS)[number];

/** Why a cold request was cold. */
export const COLD_REASONS = ['disk_load', 'worker_start'] as const;
export type ColdReason = (typeof COLD_REASONS)[number];

/** Tier moves done by the native runtime (also the `swapserve.move.kind` metric attribute). */
export const MOVE_KINDS = ['load', 'swap_in', 'load_to_gpu', 'evict', 'drop'] as const;
export type MoveKind = (typeof MOVE_KINDS)[number];

/** How a request ended. Every accepted request ends in exactly one outcome. */
export const OUTCOMES = ['completed', 'failed', 'cancelled'] as const;
export type Outcome = (typeof OUTCOMES)[number];
