// A plain float64 Llama-family forward pass written from the textbook formulas (tests only): the oracle the CPU
// engine's logits are checked against for every family, dtype and format. Slow, obviously correct, no KV cache.
import { decodeTensor } from '../../native/ts/model/quant.ts';
import type { ModelSource } from '../../native/ts/types.ts';

/** Logits (V) after each of `tokens`, positions 0..n-1. */
export function referenceLogits(source: ModelSource, arena: Uint8Array, tokens: number[]): Float64Array[] {
  const c = source.config;
  const C = c.hiddenSize, H = c.numHeads, KVH = c.numKvHeads, D = c.headDim, F = c.intermediateSize, V = c.vocabSize;
  const byName = new Map(source.layout.tensors.map((t) => [t.name, t]));
  const w = (name: string): Float32Array => {
    const t = byName.get(name);
    if (!t) throw new Error(`no tensor ${name}`);
    return decodeTensor(arena.subarray(t.offset, t.offset + t.bytes), t.dtype);
  };
  const matvec = (m: Float32Array, x: Float64Array, rows: number, cols: number, bias?: Float32Array) => {
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let s = bias ? bias[r] : 0;
      for (let i = 0; i < cols; i++) s += m[r * cols + i] * x[i];
      y[r] = s;
    }
    return y;
  };
  const rms = (x: Float64Array, g: Float32Array) => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const s = 1 / Math.sqrt(ss / x.length + c.rmsNormEps);
    return x.map((v, i) => v * s * g[i]);
  };
  // RoPE frequencies, with Hugging Face's linear / llama3 scaling.
  const inv = Array.from({ length: D / 2 }, (_, i) => {
    let f = 1 / c.ropeTheta ** ((2 * i) / D);
    const rs = c.ropeScaling;
    if (rs?.kind === 'linear') f /= rs.factor;
    if (rs?.kind === 'llama3') {
      const wl = (2 * Math.PI) / f;
      const lowWl = rs.originalMaxPositions / rs.lowFreqFactor, highWl = rs.originalMaxPositions / rs.highFreqFactor;
      if (wl > lowWl) f /= rs.factor;
      else if (wl >= highWl) {
        const sm = (rs.originalMaxPositions / wl - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
        f = (1 - sm) * (f / rs.factor) + sm * f;
      }
    }
    return f;
  });
  const rope = (v: Float64Array, heads: number, pos: number) => {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < D / 2; i++) {
        const [a, b] = c.ropeStyle === 'interleaved' ? [h * D + 2 * i, h * D + 2 * i + 1] : [h * D + i, h * D + i + D / 2];
        const ang = pos * inv[i];
        const x0 = v[a], x1 = v[b];
        v[a] = x0 * Math.cos(ang) - x1 * Math.sin(ang);
        v[b] = x0 * Math.sin(ang) + x1 * Math.cos(ang);
      }
    }
  };
  const emb = w('tok_embeddings');
  const out = c.tieWordEmbeddings ? emb : w('output');
  const layers = Array.from({ length: c.numLayers }, (_, l) => {
    const p = `layers.${l}.`;
    return {
      an: w(p + 'attn_norm'), wq: w(p + 'wq'), wk: w(p + 'wk'), wv: w(p + 'wv'), wo: w(p + 'wo'), fn: w(p + 'ffn_norm'),
      w1: w(p + 'w1'), w2: w(p + 'w2'), w3: w(p + 'w3'),
      bq: c.attentionBias ? w(p + 'bq') : undefined, bk: c.attentionBias ? w(p + 'bk') : undefined, bv: c.attentionBias ? w(p + 'bv') : undefined,
      keys: [] as Float64Array[], values: [] as Float64Array[],
    };
  });
  const norm = w('norm');
  const result: Float64Array[] = [];
  tokens.forEach((tok, pos) => {
    let x = Float64Array.from(emb.subarray(tok * C, (tok + 1) * C));
    for (const L of layers) {
      const xn = rms(x, L.an);
      const q = matvec(L.wq, xn, H * D, C, L.bq), k = matvec(L.wk, xn, KVH * D, C, L.bk), v = matvec(L.wv, xn, KVH * D, C, L.bv);
      rope(q, H, pos);
      rope(k, KVH, pos);
      L.keys.push(k);
      L.values.push(v);
      const att = new Float64Array(H * D);
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KVH));
        const s = L.keys.map((kk) => {
          let d = 0;
          for (let i = 0; i < D; i++) d += q[h * D + i] * kk[g * D + i];
          return d / Math.sqrt(D);
        });
        const m = Math.max(...s);
        const e = s.map((z) => Math.exp(z - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j < e.length; j++) for (let i = 0; i < D; i++) att[h * D + i] += (e[j] / z) * L.values[j][g * D + i];
      }
      const o = matvec(L.wo, att, C, H * D);
      x = x.map((val, i) => val + o[i]);
      const xn2 = rms(x, L.fn);
      const gate = matvec(L.w1, xn2, F, C), up = matvec(L.w3, xn2, F, C);
      const hdn = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
      const d = matvec(L.w2, hdn, C, F);
      x = x.map((val, i) => val + d[i]);
    }
    result.push(matvec(out, rms(x, norm), V, C));
  });
  return result;
}
