// The QuIP# core through the addon on real stories260k weights. Hessians are the exact layer-0
// inputs of single tokens (RMSNorm of every vocabulary embedding times the layer's norm weight; for
// down_proj, silu(gate x) * (up x) of those), averaged over the vocabulary.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../native.js';
import { dequantizeLinear, quantizeLinear, WaterFilling, type QuantizeLinearResult } from './index.js';

const MODEL = path.join(__dirname, '../../../../shared/data/models/stories260k/model.safetensors');

// Minimal safetensors header parse (the real loader lives in app/engine/model/).
function readTensors(file: string): Map<string, { offset: number; shape: number[]; data: Float32Array }> {
  const buf = readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { offset: number; shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || t.dtype !== 'F32') continue;
    const start = 8 + headerLen + t.data_offsets[0];
    const bytes = buf.subarray(start, 8 + headerLen + t.data_offsets[1]);
    out.set(name, { offset: start, shape: t.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) });
  }
  return out;
}

function rmsNormRows(X: Float32Array, rows: number, d: number, w: Float32Array): Float32Array {
  const out = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += X[r * d + i] ** 2;
    const inv = 1 / Math.sqrt(ss / d + 1e-5);
    for (let i = 0; i < d; i++) out[r * d + i] = X[r * d + i] * inv * w[i];
  }
  return out;
}

function matmulT(X: Float32Array, rows: number, k: number, W: Float32Array, m: number): Float32Array {
  const out = new Float32Array(rows * m); // X (rows x k) times W^T (W: m x k)
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += X[r * k + i] * W[j * k + i];
      out[r * m + j] = s;
    }
  return out;
}

function popcount(x: number): number {
  let c = 0;
  for (; x; x &= x - 1) c++;
  return c;
}

function secondMoment(X: Float32Array, rows: number, n: number): Float64Array {
  const H = new Float64Array(n * n);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < n; i++) {
      const xi = X[r * n + i];
      for (let j = 0; j < n; j++) H[i * n + j] += xi * X[r * n + j];
    }
  for (let i = 0; i < n * n; i++) H[i] /= rows;
  return H;
}

