#!/usr/bin/env node
// Writes infra/grafana/dashboards/swapserve.json from the panel list below (run after editing; the JSON is
// committed so Grafana provisioning needs no build). Queue and worker gauges are cluster-wide values that every
// gateway reports, so they are combined with max, never sum. Metric names are the Prometheus forms of
// contracts/semconv.ts; test/telemetry/dashboards.test.ts evaluates every query against a real Prometheus.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROM = { type: 'prometheus', uid: 'prometheus' };
const TEMPO = { type: 'tempo', uid: 'tempo' };
const M = 'gen_ai_request_model=~"$model"';
const R = '$__rate_interval';

let nextId = 1;
const grid = { x: 0, y: 0 };
/** Lays panels out left to right, two per row (12 columns each). */
function place(w = 12, h = 8) {
  if (grid.x + w > 24) { grid.x = 0; grid.y += h; }
  const pos = { x: grid.x, y: grid.y, w, h };
  grid.x += w;
  return pos;
}
function row(title) {
  grid.x = 0; grid.y += 8;
  const p = { type: 'row', title, id: nextId++, collapsed: false, gridPos: { x: 0, y: grid.y, w: 24, h: 1 }, panels: [] };
  grid.y += 1;
  return p;
}
function timeseries(title, unit, targets, extra = {}) {
  return {
    type: 'timeseries', title, id: nextId++, datasource: PROM, gridPos: place(extra.w ?? 12),
    fieldConfig: { defaults: { unit, custom: { lineWidth: 1, fillOpacity: extra.fill ?? 0, stacking: { mode: extra.stack ? 'normal' : 'none' } } }, overrides: extra.overrides ?? [] },
    options: { legend: { displayMode: 'table', placement: 'bottom', calcs: ['lastNotNull', 'max'] }, tooltip: { mode: 'multi' } },
    targets: targets.map(([expr, legendFormat], i) => ({ datasource: PROM, refId: String.fromCharCode(65 + i), expr, legendFormat, exemplar: true, range: true })),
  };
}
function traceTable(title, query) {
  return {
    type: 'table', title, id: nextId++, datasource: TEMPO, gridPos: place(12, 10),
    options: { showHeader: true, sortBy: [{ displayName: 'Duration', desc: true }] },
    targets: [{ datasource: TEMPO, refId: 'A', queryType: 'traceql', query, limit: 20, tableType: 'traces' }],
  };
}

const q = (p, path = '') =>
  `histogram_quantile(${p}, sum by (le, swapserve_path) (rate(gen_ai_server_time_to_first_token_bucket{${M}${path}}[${R}])))`;

