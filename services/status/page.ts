// The status page: one self-contained HTML document (no build, no external assets) that polls
// /status/api/state and redraws workers, each model's tier per worker, queues and recent TTFT by path.

/** @param refreshMs how often the page polls the state (ms) */
export function statusPage(refreshMs: number): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>swapserve status</title>
<style>
  :root { --bg:#0f1216; --panel:#171b21; --line:#2a3038; --text:#e6e9ee; --dim:#8b95a3;
          --gpu:#3fb950; --host:#d29922; --disk:#6e7681; --move:#58a6ff; --bad:#f85149; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; align-items:baseline; gap:16px; padding:14px 24px; border-bottom:1px solid var(--line); }
  header h1 { font-size:18px; margin:0; }
  header .dim, .dim { color:var(--dim); }
  header a { color:var(--move); margin-left:auto; }
  main { display:grid; grid-template-columns: 1fr 1fr; gap:16px; padding:16px 24px; }
  section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px 14px; overflow:auto; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--dim); margin:0 0 10px; }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { color:var(--dim); font-weight:500; }
  td.num { text-align:right; font-variant-numeric: tabular-nums; }
  .tier { display:inline-block; min-width:86px; text-align:center; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#0d1117; }
  .tier.gpu { background:var(--gpu); } .tier.host { background:var(--host); } .tier.disk { background:var(--disk); }
  .tier.loading, .tier.swapping-in, .tier.evicting { background:var(--move); }
  .path { font-weight:600; } .path.warm { color:var(--gpu); } .path.swap { color:var(--host); } .path.cold { color:var(--move); }
  .bar { position:relative; width:140px; height:8px; background:#0b0e12; border-radius:4px; display:inline-block; vertical-align:middle; margin-right:6px; }
  .bar > i { position:absolute; left:0; top:0; bottom:0; border-radius:4px; background:var(--gpu); }
  .bar.host > i { background:var(--host); }
  .state-ready { color:var(--gpu); } .state-draining { color:var(--host); } .state-unhealthy { color:var(--bad); }
  #problems { color:var(--bad); } .empty { color:var(--dim); font-style:italic; }
</style>
</head>
<body>
<header>
  <h1>swapserve</h1>
  <span class="dim" id="summary">loading…</span>
  <span class="dim" id="updated"></span>
  <a href="queues">BullMQ queues →</a>
</header>
<main>
  <section class="wide"><h2>Models by tier, per worker</h2><table id="tiers"></table></section>
  <section class="wide"><h2>Workers</h2><table id="workers"></table></section>
  <section><h2>Queues</h2><table id="queues"></table></section>
  <section><h2>Time to first token by path (recent)</h2><table id="ttft"></table></section>
  <section class="wide"><h2>Recent requests</h2><table id="recent"></table><div id="problems"></div></section>
</main>
<script>
const REFRESH_MS = ${Math.max(100, Math.floor(refreshMs))};
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&':'&amp;', '<':'&lt;', '>':'&gt;', '"':'&quot;', "'":'&#39;' }[c]));
const bytes = (n) => n >= 1e9 ? (n / 1e9).toFixed(2) + ' GB' : n >= 1e6 ? (n / 1e6).toFixed(1) + ' MB' : n >= 1e3 ? (n / 1e3).toFixed(0) + ' kB' : n + ' B';
const ms = (v) => v == null ? '–' : v >= 1000 ? (v / 1000).toFixed(2) + ' s' : v.toFixed(v < 10 ? 2 : 0) + ' ms';
const bar = (used, budget, kind) => '<span class="bar ' + kind + '"><i style="width:' + (budget ? Math.min(100, 100 * used / budget) : 0).toFixed(1) + '%"></i></span>' + bytes(used) + ' / ' + bytes(budget);
const row = (cells, attrs = '') => '<tr' + attrs + '>' + cells.join('') + '</tr>';
const th = (...names) => row(names.map((n) => '<th>' + n + '</th>'));

function render(s) {
  const ready = s.workers.filter((w) => w.state === 'ready').length;
  document.getElementById('summary').textContent = s.models.length + ' models · ' + s.workers.length + ' workers (' + ready + ' ready)';
  document.getElementById('updated').textContent = 'updated ' + new Date(s.atMs).toLocaleTimeString();

  const tiers = document.getElementById('tiers');
  if (s.workers.length === 0) tiers.innerHTML = '<tr><td class="empty">no worker is running</td></tr>';
  else tiers.innerHTML = th('model', ...s.workers.map((w) => esc(w.workerId) + '<br><span class="dim">' + esc(w.device) + '</span>')) +
    s.models.map((m) => row(['<td>' + esc(m) + '</td>', ...s.workers.map((w) => {
      const x = w.models[m];
      if (!x) return '<td class="dim">not served</td>';
      return '<td data-model="' + esc(m) + '" data-worker="' + esc(w.workerId) + '" data-residency="' + x.residency + '">' +
        '<span class="tier ' + x.residency + '">' + x.residency + '</span>' + (x.activeJobs ? ' <span class="dim">' + x.activeJobs + ' running</span>' : '') + '</td>';
    })], ' data-model-row="' + esc(m) + '"')).join('');

  const workers = document.getElementById('workers');
  workers.innerHTML = s.workers.length === 0 ? '<tr><td class="empty">no worker is running</td></tr>' :
    th('worker', 'device', 'backend', 'state', 'GPU tier', 'host tier', 'heartbeat') + s.workers.map((w) => row([
      '<td>' + esc(w.workerId) + '<br><span class="dim">' + esc(w.host) + '</span></td>', '<td>' + esc(w.device) + '</td>', '<td>' + w.backend + '</td>',
      '<td class="state-' + w.state + '">' + w.state + '</td>', '<td>' + bar(w.usage.gpu, w.budgets.gpu, 'gpu') + '</td>',
      '<td>' + bar(w.usage.host, w.budgets.host, 'host') + '</td>', '<td class="num">' + ms(w.heartbeatAgeMs) + ' ago</td>',
    ], ' data-worker-row="' + esc(w.workerId) + '"')).join('');

  document.getElementById('queues').innerHTML = th('model', 'waiting', 'active', 'delayed', 'failed', 'oldest wait') + s.queues.map((q) => row([
    '<td>' + esc(q.model) + '</td>', '<td class="num" data-queue-waiting="' + esc(q.model) + '">' + q.waiting + '</td>', '<td class="num">' + q.active + '</td>',
    '<td class="num">' + q.delayed + '</td>', '<td class="num">' + q.failed + '</td>', '<td class="num">' + (q.waiting ? ms(q.oldestWaitMs) : '–') + '</td>',
  ])).join('');

  document.getElementById('ttft').innerHTML = th('path', 'requests', 'p50', 'p95', 'last') + s.ttft.map((p) => row([
    '<td class="path ' + p.path + '">' + p.path + '</td>', '<td class="num" data-ttft-count="' + p.path + '">' + p.count + '</td>',
    '<td class="num">' + ms(p.p50Ms) + '</td>', '<td class="num">' + ms(p.p95Ms) + '</td>', '<td class="num">' + ms(p.lastMs) + '</td>',
  ])).join('');

  document.getElementById('recent').innerHTML = s.recent.length === 0 ? '<tr><td class="empty">no request yet</td></tr>' :
    th('model', 'path', 'time to first token', 'when') + s.recent.slice(0, 12).map((r) => row([
      '<td>' + esc(r.model) + '</td>', '<td class="path ' + r.path + '">' + r.path + (r.coldReason ? ' <span class="dim">(' + r.coldReason.replace('_', ' ') + ')</span>' : '') + '</td>',
      '<td class="num">' + ms(r.ttftMs) + '</td>', '<td class="num">' + ms(r.ageMs) + ' ago</td>',
    ])).join('');
  document.getElementById('problems').textContent = s.problems.join(' · ');
}

async function tick() {
  try {
    const res = await fetch('status/api/state', { cache: 'no-store' });
    if (res.ok) render(await res.json());
    else document.getElementById('summary').textContent = 'state unavailable (HTTP ' + res.status + ')';
  } catch (e) {
    document.getElementById('summary').textContent = 'gateway unreachable';
  }
  setTimeout(tick, REFRESH_MS);
}
tick();
</script>
</body>
</html>
`;
}
