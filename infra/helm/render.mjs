#!/usr/bin/env node
// Renders the swapserve Helm chart without the helm binary (not packaged for Debian): the chart's templates keep to
// a subset of Helm's template language that this file implements, so `helm template` and this give the same output.
// Subset: {{ .Values.a.b }}, {{ .Release.Name }}, {{ .Release.Namespace }}, {{ .Chart.Name }}, {{ .Chart.Version }},
// {{ .Chart.AppVersion }}; pipes `| quote`, `| toYaml`, `| nindent N`, `| indent N`, `| b64enc`; `{{ toYaml X }}`;
// {{ if X }} / {{ else }} / {{ end }} (nestable; X a value path or `not X`); `{{-` and `-}}` trim whitespace.
// usage: node infra/helm/render.mjs [-f values.yaml ...] [--name RELEASE] [--namespace NS] > manifests.yaml
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, parseAllDocuments, stringify } from 'yaml';

const CHART = new URL('./swapserve/', import.meta.url).pathname;

function merge(a, b) {
  if (b === undefined) return a;
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = merge(a[k], v);
    return out;
  }
  return b;
}

function lookup(scope, path, where) {
  if (!path.startsWith('.')) throw new Error(`${where}: expected a value path like .Values.x, received "${path}"`);
  let v = scope;
  for (const part of path.slice(1).split('.')) v = v == null ? undefined : v[part];
  return v;
}

const truthy = (v) => !(v === undefined || v === null || v === false || v === 0 || v === '' || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0));
const toYaml = (v) => (v === undefined || v === null ? '' : stringify(v).replace(/\n$/, ''));
const indent = (n, s) => s.split('\n').map((l) => ' '.repeat(n) + l).join('\n');

function evaluate(expr, scope, where) {
  const stages = expr.split('|').map((s) => s.trim());
  const [head, ...rest] = stages;
  let v;
  const words = head.split(/\s+/);
  if (words[0] === 'toYaml') v = toYaml(lookup(scope, words[1], where));
  else if (/^".*"$/.test(head)) v = head.slice(1, -1);
  else v = lookup(scope, head, where);
  for (const stage of rest) {
    const [fn, arg] = stage.split(/\s+/);
    if (fn === 'quote') v = JSON.stringify(v === undefined || v === null ? '' : String(v));
    else if (fn === 'toYaml') v = toYaml(v);
    else if (fn === 'nindent') v = '\n' + indent(Number(arg), String(v ?? ''));
    else if (fn === 'indent') v = indent(Number(arg), String(v ?? ''));
    else if (fn === 'b64enc') v = Buffer.from(String(v ?? '')).toString('base64');
    else throw new Error(`${where}: "${fn}" is outside the template subset this renderer implements`);
  }
  if (v !== null && typeof v === 'object') throw new Error(`${where}: "${expr}" is an object; pipe it through toYaml`);
  return v === undefined || v === null ? '' : String(v);
}

/** Renders one template's text against `scope` ({ Values, Release, Chart }). */
export function renderTemplate(text, scope, where = 'template') {
  let out = '';
  let trimNext = false;
  const stack = []; // per open `if`: { parentOn, on, taken }
  const on = () => stack.every((f) => f.on);
  const re = /\{\{(-?)\s*(.*?)\s*(-?)\}\}/gs;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    let chunk = text.slice(last, m.index);
    if (trimNext) chunk = chunk.replace(/^\s+/, '');
    if (on()) out += chunk;
    if (m[1] === '-') out = out.replace(/\s+$/, '');
    const [, , body, trimAfter] = m;
    const line = text.slice(0, m.index).split('\n').length;
    const at = `${where}:${line}`;
    if (body.startsWith('/*')) { /* comment */ }
    else if (body.startsWith('if ')) {
      const cond = body.slice(3).trim();
      const neg = cond.startsWith('not ');
      const value = truthy(lookup(scope, neg ? cond.slice(4).trim() : cond, at));
      stack.push({ on: neg ? !value : value });
    } else if (body === 'else') {
      if (!stack.length) throw new Error(`${at}: else without if`);
      stack[stack.length - 1].on = !stack[stack.length - 1].on;
    } else if (body === 'end') {
      if (!stack.pop()) throw new Error(`${at}: end without if`);
    } else if (on()) out += evaluate(body, scope, at);
    trimNext = trimAfter === '-';
    last = re.lastIndex;
  }
  if (stack.length) throw new Error(`${where}: ${stack.length} unclosed if`);
  let tail = text.slice(last);
  if (trimNext) tail = tail.replace(/^\s+/, '');
  return out + tail;
}

/** Every manifest the chart renders (parsed objects), with values = chart defaults merged with `overrides`. */
export function renderChart(overrides = {}, release = { Name: 'swapserve', Namespace: 'default' }) {
  const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
  const values = merge(parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')), overrides);
  const scope = { Values: values, Release: release, Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion } };
  const docs = [];
  for (const f of readdirSync(join(CHART, 'templates')).filter((n) => n.endsWith('.yaml')).sort()) {
    const text = renderTemplate(readFileSync(join(CHART, 'templates', f), 'utf8'), scope, `templates/${f}`);
    for (const d of parseAllDocuments(text)) {
      if (d.errors.length) throw new Error(`templates/${f}: rendered YAML does not parse: ${d.errors[0].message}`);
      const obj = d.toJS();
      if (obj) docs.push(obj);
    }
  }
  return docs;
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const { values } = parseArgs({ options: { f: { type: 'string', multiple: true }, name: { type: 'string' }, namespace: { type: 'string' } } });
  const overrides = (values.f ?? []).reduce((acc, file) => merge(acc, parse(readFileSync(file, 'utf8'))), {});
  const docs = renderChart(overrides, { Name: values.name ?? 'swapserve', Namespace: values.namespace ?? 'default' });
  process.stdout.write(docs.map((d) => '---\n' + stringify(d)).join(''));
}
