// Paths of the real data files under ../shared/data (see its README.md); SWAPSERVE_SHARED_DATA points elsewhere.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
export const SHARED_DATA = process.env.SWAPSERVE_SHARED_DATA ? resolve(process.env.SWAPSERVE_SHARED_DATA) : join(root, '..', 'shared', 'data');
/** The models folder of the shared data (a model root for configs). */
export const DATA_MODELS = join(SHARED_DATA, 'models');
/** Karpathy's stories260K as GGUF v3, all F32, 260,032 parameters, with its 512-token SPM vocab embedded. */
export const STORIES260K_GGUF = join(DATA_MODELS, 'stories260K', 'stories260K.gguf');
