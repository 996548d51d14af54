// Paths of the real data files under ../shared/data (see its README.md).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
export const SHARED_DATA = join(root, '..', 'shared', 'data');
/** Karpathy's stories260K as GGUF v3, all F32, 260,032 parameters, with its 512-token SPM vocab embedded. */
export const STORIES260K_GGUF = join(SHARED_DATA, 'models', 'stories260K', 'stories260K.gguf');
