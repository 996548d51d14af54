// Queue and per-request key names: one BullMQ queue per model under a {hash-tagged} prefix.

/** Default prefix; the {hash tag} keeps each queue's keys on one Redis Cluster slot, as BullMQ requires there. */
export const DEFAULT_PREFIX = '{swapserve}';

/** BullMQ forbids ':' in queue names; model ids may hold ':' and '/', so they are URI-encoded. */
export function queueName(modelId: string): string {
  return `m.${encodeURIComponent(modelId)}`;
}

export function modelFromQueueName(name: string): string | null {
  return name.startsWith('m.') ? decodeURIComponent(name.slice(2)) : null;
}

/** Keys outside BullMQ: each per-request key carries its own {hash tag} so requests spread across cluster slots. */
export function keys(prefix: string = DEFAULT_PREFIX) {
  const bare = prefix.replace(/[{}]/g, '');
  return {
    /** Per-request token stream (XADD by the worker, XREAD by gateway/SDK); expires streams.ttlS after its last write. */
    stream: (requestId: string) => `${bare}:stream:{${requestId}}`,
    /** Idempotency-Key -> requestId. */
    idempotency: (key: string) => `${bare}:idem:{${key}}`,
    /** Set when a client cancels, read by a worker that starts the job later. */
    cancelled: (requestId: string) => `${bare}:cancel:{${requestId}}`,
    /** Pub/sub channel: a requestId published here cancels it on whichever worker runs it. */
    cancelChannel: `${bare}:cancel`,
  };
}
