// Id rules: model and worker ids appear in queue names, Redis keys and URLs, so they keep to a safe alphabet.
import { z } from 'zod';

/** Letters, digits and . _ : / - ; at most 128 characters, starting with a letter or digit. */
export const MODEL_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
export const modelIdSchema = z.string().regex(MODEL_ID_RE, 'model id: letters, digits and . _ : / - (at most 128)');

/** Letters, digits and . _ - ; at most 100 characters (no ':' or '/': a worker id is one key segment). */
export const WORKER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
export const WorkerId = z.string().regex(WORKER_ID_RE, 'worker id: letters, digits, . _ - (at most 100)');

/** Worker group names (config `placement.groups[].name`, `worker.group`): the worker id's alphabet. */
export const WorkerGroup = z.string().regex(WORKER_ID_RE, 'worker group: letters, digits, . _ - (at most 100)');
