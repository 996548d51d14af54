// Line charts as standalone SVG (no plotting dependency): axes with ticks, one polyline per series, a legend.

export interface Series { name: string; points: [number, number][]; step?: boolean }

export interface ChartOptions {
  title: string; xLabel: string; yLabel: string;
  /** Log-scale x axis (values must be > 0). */
  logX?: boolean;
  yMax?: number;
  width?: number; height?: number;
}

const COLORS = ['#555555', '#d1495b', '#edae49', '#1a9850', '#6a4c93', '#1b6ca8'];
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number): string => (Math.abs(v) >= 1000 ? `${+(v / 1000).toPrecision(3)}k` : `${+v.toPrecision(3)}`);

function ticks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
    return out.filter((t) => t >= lo / 1.0001 && t <= hi * 1.0001);
  }
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / 5));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => span / s <= 8) ?? step * 10;
  const out: number[] = [];
  for (let t = Math.ceil(lo / nice) * nice; t <= hi + 1e-9; t += nice) out.push(+t.toPrecision(12));
  return out;
}

export function lineChart(series: Series[], o: ChartOptions): string {
  const W = o.width ?? 820, H = o.height ?? 420, L = 64, R = 250, T = 36, B = 48;
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]).filter((x) => !o.logX || x > 0);
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (o.logX) [x0, x1] = [10 ** Math.floor(Math.log10(x0)), 10 ** Math.ceil(Math.log10(x1))];
  if (x1 === x0) x1 = x0 + 1;
  const y1 = o.yMax ?? Math.max(1, ...all.map((p) => p[1])) * 1.05;
  const px = (x: number): number => L + ((o.logX ? Math.log10(x) - Math.log10(x0) : x - x0) / (o.logX ? Math.log10(x1) - Math.log10(x0) : x1 - x0)) * (W - L - R);
  const py = (y: number): number => H - B - (y / y1) * (H - T - B);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="20" font-size="14" font-weight="bold">${esc(o.title)}</text>`,
  ];
  for (const t of ticks(x0, x1, !!o.logX)) {
    parts.push(`<line x1="${px(t).toFixed(1)}" y1="${T}" x2="${px(t).toFixed(1)}" y2="${H - B}" stroke="#eee"/>`,
      `<text x="${px(t).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of ticks(0, y1, false)) {
    parts.push(`<line x1="${L}" y1="${py(t).toFixed(1)}" x2="${W - R}" y2="${py(t).toFixed(1)}" stroke="#eee"/>`,
      `<text x="${L - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end">${fmt(t)}</text>`);
  }
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#444"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const pts: string[] = [];
    let prev: [number, number] | null = null;
    for (const p of s.points) {
      if (o.logX && p[0] <= 0) continue;
      if (s.step && prev) pts.push(`${px(p[0]).toFixed(1)},${py(prev[1]).toFixed(1)}`);
      pts.push(`${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`);
      prev = p;
    }
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="${i === series.length - 1 ? 2.4 : 1.6}" points="${pts.join(' ')}"/>`,
      `<line x1="${W - R + 12}" y1="${T + 10 + i * 20}" x2="${W - R + 32}" y2="${T + 10 + i * 20}" stroke="${c}" stroke-width="3"/>`,
      `<text x="${W - R + 38}" y="${T + 14 + i * 20}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
