// The compose stack: N worker services on N distinct GPUs (infra/compose-gpus.mjs + `docker-compose config`), a
// scheduler that starts no processes, health checks, and the image's default config serving a mounted model folder.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseConfig } from '../../services/config/config.ts';
import { DATA_MODELS } from '../spine/stack.ts';

const INFRA = new URL('../../infra/', import.meta.url).pathname;

interface Service {
  command?: string[];
  deploy?: { resources?: { reservations?: { devices?: { device_ids?: string[]; count?: unknown; capabilities: string[] }[] } } };
  networks?: Record<string, { aliases?: string[] } | null>;
  environment?: Record<string, string>;
}

/** `docker-compose config` of the base file plus the generated override for `n` GPUs, parsed. */
function composeFor(n: number): Record<string, Service> {
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-compose-'));
  try {
    const gen = spawnSync(process.execPath, [join(INFRA, 'compose-gpus.mjs'), String(n)], { encoding: 'utf8' });
    assert.equal(gen.status, 0, gen.stderr);
    writeFileSync(join(dir, 'gpus.yml'), gen.stdout);
    const r = spawnSync('docker-compose', ['-f', join(INFRA, 'docker-compose.yml'), '-f', join(dir, 'gpus.yml'), 'config'], { encoding: 'utf8' });
    assert.equal(r.error, undefined, 'docker-compose is installed (infra/ci-deps.sh)');
    assert.equal(r.status, 0, r.stderr);
    return (parse(r.stdout) as { services: Record<string, Service> }).services;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('compose', () => {
  for (const n of [1, 4]) {
    it(`gives ${n} worker service(s) ${n} distinct GPUs and distinct worker ids`, () => {
      const services = composeFor(n);
      const gpu = Object.entries(services).filter(([, s]) => s.deploy?.resources?.reservations?.devices?.some((d) => d.capabilities.includes('gpu')));
      assert.deepEqual(gpu.map(([name]) => name).sort(), ['worker', ...Array.from({ length: n - 1 }, (_, i) => `worker-${i + 1}`)].sort());
      const devices = gpu.flatMap(([, s]) => s.deploy!.resources!.reservations!.devices!);
      assert.ok(devices.every((d) => d.count === undefined && d.device_ids?.length === 1), 'each reserves exactly one named GPU, never a count');
      assert.deepEqual(devices.map((d) => d.device_ids![0]).sort(), Array.from({ length: n }, (_, i) => String(i)));
      const ids = gpu.map(([, s]) => s.command![s.command!.indexOf('--id') + 1]);
      assert.equal(new Set(ids).size, n);
      for (const [, s] of gpu) {
        assert.deepEqual(s.command!.slice(s.command!.indexOf('--device'), s.command!.indexOf('--device') + 2), ['--device', '0'], 'the one visible GPU');
        assert.ok(s.command!.includes('--no-self-load'));
        assert.ok(s.networks?.default?.aliases?.includes('worker'), 'scraped under the name "worker"');
        assert.equal(s.environment?.SWAPSERVE_HEALTH_PORT, '8081');
      }
      // The scheduler starts no workers of its own (it would have no GPU in its container).
      assert.deepEqual(services.scheduler.command, ['scheduler', '--provider', 'none']);
    });
  }

  it('refuses a GPU count that is not a positive integer', () => {
    for (const bad of ['0', 'x', '-1']) {
      const r = spawnSync(process.execPath, [join(INFRA, 'compose-gpus.mjs'), bad], { encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /usage/);
    }
  });

  it('the image: a health check, and a default config that serves the mounted model folder', () => {
    const dockerfile = readFileSync(join(INFRA, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^HEALTHCHECK .*bin\/healthcheck\.mjs/m);
    assert.match(dockerfile, /^COPY infra\/image-config\.yaml \/etc\/swapserve\/config\.yaml$/m);
    const image = parse(readFileSync(join(INFRA, 'image-config.yaml'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(image.modelRoots, ['/models']);
    // The same config with the test data folder standing in for the /models mount.
    const cfg = parseConfig({ ...image, modelRoots: [DATA_MODELS] }, { REDIS_URL: 'redis://redis:6379' });
    assert.ok(cfg.models.some((m) => m.id === 'stories260K' && m.path.endsWith('.gguf')), JSON.stringify(cfg.models.map((m) => m.id)));
    assert.equal(cfg.gateway.host, '0.0.0.0');
  });
});
