// The Helm chart rendered by its own template subset (infra/helm/render.mjs; no helm binary here) into manifests
// that validate against the official Kubernetes, KEDA and Prometheus-operator schemas, in both scaling modes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Pod, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { parse } from 'yaml';
import { parseConfig } from '../../services/config/config.ts';
// @ts-expect-error: plain ESM script without types (infra tooling)
import { renderChart, renderTemplate } from '../../infra/helm/render.mjs';
import { DATA_MODELS } from '../spine/stack.ts';

type Manifest = { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown };
const render = renderChart as (o?: unknown, r?: unknown) => Manifest[];

const MODELS: Record<string, new (d: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap, 'v1/Secret': Secret, 'v1/Service': Service, 'v1/ServiceAccount': ServiceAccount, 'v1/Pod': Pod,
  'apps/v1/Deployment': Deployment, 'rbac.authorization.k8s.io/v1/Role': Role, 'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject, 'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
};

function validate(m: Manifest): void {
  const Model = MODELS[`${m.apiVersion}/${m.kind}`];
  assert.ok(Model, `a schema for ${m.apiVersion} ${m.kind}`);
  new Model(m as never).validate();
}

const find = (docs: Manifest[], kind: string, name: string) => {
  const d = docs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(d, `${kind} ${name}`);
  return d as Manifest & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
};

describe('helm chart', () => {
  for (const keda of [false, true]) {
    it(`renders manifests that validate against the schemas (keda ${keda ? 'on' : 'off'})`, () => {
      const docs = render({ keda: { enabled: keda }, auth: { adminKey: 'sk-admin' } }, { Name: 'ss', Namespace: 'ml' });
      for (const d of docs) validate(d);
      const kinds = docs.map((d) => d.kind);
      for (const k of ['ConfigMap', 'Secret', 'Deployment', 'Service', 'ServiceAccount', 'Role', 'RoleBinding', 'ServiceMonitor']) assert.ok(kinds.includes(k), k);
      assert.equal(kinds.includes('ScaledObject'), keda);

      const gw = find(docs, 'Deployment', 'ss-gateway').spec.template.spec.containers[0];
      assert.equal(gw.readinessProbe.httpGet.path, '/readyz');
      assert.equal(gw.livenessProbe.httpGet.path, '/livez');
      assert.equal(gw.envFrom[0].secretRef.name, 'ss-keys');
      assert.equal(find(docs, 'Secret', 'ss-keys').stringData.SWAPSERVE_ADMIN_KEY, 'sk-admin');

      const sched = find(docs, 'Deployment', 'ss-scheduler');
      assert.equal(sched.spec.replicas, 2, 'a standby behind the lease');
      const args = sched.spec.template.spec.containers[0].args as string[];
      assert.equal(args[args.indexOf('--provider') + 1], keda ? 'none' : 'kubernetes');
      assert.equal(sched.spec.template.spec.serviceAccountName, 'ss-scheduler');
      assert.deepEqual(find(docs, 'Role', 'ss-scheduler').rules[0].verbs, ['create', 'delete', 'get', 'list']);

      // The worker pod template the kubernetes provider starts from is a valid Pod that requests a GPU.
      const podYaml = find(docs, 'ConfigMap', 'ss-worker-pod').data['worker-pod.yaml'];
      const pod = parse(podYaml);
      validate(pod);
      assert.equal(pod.spec.containers[0].resources.limits['nvidia.com/gpu'], 1);
      if (keda) {
        const workers = find(docs, 'Deployment', 'ss-worker');
        assert.equal(workers.spec.replicas, undefined, 'KEDA owns the replica count');
        assert.deepEqual(workers.spec.template.spec, pod.spec, 'the KEDA Deployment runs the same pod as the provider');
        const so = find(docs, 'ScaledObject', 'ss-worker');
        assert.equal(so.spec.scaleTargetRef.name, 'ss-worker');
        assert.equal(so.spec.minReplicaCount, 0, 'scale from zero');
        assert.equal(so.spec.triggers[0].type, 'prometheus');
        assert.match(so.spec.triggers[0].metadata.query, /swapserve_queue_depth/);
      }
      // The config the ConfigMap carries is a valid swapserve config.
      const cfg = parse(find(docs, 'ConfigMap', 'ss-config').data['config.yaml']);
      const parsed = parseConfig({ ...cfg, modelRoots: [DATA_MODELS] }, {});
      assert.equal(parsed.health.port, 8081);
      assert.equal(parsed.shutdown.graceMs, 5000);
    });
  }

  it('the renderer refuses what is outside its subset, and trims like helm', () => {
    const scope = { Values: { a: { b: 'x' }, on: true, list: [1] }, Release: { Name: 'r' }, Chart: {} };
    assert.equal(renderTemplate('k: {{ .Values.a.b | quote }}\n{{- if .Values.on }}\nyes: 1\n{{- end }}\n', scope), 'k: "x"\nyes: 1\n');
    assert.equal(renderTemplate('l:\n  {{- toYaml .Values.list | nindent 2 }}\n', scope), 'l:\n  - 1\n');
    assert.throws(() => renderTemplate('{{ .Values.a | upper }}', scope), /"upper" is outside the template subset/);
    assert.throws(() => renderTemplate('{{ .Values.a }}', scope), /is an object; pipe it through toYaml/);
    assert.throws(() => renderTemplate('{{ if .Values.on }}x', scope), /unclosed if/);
  });
});
