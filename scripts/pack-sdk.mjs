// Packs the installable SDK: a package named `swapserve` whose only entry, `swapserve/sdk`, is one compiled ES
// module (esbuild bundle of services/sdk/index.ts) with .d.ts declarations (tsc), depending on bullmq, ioredis,
// zod and @opentelemetry/api only (everything else the SDK uses, ours or not, is inside the bundle). The server
// (gateway, worker, scheduler, native addon) is not in it: it runs from a checkout. Writes
// `<out>/package/` and `<out>/swapserve-<version>.tgz` (npm pack). Usage: `node scripts/pack-sdk.mjs [--out DIR]`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_OUT = join(ROOT, 'dist', 'sdk');
const ENTRY = 'services/sdk/index.ts';
/** The SDK package's dependencies: the only packages its bundle imports (versions as in the root package.json). */
export const SDK_DEPENDENCIES = ['bullmq', 'ioredis', 'zod', '@opentelemetry/api'];
/** Where the bundle goes inside the package. */
const BUNDLE = 'sdk/index.js';
/** Bundle size limit (bytes): the SDK must stay a thin client (no OpenTelemetry SDK, no server code). */
export const MAX_BUNDLE_BYTES = 1_000_000;

/** Builds the package folder; returns its path, the bundle's path and the own + package inputs it holds. */
export async function buildSdkPackage(out = DEFAULT_OUT) {
  const pkgDir = join(out, 'package');
  rmSync(pkgDir, { recursive: true, force: true });
  mkdirSync(join(pkgDir, 'sdk'), { recursive: true });
  const { build } = await import('esbuild');
  const r = await build({
    absWorkingDir: ROOT,
    entryPoints: [join(ROOT, ENTRY)],
    outfile: join(pkgDir, BUNDLE),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: SDK_DEPENDENCIES,
    metafile: true,
    logLevel: 'warning',
    // bullmq-otel (bundled) is CommonJS: its require('@opentelemetry/api') resolves from the installed package.
    banner: { js: "import { createRequire as __ssRequire } from 'node:module'; const require = __ssRequire(import.meta.url);" },
  });
  declarations(pkgDir);
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const deps = Object.fromEntries(SDK_DEPENDENCIES.map((d) => [d, root.dependencies[d]]));
  const pkg = {
    name: root.name,
    version: root.version,
    description: 'swapserve SDK: enqueue LLM requests straight into a model\'s BullMQ queue and read the tokens back.',
    type: 'module',
    license: root.license,
    engines: root.engines,
    exports: { './sdk': { types: './types/services/sdk/index.d.ts', default: `./${BUNDLE}` } },
    files: ['sdk', 'types', 'README.md'],
    dependencies: deps,
  };
  writeFileSync(join(pkgDir, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
  writeFileSync(join(pkgDir, 'README.md'), `# swapserve SDK\n\n\`import { Client } from 'swapserve/sdk'\`: see the swapserve README ("Or enqueue straight into the model's BullMQ queue").\n`);
  return { pkgDir, bundle: join(pkgDir, BUNDLE), inputs: Object.keys(r.metafile.inputs) };
}

/**
 * .d.ts files for the SDK entry and what its types reach (contracts/, services/client/ …), the source tree's
 * shape kept under types/. Our sources import with `.ts` extensions; the declarations are rewritten to `.js` so
 * any consumer's TypeScript resolves them (to the .d.ts beside them).
 */
function declarations(pkgDir) {
  const typesDir = join(pkgDir, 'types');
  const tsconfig = join(pkgDir, 'tsconfig.sdk.json');
  writeFileSync(tsconfig, JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true,
      allowImportingTsExtensions: true, declaration: true, emitDeclarationOnly: true, esModuleInterop: true,
      rootDir: ROOT, outDir: typesDir, types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')],
    },
    files: [join(ROOT, ENTRY)],
  }));
  const tsc = createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', tsconfig], { cwd: ROOT, stdio: 'inherit' });
  rmSync(tsconfig);
  for (const f of walk(typesDir)) {
    if (!f.endsWith('.d.ts')) continue;
    const text = readFileSync(f, 'utf8');
    writeFileSync(f, text.replace(/((?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]+)\.ts(['"])/g, '$1$2.js$3'));
  }
}

const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));

/** Builds the folder and packs it; returns the tarball's path and the bundle's size (bytes). */
export async function packSdk(out = DEFAULT_OUT) {
  const { pkgDir, bundle, inputs } = await buildSdkPackage(out);
  const json = execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: pkgDir, encoding: 'utf8' });
  const tarball = join(out, JSON.parse(json)[0].filename);
  return { tarball, pkgDir, bundle, bundleBytes: statSync(bundle).size, inputs };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? resolve(process.argv[i + 1] ?? '') : DEFAULT_OUT;
  const r = await packSdk(out);
  const rel = (p) => relative(process.cwd(), p) || p;
  console.log(`[swapserve sdk] ${rel(r.tarball)}: bundle ${rel(r.bundle)} ${(r.bundleBytes / 1024).toFixed(1)} KiB from ${r.inputs.length} modules`);
  if (r.bundleBytes > MAX_BUNDLE_BYTES) {
    console.error(`[swapserve sdk] bundle is over ${MAX_BUNDLE_BYTES} bytes`);
    process.exitCode = 1;
  }
}
