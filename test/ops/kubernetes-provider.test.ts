// The kubernetes worker provider against a local HTTP server speaking the Kubernetes API's wire format for the
// calls it makes (create pod, delete pod) over real sockets: the pod it sends, and clear errors (never a crash)
// for 4xx/5xx Status answers and malformed JSON.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Pod } from 'kubernetes-models/v1';
import { pino } from 'pino';
import { KubernetesProvider, podName, WORKER_ID_ANNOTATION, WORKER_LABEL } from '../../services/scheduler/kubernetes-provider.ts';

interface Call { method: string; path: string; query: URLSearchParams; body: unknown; auth: string | undefined }
type Answer = (call: Call) => { status: number; body: string };

let server: Server;
let port = 0;
const calls: Call[] = [];
let answer: Answer = () => ({ status: 500, body: '' });
const logged: Record<string, unknown>[] = [];
const log = pino({ level: 'info' }, { write: (l: string) => void logged.push(JSON.parse(l) as Record<string, unknown>) });

const TEMPLATE: V1Pod = {
  apiVersion: 'v1', kind: 'Pod',
  metadata: { labels: { app: 'swapserve-worker' } },
  spec: {
    containers: [{
      name: 'worker', image: 'swapserve:test', args: ['worker', '--no-self-load'],
      resources: { limits: { 'nvidia.com/gpu': '1' } },
    }],
  },
};

const status = (code: number, reason: string, message: string) =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });

function provider(): KubernetesProvider {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'local', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'sa', token: 'test-token' }],
    contexts: [{ name: 'ctx', cluster: 'local', user: 'sa', namespace: 'ml' }],
    currentContext: 'ctx',
  });
  return new KubernetesProvider({ namespace: 'ml', template: TEMPLATE, owner: 'swapserve-prod', kubeConfig: kc, log, gracePeriodS: 45 });
}

before(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.on('data', (d: Buffer) => { raw += d.toString(); });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const call: Call = { method: req.method ?? '', path: url.pathname, query: url.searchParams, body: raw ? JSON.parse(raw) : null, auth: req.headers.authorization };
      calls.push(call);
      const a = answer(call);
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as { port: number }).port;
});
after(() => new Promise<void>((r) => server.close(() => r())));

describe('kubernetes provider', () => {
  it('creates a worker pod from the template (valid against the Pod schema) and deletes it', async () => {
    calls.length = 0;
    answer = (c) => c.method === 'POST'
      ? { status: 201, body: JSON.stringify({ ...(c.body as object), status: { phase: 'Pending' } }) }
      : { status: 200, body: JSON.stringify({ kind: 'Pod', apiVersion: 'v1', metadata: { name: c.path.split('/').pop() } }) };
    const p = provider();
    await p.start('w-Ab12-7', { model: 'llama' });
    assert.deepEqual(p.running(), ['w-Ab12-7']);
    const create = calls[0];
    assert.equal(create.method, 'POST');
    assert.equal(create.path, '/api/v1/namespaces/ml/pods');
    assert.equal(create.auth, 'Bearer test-token');
    const pod = create.body as V1Pod;
    new Pod(pod as ConstructorParameters<typeof Pod>[0]).validate();
    assert.equal(pod.metadata!.name, podName('w-Ab12-7'));
    assert.match(pod.metadata!.name!, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    assert.equal(pod.metadata!.labels![WORKER_LABEL], 'swapserve-prod');
    assert.equal(pod.metadata!.labels!.app, 'swapserve-worker');
    assert.equal(pod.metadata!.annotations![WORKER_ID_ANNOTATION], 'w-Ab12-7');
    assert.equal(pod.spec!.restartPolicy, 'Never');
    assert.deepEqual(pod.spec!.containers[0].args, ['worker', '--no-self-load', '--id', 'w-Ab12-7']);
    assert.equal(pod.spec!.containers[0].resources!.limits!['nvidia.com/gpu'], '1');
    assert.deepEqual(TEMPLATE.spec!.containers[0].args, ['worker', '--no-self-load'], 'the template is not modified');

    await p.stop('w-Ab12-7');
    const del = calls[1];
    assert.equal(del.method, 'DELETE');
    assert.equal(del.path, `/api/v1/namespaces/ml/pods/${podName('w-Ab12-7')}`);
    assert.equal(del.query.get('gracePeriodSeconds'), '45');
    assert.deepEqual(p.running(), []);
    await p.stop('w-Ab12-7'); // unknown now: no call
    assert.equal(calls.length, 2);
  });

  it('turns 4xx/5xx Status answers and malformed JSON into clear errors and log lines, never a crash', async () => {
    const p = provider();
    for (const [a, want] of [
      [() => ({ status: 403, body: status(403, 'Forbidden', 'pods is forbidden: User "system:serviceaccount:ml:sched" cannot create resource "pods"') }), /HTTP 403 \(Forbidden: pods is forbidden/],
      [() => ({ status: 500, body: status(500, 'InternalError', 'etcdserver: request timed out') }), /HTTP 500 \(InternalError: etcdserver: request timed out\)/],
      [() => ({ status: 201, body: '{"kind":"Pod", not json' }), /kubernetes: create pod swapserve-w-bad failed/],
      [() => ({ status: 502, body: '<html>bad gateway</html>' }), /HTTP 502/],
    ] as [Answer, RegExp][]) {
      answer = a;
      logged.length = 0;
      await assert.rejects(p.start('w-bad', { model: 'm' }), (e: Error) => want.test(e.message) || assert.fail(e.message));
      assert.deepEqual(p.running(), [], 'a failed create leaves nothing behind');
      assert.equal(logged.length, 1);
      assert.equal(logged[0].level, 50);
      assert.match(String(logged[0].msg), want);
    }
    // Delete: a 404 means it is gone already (no error); a 500 is an error and the worker is still tracked.
    answer = (c) => (c.method === 'POST' ? { status: 201, body: JSON.stringify(c.body) } : { status: 500, body: status(500, 'InternalError', 'boom') });
    await p.start('w-del', { model: null });
    await assert.rejects(p.stop('w-del'), /delete pod swapserve-w-del failed with HTTP 500 \(InternalError: boom\)/);
    assert.deepEqual(p.running(), ['w-del']);
    answer = () => ({ status: 404, body: status(404, 'NotFound', 'pods "swapserve-w-del" not found') });
    await p.stop('w-del');
    assert.deepEqual(p.running(), []);
  });

  it('refuses an unreachable API server with a clear error', async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'http://127.0.0.1:1', skipTLSVerify: true }], users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
    });
    const p = new KubernetesProvider({ namespace: 'ml', template: TEMPLATE, kubeConfig: kc, log });
    await assert.rejects(p.start('w-x', { model: null }), /^Error: kubernetes: create pod swapserve-w-x failed: /);
  });
});
