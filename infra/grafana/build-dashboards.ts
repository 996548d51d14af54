// Writes infra/grafana/dashboards/swapserve.json from the panel list below (`npx tsx infra/grafana/build-dashboards.ts`
// after editing; the JSON is committed so Grafana provisioning needs no build). Queue and worker gauges are
// cluster-wide values that every gateway reports, so they are combined with max, never sum. Every metric is selected
// by both of its Prometheus names (contracts/semconv.ts prometheusNames): swapserve's own /metrics, and OTLP through
// a Collector (unit suffixes such as `_seconds`), so one dashboard works on either path.
// test/telemetry/dashboards.test.ts evaluates every query against a real Prometheus fed each way.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as S from '../../contracts/semconv.ts';

const PROM = { type: 'prometheus', uid: 'prometheus' };
const TEMPO = { type: 'tempo', uid: 'tempo' };
const M = 'gen_ai_request_model=~"$model"';
const R = '$__rate_interval';

/**
 * A selector of `metric` (+ `suffix`, e.g. `_bucket`) under either of its Prometheus names, with `labels`:
 * `{__name__=~"direct|otlp", labels}`, or the plain name where both paths agree.
 */
function m(metric: string, suffix = '', labels = ''): string {
  const [direct, otlp] = S.prometheusNames(metric, suffix);
  if (direct === otlp) return `${direct}{${labels}}`.replace('{}', '');
  return `{__name__=~"${direct}|${otlp}"${labels ? `, ${labels}` : ''}}`;
}

let nextId = 1;
const grid = { x: 0, y: 0 };
/** Lays panels out left to right, two per row (12 columns each). */
function place(w = 12, h = 8): { x: number; y: number; w: number; h: number } {
  if (grid.x + w > 24) { grid.x = 0; grid.y += h; }
  const pos = { x: grid.x, y: grid.y, w, h };
  grid.x += w;
  return pos;
}
function row(title: string) {
  grid.x = 0; grid.y += 8;
  const p = { type: 'row', title, id: nextId++, collapsed: false, gridPos: { x: 0, y: grid.y, w: 24, h: 1 }, panels: [] };
  grid.y += 1;
  return p;
}
interface Extra { w?: number; fill?: number; stack?: boolean; overrides?: unknown[] }
function timeseries(title: string, unit: string, targets: [expr: string, legend: string][], extra: Extra = {}) {
  return {
    type: 'timeseries', title, id: nextId++, datasource: PROM, gridPos: place(extra.w ?? 12),
    fieldConfig: { defaults: { unit, custom: { lineWidth: 1, fillOpacity: extra.fill ?? 0, stacking: { mode: extra.stack ? 'normal' : 'none' } } }, overrides: extra.overrides ?? [] },
    options: { legend: { displayMode: 'table', placement: 'bottom', calcs: ['lastNotNull', 'max'] }, tooltip: { mode: 'multi' } },
    targets: targets.map(([expr, legendFormat], i) => ({ datasource: PROM, refId: String.fromCharCode(65 + i), expr, legendFormat, exemplar: true, range: true })),
  };
}
function traceTable(title: string, query: string) {
  return {
    type: 'table', title, id: nextId++, datasource: TEMPO, gridPos: place(12, 10),
    options: { showHeader: true, sortBy: [{ displayName: 'Duration', desc: true }] },
    targets: [{ datasource: TEMPO, refId: 'A', queryType: 'traceql', query, limit: 20, tableType: 'traces' }],
  };
}

const q = (p: number) => `histogram_quantile(${p}, sum by (le, swapserve_path) (rate(${m(S.METRIC_TTFT, '_bucket', M)}[${R}])))`;

