// What a test needs from outside the repository (a tool on PATH, ../shared/data): on a developer's machine a missing
// need skips the test with the reason; under CI (SWAPSERVE_TEST_STRICT=1, which .ci/run sets, or CI=true) it is a
// failure, so that CI never goes green by skipping.
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { SHARED_DATA, STORIES260K_GGUF } from './data.ts';

/** True under CI: a missing need fails instead of skipping. */
export const STRICT = process.env.SWAPSERVE_TEST_STRICT === '1' || process.env.CI === 'true';

/** node:test's `skip` option: false when `present`, else the reason (or, under CI, an error). */
export function skipUnless(present: boolean, reason: string, strict = STRICT): string | false {
  if (present) return false;
  if (strict) throw new Error(`${reason} (CI runs every test: SWAPSERVE_TEST_STRICT=1 or CI=true turns this skip into a failure)`);
  return reason;
}

/** Whether `cmd` is an executable file in a folder of PATH. */
export function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    if (!dir) return false;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Skip reason for a test that runs `cmd` (each is installed by infra/ci-deps.sh). */
export function needsTool(cmd: string): string | false {
  return skipUnless(onPath(cmd), `${cmd} is not on PATH (infra/ci-deps.sh installs it)`);
}

/** Skip reason for a test that reads the shared data (the stories260K model). */
export function needsData(): string | false {
  return skipUnless(existsSync(STORIES260K_GGUF), `no shared data: ${STORIES260K_GGUF} is missing (../shared/data, or SWAPSERVE_SHARED_DATA)`);
}

/** The CUDA toolkit's include folder (CUDA_HOME, CUDA_PATH or /usr/local/cuda, as native/build.mjs looks), if any. */
export function cudaIncludeDir(): string | undefined {
  for (const root of [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda']) {
    if (root && existsSync(join(root, 'include', 'cuda_bf16.h')) && existsSync(join(root, 'include', 'cuda_runtime.h'))) return join(root, 'include');
  }
  return undefined;
}

/** Skip reason for a test that compiles CUDA sources with g++ against the toolkit's headers (no GPU needed). */
export function needsCudaHeaders(): string | false {
  return skipUnless(cudaIncludeDir() !== undefined, 'no CUDA toolkit headers (CUDA_HOME, CUDA_PATH or /usr/local/cuda: include/cuda_bf16.h)');
}
