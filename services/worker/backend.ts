// What the worker needs from the native side (weights runtime + engine), as one small interface.
// native-backend.ts implements it over native/ts/runtime.ts and native/ts/engine.ts; all of its work runs on
// native threads and resolves Promises, so the worker's event loop (BullMQ lock renewal) never blocks.
import type { ModelEntry } from '../config/config.ts';
import type { JobData } from '../../contracts/job.ts';
import type { MoveKind, Residency } from '../../contracts/vocab.ts';
import type { ModelCapacity } from './admission.ts';

export interface MoveOutcome {
  bytes: number;
  wallMs: number;
}

export type GenEvent =
  | {
      type: 'token'; id: number; text: string;
      /** Which of the job's n choices (absent/0 for n = 1); logprob and topLogprobs when sampling.logprobs is set. */
      choice?: number; logprob?: number; topLogprobs?: { id: number; text: string; logprob: number }[];
    }
  | {
      type: 'done'; finishReason: 'stop' | 'length'; promptTokens: number; completionTokens: number; prefillMs: number; decodeMs: number;
      /** n > 1: each choice's reason (finishReason is choice 0's); completionTokens is their sum. */
      finishReasons?: ('stop' | 'length' | 'cancelled')[];
    };

/**
 * Partial residency (issue 15 item 3; services/worker/partial-residency.ts decides): a parked model may keep its
 * first layer groups on the GPU (its resident prefix); the next swap_in copies only the rest.
 */
export interface PrefixBackend {
  /** Ends of the model's layer groups in its GPU arena, ascending (bytes). */
  groupEnds(modelId: string): number[];
  /** Whether the model has a complete host copy (a partial evict needs one to swap the rest in from). */
  hasHostCopy(modelId: string): boolean;
  /** The model's resident prefix (0 groups, 0 bytes when none). */
  prefix(modelId: string): { groups: number; bytes: number };
  /** Evicts the model keeping its first `keepGroups` groups on the GPU (bookkeeping; its engine is closed first). */
  evictKeeping(modelId: string, keepGroups: number): Promise<MoveOutcome>;
  /** Returns the prefix's bytes to the GPU pool (bookkeeping); `bytes` is what it held. */
  reclaim(modelId: string): Promise<MoveOutcome>;
}

export interface ModelBackend {
  readonly kind: 'cpu' | 'cuda';
  readonly device: string;
  /** What models may use per tier (the GPU's less any device memory the backend keeps for itself, e.g. the codec work buffer). */
  readonly budgets: { host: number; gpu: number };
  /** Opens and validates the model's weight files and registers its layout; returns its arena size (bytes). */
  register(model: ModelEntry): Promise<{ bytes: number }>;
  /** One tier move; onProgress gets bytes moved so far. */
  move(kind: MoveKind, modelId: string, onProgress?: (doneBytes: number, totalBytes: number) => void): Promise<MoveOutcome>;
  residency(modelId: string): Residency;
  usage(): { host: number; gpu: number };
  /** The host tier's codec state of a model (issue 15); absent or null: no codec on this backend / not registered. */
  hostCodec?(modelId: string): { state: 'none' | 'encoding' | 'compressed' | 'raw' | 'failed'; ratio: number; storedBytes: number } | null;
  /** Whether the pinned host tier exists yet (a fresh process pins it in the background). Absent: always ready. */
  hostReady?(): boolean;
  /** Resolves once the pinned host tier exists (so the worker can report the change). */
  whenHostReady?(): Promise<void>;
  /** Runs one generation on a GPU-resident model. Throws RequestError (context_length_exceeded, ...) on bad input. */
  generate(modelId: string, job: JobData, signal: AbortSignal): AsyncIterable<GenEvent>;
  /**
   * False once a sticky device error (the runtime's, on a move, or the engine's, in a pass) made this process's GPU
   * unusable: the worker stops taking jobs, puts back the ones it holds, and exits non-zero for its supervisor.
   */
  healthy(): boolean;
  /** Partial residency; absent: models leave the GPU whole. */
  readonly prefixes?: PrefixBackend;
  /** What the model's engine can admit now (admission.ts); absent: the worker's caps alone decide. */
  capacity?(modelId: string): ModelCapacity | null;
  close(): Promise<void>;
}
