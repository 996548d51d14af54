// Test Prometheus: the real `prometheus` binary (Debian package; infra/ci-deps.sh installs it) scraping given
// targets every second into a temporary TSDB, with a small client for the HTTP query API.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { freePort } from '../../services/dev/free-port.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PromSeries {
  metric: Record<string, string>;
  value: [number, string];
}

export interface TestPrometheus {
  url: string;
  /** Instant query at the current time (or `time`, seconds since the epoch). */
  query(expr: string, time?: number): Promise<PromSeries[]>;
  /** Exemplars of the series `expr` selects over the last `seconds`. */
  exemplars(expr: string, seconds?: number): Promise<{ seriesLabels: Record<string, string>; exemplars: { labels: Record<string, string>; value: string }[] }[]>;
  /** Resolves after Prometheus has completed a scrape of every target that started after this call. */
  nextScrape(): Promise<void>;
  stop(): Promise<void>;
}


/** `honorLabels`: keep the page's own `job` / `instance` labels (as for a Collector's Prometheus exporter). */
export async function startPrometheus(targets: string[], opts: { honorLabels?: boolean } = {}): Promise<TestPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-prom-'));
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: swapserve',
    ...(opts.honorLabels ? ['    honor_labels: true'] : []),
    '    static_configs:',
    `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
  ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), config + '\n');
  const port = await freePort();
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=info',
      '--enable-feature=exemplar-storage',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  const ready = await new Promise<boolean>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot start prometheus (run infra/ci-deps.sh): ${e.message}`)));
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('Server is ready to receive web requests')) resolve(true);
    });
    child.once('exit', () => resolve(false));
  });
  if (!ready) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`prometheus failed to start:\n${log.slice(-2000)}`);
  }
  child.stderr!.removeAllListeners('data');
  child.stderr!.resume();
  const url = `http://127.0.0.1:${port}`;

  async function api<T>(path: string): Promise<T> {
    const res = await fetch(url + path);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  }

  return {
    url,
    async query(expr, time) {
      const t = time ?? Date.now() / 1000;
      const data = await api<{ resultType: string; result: PromSeries[] }>(
        `/api/v1/query?query=${encodeURIComponent(expr)}&time=${t}`,
      );
      return data.resultType === 'vector' ? data.result : [];
    },
    async exemplars(expr, seconds = 600) {
      const end = Date.now() / 1000;
      return api(`/api/v1/query_exemplars?query=${encodeURIComponent(expr)}&start=${end - seconds}&end=${end}`);
    },
    async nextScrape() {
      // Prometheus reports each target's last scrape time; wait until every one is past `since`.
      // Scrapes happen every second, so this polls the targets API at a fraction of that period.
      const since = Date.now();
      const deadline = since + 30_000;
      for (;;) {
        const data = await api<{ activeTargets: { lastScrape: string; health: string; lastError: string }[] }>(
          '/api/v1/targets?state=active',
        );
        const t = data.activeTargets;
        if (t.length === targets.length && t.every((x) => Date.parse(x.lastScrape) > since && x.health === 'up')) return;
        if (Date.now() > deadline) throw new Error(`no fresh scrape within 30 s: ${JSON.stringify(t)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
