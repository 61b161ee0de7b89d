// KL divergence in llama.cpp's --kl-divergence convention on stories260k: a model against itself is 0
// with every top token the same; a 2-bit quantization is above 0 and finite, with the base's perplexity
// equal to the plain evaluation's; the mean KLD and top agreement equal a float64 reference over the
// full logits of one forward per window (exact KL, no uint16 copy of the base).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { resolveSettings } from '../../domain/quantize/index.js';
import { loadModel, type LoadedModel } from '../model/index.js';
import { runQuantizeJob } from '../quantize/job.js';
import { evaluateKlDivergenceLlamaCpp, kldRow, meanAndUncertainty, quantizeBaseLogProbs } from './kl-divergence.js';
import { createEngine } from './native-model.js';
import type { EngineModel } from './native-types.js';
import { evaluatePerplexityLlamaCpp, llamaCppWindows } from './perplexity-llamacpp.js';

const DATA = path.resolve('../shared/data');
const STORIES = path.join(DATA, 'models', 'stories260k');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-kld-'));
const text = readFileSync(path.join(DATA, 'wikitext-2-raw', 'wiki.test.raw'), 'utf8').slice(0, 20_000);
let model: LoadedModel;
let q2: LoadedModel;
beforeAll(async () => {
  model = await loadModel(STORIES);
  const out = path.join(tmp, 'q2');
  await runQuantizeJob({
    model: STORIES,
    out,
    settings: resolveSettings({ bits: 2, calibTextFile: path.join(DATA, 'wikitext-2-raw', 'wiki.valid.raw'), calibSamples: 4, calibCtx: 128, threads: 2 }),
    evaluation: null,
  });
  q2 = await loadModel(out);
}, 120_000);
afterAll(() => {
  model?.close();
  q2?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/**
 * Exact KL(P_base || P_model) in float64 at positions ctx/2 .. ctx-2 of each window. The logits come
 * as the convention's own calls get them (first half prefilled, then the rest in one forward): a
 * quantized model's kernels for a few tokens round differently from those of a long batch, and this
 * compares the divergence, not the kernels.
 */
async function reference(m: EngineModel, base: EngineModel, windows: Int32Array[], vocab: number) {
  let sum = 0, same = 0, count = 0;
  const logSoftmax = (row: Float32Array) => {
    const x = Array.from(row, Number);
    const max = Math.max(...x);
    const lse = max + Math.log(x.reduce((a, v) => a + Math.exp(v - max), 0));
    return x.map((v) => v - lse);
  };
  const argmax = (x: number[]) => x.reduce((best, v, i) => (v > x[best] ? i : best), 0);
  for (const w of windows) {
    const ctx = w.length;
    const first = ctx >> 1;
    const rows = async (e: EngineModel) => {
      const s = e.createSession(ctx);
      await s.forward(w.subarray(0, first), false);
      return s.forward(w.subarray(first, ctx - 1), true);
    };
    const lm = await rows(m), lb = await rows(base);
    for (let p = first; p <= ctx - 2; p++) {
      const r = p - first;
      const a = logSoftmax(lm.subarray(r * vocab, (r + 1) * vocab));
      const b = logSoftmax(lb.subarray(r * vocab, (r + 1) * vocab));
      sum += b.reduce((acc, lp, i) => acc + Math.exp(lp) * (lp - a[i]), 0);
      if (argmax(a) === argmax(b)) same++;
      count++;
    }
  }
  return { kld: sum / count, sameTop: same / count, count };
}

describe("KL divergence (llama.cpp's --kl-divergence convention)", () => {
  it("stores the base row as llama.cpp's uint16 log-probabilities and reads them back within one step", () => {
    const logits = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7) * 6 - (i === 5 ? 30 : 0));
    const q = quantizeBaseLogProbs(logits);
    const max = Math.max(...logits);
    const lse = max + Math.log(Array.from(logits).reduce((a, v) => a + Math.exp(v - max), 0));
    for (let i = 0; i < logits.length; i++) {
      const back = q.scale * q.q[i] + q.minLogProb;
      // Entries more than 16 below the maximum read as the low end of the range.
      if (logits[i] - max > -16) expect(Math.abs(back - (logits[i] - lse))).toBeLessThan(q.scale);
      else expect(back).toBeCloseTo(q.minLogProb, 6);
    }
    expect(Math.abs(kldRow(logits, q).kld)).toBeLessThan(1e-4);
    expect(kldRow(logits, q).sameTop).toBe(true);
    // llama.cpp's +-: standard error, none for ten values or fewer.
    expect(meanAndUncertainty(10, 30, 5)).toEqual([2, 0]);
    expect(meanAndUncertainty(24, 48, 12)[1]).toBeCloseTo(Math.sqrt((48 / 12 - 4) / 11), 12);
  });

  it('is 0 for a model against itself, with every top token the same', async () => {
    const windows = llamaCppWindows(model.tokenizer, text, 64, 3);
    const e = createEngine(model);
    const r = await evaluateKlDivergenceLlamaCpp(e, createEngine(model), windows, model.architecture.vocabSize, { ctx: 64 });
    expect(r.tokensScored).toBe(3 * 31);
    expect(Math.abs(r.kld)).toBeLessThan(1e-5);
    expect(r.kldMax).toBeLessThan(1e-4);
    expect(r.sameTop).toBe(1);
    expect(r.ppl).toBe(r.basePpl);
    const plain = await evaluatePerplexityLlamaCpp(e, windows, model.architecture.vocabSize, { ctx: 64 });
    expect(Math.abs(r.ppl / plain.ppl - 1)).toBeLessThan(1e-9);
  });

  it('is above 0 and finite for a 2-bit quantization, the perplexities those of separate evaluations', async () => {
    const windows = llamaCppWindows(model.tokenizer, text, 64, 4);
    const vocab = model.architecture.vocabSize;
    const base = createEngine(model), quant = createEngine(q2);
    const r = await evaluateKlDivergenceLlamaCpp(quant, base, windows, vocab, { ctx: 64 });
    expect(r.kld).toBeGreaterThan(0.001);
    expect(Number.isFinite(r.kld) && Number.isFinite(r.kldPlusMinus)).toBe(true);
    expect(r.kldPlusMinus).toBeGreaterThan(0);
    expect(r.sameTop).toBeLessThan(1);
    expect(r.sameTop).toBeGreaterThan(0.2);
    const pq = await evaluatePerplexityLlamaCpp(quant, windows, vocab, { ctx: 64 });
    const pb = await evaluatePerplexityLlamaCpp(base, windows, vocab, { ctx: 64 });
    expect(Math.abs(r.ppl / pq.ppl - 1)).toBeLessThan(1e-9);
    expect(Math.abs(r.basePpl / pb.ppl - 1)).toBeLessThan(1e-9);
  });

  it('equals a float64 reference of the exact KL divergence on small windows', async () => {
    const windows = llamaCppWindows(model.tokenizer, text, 16, 2);
    const vocab = model.architecture.vocabSize;
    const base = createEngine(model), quant = createEngine(q2);
    const r = await evaluateKlDivergenceLlamaCpp(quant, base, windows, vocab, { ctx: 16 });
    const ref = await reference(quant, base, windows, vocab);
    expect(r.tokensScored).toBe(ref.count);
    // The uint16 copy of the base moves each log-probability by at most 16 / 65535 / 2 nats.
    expect(Math.abs(r.kld - ref.kld)).toBeLessThan(2e-4 + 1e-3 * ref.kld);
    expect(r.sameTop).toBe(ref.sameTop);
  });
});