describe('QuIP# core on stories260k', () => {
  const t = readTensors(MODEL);
  const emb = t.get('model.embed_tokens.weight')!;
  const [vocab, d] = emb.shape;
  const xAttn = rmsNormRows(emb.data, vocab, d, t.get('model.layers.0.input_layernorm.weight')!.data);
  const hAttn = secondMoment(xAttn, vocab, d);
  const q = t.get('model.layers.0.self_attn.q_proj.weight')!;

  it('plans the model dimensions', () => {
    expect(native().hadamardPlan(64)).toEqual({ n: 64, k: 1, pow2: 64, method: 'sylvester', construction: null });
    const p172 = native().hadamardPlan(172);
    expect(p172).toEqual({ n: 172, k: 172, pow2: 1, method: 'hadamard', construction: 'Williamson (t = 43)' });
    expect(native().hadamardPlan(11008)).toMatchObject({ k: 172, pow2: 64, method: 'hadamard' });
    expect(native().hadamardPlan(5632)).toMatchObject({ k: 44, pow2: 128, method: 'hadamard', construction: 'Paley I (q = 43)' });
  });

  it('orders proxy losses: ldlq < nearest, rvq4 < rvq3 < e8p (q_proj, via a mapped TensorRef)', async () => {
    const file = native().mapFile(MODEL);
    const W = { file, offset: q.offset, dtype: 'F32' as const, shape: q.shape };
    const run = (codebook: 'e8p' | 'rvq3' | 'rvq4' | 'rtn2', ldlq = true) =>
      quantizeLinear(W, hAttn, { m: q.shape[0], n: q.shape[1], codebook, ldlq, seed: 3 });
    const events: unknown[] = [];
    const e8p = await quantizeLinear(W, hAttn, { m: 64, n: 64, codebook: 'e8p', seed: 3 }, { onProgress: (p) => events.push(p) });
    const nearest = await run('e8p', false);
    const rvq3 = await run('rvq3');
    const rvq4 = await run('rvq4');
    const rtn2 = await run('rtn2');
    expect(events.length).toBeGreaterThan(0);
    expect(e8p.proxyLoss).toBeLessThan(nearest.proxyLoss);
    expect(rvq4.proxyLoss).toBeLessThan(rvq3.proxyLoss);
    expect(rvq3.proxyLoss).toBeLessThan(e8p.proxyLoss);
    expect(rtn2.proxyLoss).toBeGreaterThan(0);
    expect(e8p.codes[0]).toBeInstanceOf(Uint16Array);
    expect(e8p.codes[0].length).toBe(64 * 8);
    expect(rvq3.codes[1]).toBeInstanceOf(Uint8Array);
    expect(e8p.choleskyFallback).toBeNull();
    // Proxy loss recomputed here in float64 with the damped, normalised H.
    const n = 64;
    const Hd = Float64Array.from(hAttn);
    let mean = 0;
    for (let i = 0; i < n; i++) mean += Hd[i * n + i] / n;
    for (let i = 0; i < n * n; i++) Hd[i] /= mean;
    for (let i = 0; i < n; i++) Hd[i * n + i] += 0.01;
    const tr = (A: ArrayLike<number>) => {
      let s = 0;
      for (let r = 0; r < 64; r++)
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s += A[r * n + i] * Hd[i * n + j] * A[r * n + j];
      return s;
    };
    const E = e8p.dequantized.map((v, i) => v - q.data[i]);
    expect(tr(E) / tr(q.data)).toBeCloseTo(e8p.proxyLoss, 3);
    file.close();
  });

  it('quantizes down_proj (n = 172, padded to 176) and dequantizeLinear reproduces W^', async () => {
    const xMlp = rmsNormRows(emb.data, vocab, d, t.get('model.layers.0.post_attention_layernorm.weight')!.data);
    const gate = matmulT(xMlp, vocab, d, t.get('model.layers.0.mlp.gate_proj.weight')!.data, 172);
    const up = matmulT(xMlp, vocab, d, t.get('model.layers.0.mlp.up_proj.weight')!.data, 172);
    const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
    const H = secondMoment(act, vocab, 172);
    const down = t.get('model.layers.0.mlp.down_proj.weight')!;
    const results: QuantizeLinearResult[] = [];
    for (const codebook of ['e8p', 'rvq3', 'rvq4', 'rtn3'] as const) {
      const r = await quantizeLinear(down.data, H, { m: 64, n: 172, codebook, seed: 9, tuneIters: codebook === 'e8p' ? 1 : 0 });
      expect(r.nPadded).toBe(176);
      expect(r.su.length).toBe(172);
      expect(r.sv.length).toBe(64);
      expect(Array.from(dequantizeLinear(r))).toEqual(Array.from(r.dequantized));
      results.push(r);
    }
    expect(results[2].proxyLoss).toBeLessThan(results[1].proxyLoss);
    expect(results[1].proxyLoss).toBeLessThan(results[0].proxyLoss);
  });

  it("measures any W^ with quantizeLinear's proxy loss and bounds every codebook by the Gaussian rate-distortion floor", async () => {
    // proxyLoss on a quantizer's own W^ agrees with the loss it reported (without row scales that
    // one comes from the LDL form, an independent computation).
    const r = await quantizeLinear(q.data, hAttn, { m: 64, n: 64, codebook: 'rvq3', seed: 5, rowScale: false });
    expect(await native().proxyLoss(q.data, r.dequantized, hAttn, { m: 64, n: 64 })).toBeCloseTo(r.proxyLoss, 6);
    expect(await native().proxyLoss(q.data, q.data, hAttn, { m: 64, n: 64 })).toBe(0);

    // A layer as a Gaussian source, on a dense H with known eigenvalues: H = Q diag(lambda) Q^T with
    // Q the orthonormal Sylvester-Hadamard matrix of 64.
    const n = 64, m = 32, sigma = 0.05;
    let seed = 11;
    const uniform = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) + 0.5) / 2 ** 31;
    const gauss = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
    const lambda = Array.from({ length: n }, (_, i) => Math.exp(-i / 10));
    const Q = (i: number, j: number) => ((-1) ** popcount(i & j)) / 8;
    const H = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) H[i * n + j] += Q(i, k) * lambda[k] * Q(j, k);
    const W = new Float32Array(m * n).map((_, i) => gauss() * (1 + Math.floor(i / n) / 8));
    const mean = lambda.reduce((a, x) => a + x, 0) / n;
    const damped = lambda.map((x) => x / mean + sigma);
    const rowVar = Array.from({ length: m }, (_, r) => W.subarray(r * n, r * n + n).reduce((a, x) => a + x * x, 0) / n);
    let signal = 0; // tr(W H W^T) with the damped H, in H's eigenbasis
    for (let r = 0; r < m; r++)
      for (let k = 0; k < n; k++) {
        let proj = 0;
        for (let i = 0; i < n; i++) proj += W[r * n + i] * Q(i, k);
        signal += damped[k] * proj * proj;
      }
    const src = await native().gaussianSource(W, H, { m, n, sigma });
    const sorted = [...damped].sort((a, b) => a - b);
    src.eigenvalues.forEach((e, i) => expect(e / sorted[i]).toBeCloseTo(1, 9));
    src.rowVariances.forEach((v, r) => expect(v / rowVar[r]).toBeCloseTo(1, 6));
    expect(src.signal / signal).toBeCloseTo(1, 5);

    // Reverse water-filling: at 3 bits every component is coded, so the floor is the closed form
    // m n 2^-2b GM(row variances) GM(eigenvalues) / signal; at 0.25 bits the weakest components are
    // left uncoded and the floor rises above that (relaxed) form. Ideal bits invert the floor.
    const gm = (xs: number[]) => 2 ** (xs.reduce((a, x) => a + Math.log2(x), 0) / xs.length);
    const closed = (bits: number) => (m * n * 2 ** (-2 * bits) * gm(rowVar) * gm(damped)) / signal;
    const rd = new WaterFilling(src);
    expect(rd.floor(3) / closed(3)).toBeCloseTo(1, 6);
    expect(rd.floor(0.25) / closed(0.25)).toBeGreaterThan(1.2);
    for (const bits of [0.25, 1, 3, 5]) expect(rd.idealBits(rd.floor(bits))).toBeCloseTo(bits, 6);
    expect(rd.idealBits(10)).toBe(0);

    // Every codebook on an iid Gaussian source (H = I) stays above the floor at its rate, and within
    // the margin the E8P codes have: E8P 2-bit 0.27 bits, RVQ 3-bit 0.45, RVQ 4-bit 0.64 measured.
    const g = new Float32Array(128 * 128).map(gauss);
    const I = new Float64Array(128 * 128).map((_, i) => (i % 129 === 0 ? 1 : 0));
    const gaussianRd = new WaterFilling(await native().gaussianSource(g, I, { m: 128, n: 128, sigma: 0 }));
    for (const [codebook, bits, margin] of [['e8p', 2, 0.32], ['rvq3', 3, 0.5], ['rvq4', 4, 0.7]] as const) {
      const c = await quantizeLinear(g, I, { m: 128, n: 128, codebook, sigma: 0, rowScale: false });
      const excessBits = bits - gaussianRd.idealBits(c.proxyLoss);
      expect(excessBits, codebook).toBeGreaterThan(0);
      expect(excessBits, codebook).toBeLessThan(margin);
    }
    expect(() => native().gaussianSource(q.data, I, { m: 128, n: 128 })).toThrow(/W has 4096 elements/);
    expect(() => native().proxyLoss(g, q.data, I, { m: 128, n: 128 })).toThrow(/What has 4096 elements/);
  });

  it('rejects bad input with a clear message and can be cancelled', async () => {
    expect(() => native().quantizeLinear(q.data, hAttn, { m: 64, n: 63, codebook: 'e8p' })).toThrow(/expected m \* n/);
    await expect(quantizeLinear(q.data, hAttn, { m: 64, n: 64, codebook: 'bogus' as 'e8p' })).rejects.toThrow(/Unknown codebook/);
    const cancel = new Int32Array(1);
    cancel[0] = 1;
    await expect(quantizeLinear(q.data, hAttn, { m: 64, n: 64, codebook: 'e8p' }, { cancel })).rejects.toMatchObject({ code: 'CANCELLED' });
    // RHT on activations is orthogonal: norms are preserved and the inverse path recovers x.
    const x = Float32Array.from(xAttn.subarray(0, 64));
    const su = new Int8Array(64).map((_, i) => (i % 3 ? 1 : -1));
    const y = native().rhtInput(Float32Array.from(x), su);
    const nx = Math.hypot(...x), ny = Math.hypot(...y);
    expect(ny).toBeCloseTo(nx, 4);
    expect(native().e8pSourceTable().length).toBe(2048);
  });
});
