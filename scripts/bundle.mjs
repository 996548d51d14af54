// Prebuilt worker entry: bundles `services/cli/worker.ts` and the packages it imports into one ES module,
// `dist/worker.mjs`, so a worker started from zero (scale from zero) skips tsx's per-file transform and Node's
// resolution of several hundred package files (measured on the 2-core dev VM: 1.0 s -> 0.26 s to import the
// worker). bin/swapserve.js runs the bundle only while it is fresh (`freshBundle`): every own source file it was
// built from still has the size and mtime recorded in `dist/worker.json`, and node_modules is unchanged; otherwise it
// falls back to tsx, so editing a .ts file never runs stale code. `npm install` builds it; a failed build only
// warns (the tsx path still works). Usage: `node scripts/bundle.mjs [--out DIR]`.
import { readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_OUT = join(ROOT, 'dist');
const ENTRY = 'services/cli/worker.ts';
/** Changes to node_modules (any npm install) show here. */
const LOCK = 'node_modules/.package-lock.json';
/**
 * Packages left out of the bundle and loaded from node_modules as usual: msgpackr probes for its optional native
 * extension relative to its own __dirname.
 */
const EXTERNAL = ['msgpackr', '*.node'];

function stamp(abs) {
  const s = statSync(abs);
  return { size: s.size, mtimeMs: s.mtimeMs };
}

/**
 * Each own module's `import.meta.url` becomes its source file's URL, computed from the bundle's own URL, so paths
 * resolved from it (the addon's build folder, bin/swapserve.js, ../shared) are the same as under tsx, wherever the
 * checkout sits.
 */
function keepModuleUrls(outDir) {
  return {
    name: 'keep-module-urls',
    setup(build) {
      build.onLoad({ filter: /\.ts$/ }, (args) => {
        if (args.path.split(sep).includes('node_modules')) return undefined;
        const rel = relative(outDir, args.path).split(sep).join('/');
        const text = readFileSync(args.path, 'utf8').replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`);
        return { contents: text, loader: 'ts' };
      });
    },
  };
}

/** Builds the bundle and its manifest into `outDir`. */
export async function buildBundle(outDir = DEFAULT_OUT) {
  const { build } = await import('esbuild');
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, 'worker.mjs');
  const r = await build({
    absWorkingDir: ROOT,
    entryPoints: [join(ROOT, ENTRY)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: EXTERNAL,
    minifyWhitespace: true,
    minifySyntax: true,
    metafile: true,
    logLevel: 'warning',
    // CommonJS packages inside an ES module bundle call require() for Node's built-ins and the external packages,
    // resolved from the checkout's root (the bundle may be written elsewhere).
    banner: { js: `import { createRequire as __ssRequire } from 'node:module'; const require = __ssRequire(new URL(${JSON.stringify(relative(outDir, join(ROOT, 'package.json')).split(sep).join('/'))}, import.meta.url));` },
    plugins: [keepModuleUrls(outDir)],
  });
  const own = Object.keys(r.metafile.inputs).filter((p) => !p.includes('node_modules/')).sort();
  const sources = Object.fromEntries(own.map((p) => [p, stamp(join(ROOT, p))]));
  const manifest = { entry: ENTRY, root: ROOT, builtAt: new Date().toISOString(), lock: stamp(join(ROOT, LOCK)), sources };
  writeFileSync(join(outDir, 'worker.json'), JSON.stringify(manifest, null, 1) + '\n');
  return { outfile, sources: own.length };
}

const same = (a, b) => a !== undefined && b !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs;

/**
 * The bundle's file URL when it was built from exactly the files now in this checkout, else null (missing,
 * moved, a source or node_modules changed since, an unreadable manifest).
 */
export function freshBundle(outDir = DEFAULT_OUT) {
  try {
    const m = JSON.parse(readFileSync(join(outDir, 'worker.json'), 'utf8'));
    if (m.root !== ROOT || m.entry !== ENTRY || !same(m.lock, stamp(join(ROOT, LOCK)))) return null;
    for (const [p, s] of Object.entries(m.sources)) if (!same(s, stamp(join(ROOT, p)))) return null;
    statSync(join(outDir, 'worker.mjs'));
    return pathToFileURL(join(outDir, 'worker.mjs')).href;
  } catch {
    return null;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? resolve(process.argv[i + 1] ?? '') : DEFAULT_OUT;
  try {
    const t0 = performance.now();
    const r = await buildBundle(out);
    console.log(`[swapserve bundle] ${relative(process.cwd(), r.outfile) || r.outfile}: ${r.sources} sources, ${(performance.now() - t0).toFixed(0)} ms`);
  } catch (e) {
    // The worker still runs through tsx; say why it is slower to start.
    console.warn(`[swapserve bundle] not built (workers start through tsx): ${e?.message ?? e}`);
  }
}