const panels = [
  row('Time to first token'),
  timeseries('TTFT p50 / p95 / p99 by path', 's', [
    [q(0.5), 'p50 {{swapserve_path}}'],
    [q(0.95), 'p95 {{swapserve_path}}'],
    [q(0.99), 'p99 {{swapserve_path}}'],
  ]),
  timeseries('TTFT p95 by model and path', 's', [
    [`histogram_quantile(0.95, sum by (le, gen_ai_request_model, swapserve_path) (rate(gen_ai_server_time_to_first_token_bucket{${M}}[${R}])))`, '{{gen_ai_request_model}} {{swapserve_path}}'],
  ]),
  timeseries('Requests per second by path', 'reqps', [
    [`sum by (swapserve_path) (rate(gen_ai_server_request_duration_count{${M}}[${R}]))`, '{{swapserve_path}}'],
  ], { stack: true, fill: 30 }),
  timeseries('Time per output token p50 / p95 by path', 's', [
    [`histogram_quantile(0.5, sum by (le, swapserve_path) (rate(gen_ai_server_time_per_output_token_bucket{${M}}[${R}])))`, 'p50 {{swapserve_path}}'],
    [`histogram_quantile(0.95, sum by (le, swapserve_path) (rate(gen_ai_server_time_per_output_token_bucket{${M}}[${R}])))`, 'p95 {{swapserve_path}}'],
  ]),
  timeseries('Request duration p95 by path', 's', [
    [`histogram_quantile(0.95, sum by (le, swapserve_path) (rate(gen_ai_server_request_duration_bucket{${M}}[${R}])))`, 'p95 {{swapserve_path}}'],
  ]),
  timeseries('Failed requests per second by error', 'reqps', [
    [`sum by (error_type) (rate(swapserve_request_errors_total{${M}}[${R}]))`, '{{error_type}}'],
  ]),
  timeseries('Share of requests by path', 'percentunit', [
    [`sum by (swapserve_path) (rate(gen_ai_server_request_duration_count{${M}}[${R}])) / scalar(sum(rate(gen_ai_server_request_duration_count{${M}}[${R}])))`, '{{swapserve_path}}'],
  ], { stack: true, fill: 50 }),
  row('Tiers and moves'),
  timeseries('Swap-in bandwidth against the link peak', 'GBs', [
    ['histogram_quantile(0.5, sum by (le) (rate(swapserve_move_bandwidth_bucket{swapserve_move_kind="swap_in"}[' + R + '])))', 'swap-in p50'],
    ['histogram_quantile(0.05, sum by (le) (rate(swapserve_move_bandwidth_bucket{swapserve_move_kind="swap_in"}[' + R + '])))', 'swap-in p5 (slowest)'],
    ['max(swapserve_link_peak_bandwidth)', 'link peak'],
  ], { overrides: [{ matcher: { id: 'byName', options: 'link peak' }, properties: [{ id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } }, { id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }] }] }),
  timeseries('Tier occupancy', 'bytes', [
    ['sum by (swapserve_tier) (swapserve_residency_bytes)', '{{swapserve_tier}}'],
  ], { stack: false, fill: 10 }),
  timeseries('Models resident per tier', 'bytes', [
    [`sum by (gen_ai_request_model, swapserve_tier) (swapserve_residency_bytes{${M}})`, '{{gen_ai_request_model}} @ {{swapserve_tier}}'],
  ], { stack: true, fill: 40 }),
  timeseries('Bytes moved per second by kind', 'Bps', [
    ['sum by (swapserve_move_kind) (rate(swapserve_move_bytes_total[' + R + ']))', '{{swapserve_move_kind}}'],
  ]),
  timeseries('Move duration p95 by kind', 's', [
    ['histogram_quantile(0.95, sum by (le, swapserve_move_kind) (rate(swapserve_move_duration_bucket[' + R + '])))', '{{swapserve_move_kind}}'],
  ]),
  timeseries('Evictions', 'short', [
    [`sum by (gen_ai_request_model, swapserve_tier) (increase(swapserve_evictions_total{${M}}[${R}]))`, '{{gen_ai_request_model}} from {{swapserve_tier}}'],
  ]),
  row('Queues and workers'),
  timeseries('Queue depth (waiting) by model', 'short', [
    [`max by (gen_ai_request_model) (swapserve_queue_depth{${M}, swapserve_queue_state="waiting"})`, '{{gen_ai_request_model}}'],
  ]),
  timeseries('Oldest waiting request by model', 's', [
    [`max by (gen_ai_request_model) (swapserve_queue_oldest_wait{${M}})`, '{{gen_ai_request_model}}'],
  ]),
  timeseries('Jobs being served by model', 'short', [
    [`max by (gen_ai_request_model) (swapserve_queue_depth{${M}, swapserve_queue_state="active"})`, '{{gen_ai_request_model}}'],
  ]),
  timeseries('Workers by state', 'short', [
    ['max by (swapserve_worker_state) (swapserve_workers)', '{{swapserve_worker_state}}'],
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
      query: { query: 'label_values(gen_ai_server_request_duration_count, gen_ai_request_model)', refId: 'model' },
      definition: 'label_values(gen_ai_server_request_duration_count, gen_ai_request_model)',
      includeAll: true, multi: true, allValue: '.*', current: { text: 'All', value: '$__all' }, refresh: 2,
    }],
  },
  panels,
};

const out = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), 'dashboards', 'swapserve.json');
writeFileSync(out, JSON.stringify(dashboard, null, 2) + '\n');
console.log(`wrote ${out} (${panels.length} panels)`);
