// The CUDA addon's GPU count, for the host probe where nvidia-smi lists nothing (services/scheduler/host-probe.ts).
import { loadAddon, resolveBackend } from '../../native/ts/addon.ts';

/** GPUs the CUDA runtime sees; 0 without a CUDA build, a driver or a GPU. */
export function cudaDeviceCount(): number {
  return resolveBackend('auto') === 'cuda' ? loadAddon('cuda').deviceCount() : 0;
}