const panels = [
  row('Time to first token'),
  timeseries('TTFT p50 / p95 / p99 by path', 's', [
    [q(0.5), 'p50 {{swapserve_path}}'],
    [q(0.95), 'p95 {{swapserve_path}}'],
    [q(0.99), 'p99 {{swapserve_path}}'],
  ]),
  timeseries('TTFT p95 by model and path', 's', [
    [`histogram_quantile(0.95, sum by (le, gen_ai_request_model, swapserve_path) (rate(${m(S.METRIC_TTFT, '_bucket', M)}[${R}])))`, '{{gen_ai_request_model}} {{swapserve_path}}'],
  ]),
  timeseries('Requests per second by path', 'reqps', [
    [`sum by (swapserve_path) (rate(${m(S.METRIC_REQUEST_DURATION, '_count', M)}[${R}]))`, '{{swapserve_path}}'],
  ], { stack: true, fill: 30 }),
  timeseries('Time per output token p50 / p95 by path', 's', [
    [`histogram_quantile(0.5, sum by (le, swapserve_path) (rate(${m(S.METRIC_TPOT, '_bucket', M)}[${R}])))`, 'p50 {{swapserve_path}}'],
    [`histogram_quantile(0.95, sum by (le, swapserve_path) (rate(${m(S.METRIC_TPOT, '_bucket', M)}[${R}])))`, 'p95 {{swapserve_path}}'],
  ]),
  timeseries('Tokens per request p50 / p95 (input, output)', 'short', [
    [`histogram_quantile(0.5, sum by (le, gen_ai_token_type) (rate(${m(S.METRIC_TOKEN_USAGE, '_bucket', M)}[${R}])))`, 'p50 {{gen_ai_token_type}}'],
    [`histogram_quantile(0.95, sum by (le, gen_ai_token_type) (rate(${m(S.METRIC_TOKEN_USAGE, '_bucket', M)}[${R}])))`, 'p95 {{gen_ai_token_type}}'],
  ]),
  timeseries('Request duration p95 by path', 's', [
    [`histogram_quantile(0.95, sum by (le, swapserve_path) (rate(${m(S.METRIC_REQUEST_DURATION, '_bucket', M)}[${R}])))`, 'p95 {{swapserve_path}}'],
  ]),
  timeseries('Failed requests per second by error', 'reqps', [
    [`sum by (error_type) (rate(${m(S.METRIC_REQUEST_ERRORS, '', M)}[${R}]))`, '{{error_type}}'],
  ]),
  timeseries('Share of requests by path', 'percentunit', [
    [`sum by (swapserve_path) (rate(${m(S.METRIC_REQUEST_DURATION, '_count', M)}[${R}])) / scalar(sum(rate(${m(S.METRIC_REQUEST_DURATION, '_count', M)}[${R}])))`, '{{swapserve_path}}'],
  ], { stack: true, fill: 50 }),
  row('Tiers and moves'),
  timeseries('Swap-in bandwidth against the link peak', 'GBs', [
    [`histogram_quantile(0.5, sum by (le) (rate(${m(S.METRIC_MOVE_BANDWIDTH, '_bucket', 'swapserve_move_kind="swap_in"')}[${R}])))`, 'swap-in p50'],
    [`histogram_quantile(0.05, sum by (le) (rate(${m(S.METRIC_MOVE_BANDWIDTH, '_bucket', 'swapserve_move_kind="swap_in"')}[${R}])))`, 'swap-in p5 (slowest)'],
    [`max(${m(S.METRIC_LINK_PEAK)})`, 'link peak'],
  ], { overrides: [{ matcher: { id: 'byName', options: 'link peak' }, properties: [{ id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } }, { id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }] }] }),
  timeseries('Tier occupancy', 'bytes', [
    [`sum by (swapserve_tier) (${m(S.METRIC_RESIDENCY_BYTES)})`, '{{swapserve_tier}}'],
  ], { stack: false, fill: 10 }),
  timeseries('Models resident per tier', 'bytes', [
    [`sum by (gen_ai_request_model, swapserve_tier) (${m(S.METRIC_RESIDENCY_BYTES, '', M)})`, '{{gen_ai_request_model}} @ {{swapserve_tier}}'],
  ], { stack: true, fill: 40 }),
  timeseries('Bytes moved per second by kind', 'Bps', [
    [`sum by (swapserve_move_kind) (rate(${m(S.METRIC_MOVE_BYTES)}[${R}]))`, '{{swapserve_move_kind}}'],
  ]),
  timeseries('Move duration p95 by kind', 's', [
    [`histogram_quantile(0.95, sum by (le, swapserve_move_kind) (rate(${m(S.METRIC_MOVE_DURATION, '_bucket')}[${R}])))`, '{{swapserve_move_kind}}'],
  ]),
  timeseries('Evictions', 'short', [
    [`sum by (gen_ai_request_model, swapserve_tier) (increase(${m(S.METRIC_EVICTIONS, '', M)}[${R}]))`, '{{gen_ai_request_model}} from {{swapserve_tier}}'],
  ]),
  row('Queues and workers'),
  timeseries('Queue depth (waiting) by model', 'short', [
    [`max by (gen_ai_request_model) (${m(S.METRIC_QUEUE_DEPTH, '', `${M}, swapserve_queue_state="waiting"`)})`, '{{gen_ai_request_model}}'],
  ]),
  timeseries('Oldest waiting request by model', 's', [
    [`max by (gen_ai_request_model) (${m(S.METRIC_QUEUE_OLDEST_WAIT, '', M)})`, '{{gen_ai_request_model}}'],
  ]),
  timeseries('Jobs being served by model', 'short', [
    [`max by (gen_ai_request_model) (${m(S.METRIC_QUEUE_DEPTH, '', `${M}, swapserve_queue_state="active"`)})`, '{{gen_ai_request_model}}'],
  ]),
  timeseries('Workers by state', 'short', [
    [`max by (swapserve_worker_state) (${m(S.METRIC_WORKERS)})`, '{{swapserve_worker_state}}'],
  ], { stack: true, fill: 30 }),
  row('Traces (Tempo)'),
  traceTable('Slowest cold requests', '{ span.swapserve.path = "cold" }'),
  traceTable('Slowest swap requests', '{ span.swapserve.path = "swap" }'),
  traceTable('Requests waiting on an eviction', '{ name = "swapserve.evict_wait" }'),
  traceTable('Slow warm requests (TTFT-relevant, > 1 s)', '{ span.swapserve.path = "warm" && kind = server && duration > 1s }'),
];

const dashboard = {
  uid: 'swapserve-overview',
  title: 'swapserve — paths, tiers, queues',
  description: 'Time to first token by serving path (warm / swap / cold), tier occupancy and moves, queues, and traces.',
  tags: ['swapserve', 'llm', 'gen_ai'],
  timezone: 'browser',
  schemaVersion: 39,
  version: 1,
  editable: true,
  refresh: '10s',
  time: { from: 'now-30m', to: 'now' },
  templating: {
    list: [{
      name: 'model', label: 'model', type: 'query', datasource: PROM,
      query: { query: `label_values(${m(S.METRIC_REQUEST_DURATION, '_count')}, gen_ai_request_model)`, refId: 'model' },
      definition: `label_values(${m(S.METRIC_REQUEST_DURATION, '_count')}, gen_ai_request_model)`,
      includeAll: true, multi: true, allValue: '.*', current: { text: 'All', value: '$__all' }, refresh: 2,
    }],
  },
  panels,
};

const out = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), 'dashboards', 'swapserve.json');
writeFileSync(out, JSON.stringify(dashboard, null, 2) + '\n');
console.log(`wrote ${out} (${panels.length} panels)`);
