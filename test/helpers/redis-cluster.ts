// Test Redis Cluster: three real redis-server masters (cluster mode, no persistence) on free ports, joined with
// `redis-cli --cluster create`, stopped after. URL form: redis-cluster://127.0.0.1:p1,127.0.0.1:p2,...
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { freePort } from '../../services/dev/free-port.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRedisCluster {
  url: string;
  stop(): Promise<void>;
}


export async function startRedisCluster(nodes = 3): Promise<TestRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(children.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const e = once(c, 'exit');
      c.kill('SIGTERM');
      await e;
    }));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < nodes; i++) {
      const port = await freePort();
      const c = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
        '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(c);
      let out = '';
      const ok = await new Promise<boolean>((resolve) => {
        c.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('Ready to accept connections')) resolve(true); });
        c.once('exit', () => resolve(false));
      });
      if (!ok) throw new Error(`redis-server (cluster) failed to start:\n${out}`);
      c.stdout!.removeAllListeners('data');
      c.stdout!.resume();
      c.stderr!.resume();
      ports.push(port);
    }
    const r = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`redis-cli --cluster create failed: ${r.stdout}${r.stderr}`);
    // Wait until every node reports the cluster healthy.
    for (const p of ports) {
      for (let i = 0; ; i++) {
        const info = spawnSync('redis-cli', ['-p', String(p), 'cluster', 'info'], { encoding: 'utf8' }).stdout;
        if (info.includes('cluster_state:ok')) break;
        if (i > 200) throw new Error(`cluster node ${p} not ok: ${info}`);
        await new Promise((res) => setTimeout(res, 50));
      }
    }
    return { url: `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
