// The `kubernetes` worker provider: scale from zero on a cluster by creating one worker pod per started worker
// (from a pod template the Helm chart mounts) and deleting it to stop. Shaped like LocalProcessProvider.
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../config/log.ts';
import type { WorkerProvider } from './provider.ts';

/** Label every pod of this provider carries (its value: the scheduler deployment's name); the selector for running(). */
export const WORKER_LABEL = 'swapserve.io/worker';
/** Annotation with the full worker id (a label value is limited to 63 characters). */
export const WORKER_ID_ANNOTATION = 'swapserve.io/worker-id';

export interface KubernetesProviderOptions {
  /** Namespace the worker pods live in. */
  namespace: string;
  /** The pod every worker starts from: its first container runs `swapserve worker`; `--id` is appended here. */
  template: V1Pod;
  /** Value of the WORKER_LABEL label (tells this deployment's workers from another's). @defaultValue "swapserve" */
  owner?: string;
  /** Cluster access. @defaultValue in-cluster service account, else ~/.kube/config (KubeConfig.loadFromDefault) */
  kubeConfig?: KubeConfig;
  /** Delete grace period handed to the kubelet (s): the worker drains within it. @defaultValue 30 */
  gracePeriodS?: number;
  /** Where created/deleted pods and failed API calls are logged. */
  log: Logger;
}

/** A pod name from a worker id: DNS-1123 (lowercase letters, digits, '-'), at most 63 characters. */
export function podName(workerId: string): string {
  const base = `swapserve-${workerId}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/-+/g, '-');
  return base.slice(0, 63).replace(/-+$/, '');
}

/** The pod for one worker: the template with its name, labels, annotation and `--id` argument. */
export function workerPod(template: V1Pod, workerId: string, owner: string): V1Pod {
  const pod = structuredClone(template);
  const containers = pod.spec?.containers ?? [];
  if (containers.length === 0) throw new Error('the worker pod template has no containers');
  pod.apiVersion = 'v1';
  pod.kind = 'Pod';
  pod.metadata = {
    ...pod.metadata,
    name: podName(workerId),
    labels: { ...pod.metadata?.labels, [WORKER_LABEL]: owner },
    annotations: { ...pod.metadata?.annotations, [WORKER_ID_ANNOTATION]: workerId },
  };
  delete pod.metadata.generateName;
  // A crashed worker is replaced by the scheduler under a new id, never restarted in place under the old one.
  pod.spec!.restartPolicy = 'Never';
  containers[0].args = [...(containers[0].args ?? []), '--id', workerId];
  return pod;
}

/** A clear one-line description of a failed API call: HTTP status, the API's Status message, or the cause. */
export function describeApiError(action: string, e: unknown): string {
  const err = e as { code?: unknown; body?: unknown; message?: string };
  if (typeof err?.code === 'number') {
    let detail = '';
    const body = typeof err.body === 'string' ? safeJson(err.body) : err.body;
    const status = body as { message?: unknown; reason?: unknown } | null;
    if (status && typeof status.message === 'string') detail = `${typeof status.reason === 'string' ? status.reason + ': ' : ''}${status.message}`;
    else if (typeof err.body === 'string' && err.body.length) detail = `unparsable response body: ${err.body.slice(0, 200)}`;
    return `kubernetes: ${action} failed with HTTP ${err.code}${detail ? ` (${detail})` : ''}`;
  }
  return `kubernetes: ${action} failed: ${err?.message ?? String(e)}`;
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}

export class KubernetesProvider implements WorkerProvider {
  private readonly api: CoreV1Api;
  private readonly o: Required<Omit<KubernetesProviderOptions, 'kubeConfig'>>;
  /** Pod name per worker id this provider created and has not seen deleted. */
  private readonly pods = new Map<string, string>();
  private closed = false;

  constructor(options: KubernetesProviderOptions) {
    this.o = { owner: 'swapserve', gracePeriodS: 30, ...options };
    const kc = options.kubeConfig ?? new KubeConfig();
    if (!options.kubeConfig) kc.loadFromDefault();
    this.api = kc.makeApiClient(CoreV1Api);
  }

  async start(workerId: string, hint: { model: string | null }): Promise<void> {
    if (this.closed) throw new Error('KubernetesProvider is closed');
    if (this.pods.has(workerId)) throw new Error(`worker ${workerId} is already running`);
    const body = workerPod(this.o.template, workerId, this.o.owner);
    try {
      const created = await this.api.createNamespacedPod({ namespace: this.o.namespace, body });
      this.pods.set(workerId, created?.metadata?.name ?? body.metadata!.name!);
      this.o.log.info({ workerId, pod: body.metadata!.name, model: hint.model }, 'worker pod created');
    } catch (e) {
      const msg = describeApiError(`create pod ${body.metadata!.name}`, e);
      this.o.log.error({ workerId, model: hint.model }, msg);
      throw new Error(msg, { cause: e });
    }
  }

  async stop(workerId: string): Promise<void> {
    const name = this.pods.get(workerId);
    if (!name) return;
    try {
      await this.api.deleteNamespacedPod({ namespace: this.o.namespace, name, gracePeriodSeconds: this.o.gracePeriodS });
      this.pods.delete(workerId);
      this.o.log.info({ workerId, pod: name }, 'worker pod deleted');
    } catch (e) {
      // Already gone: the goal is reached.
      if ((e as { code?: unknown })?.code === 404) {
        this.pods.delete(workerId);
        return;
      }
      const msg = describeApiError(`delete pod ${name}`, e);
      this.o.log.error({ workerId }, msg);
      throw new Error(msg, { cause: e });
    }
  }

  running(): string[] {
    return [...this.pods.keys()];
  }

  /** Leaves the pods running: a standby scheduler that takes the lease finds them by their heartbeats. */
  async close(): Promise<void> {
    this.closed = true;
  }
}
