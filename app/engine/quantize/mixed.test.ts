// Per-layer widths for a target bits per weight (--target-bpw, allocate.ts):
//  - the greedy knapsack against brute force over every assignment of a small problem;
//  - stories260k at --target-bpw 3.0: the true bits per linear weight (codes, sign vectors, scales and
//    the layers kept at 16 bits, as `quip compare` counts them; embeddings, norms and lm_head are not
//    linear layers) land within 0.02 of 3.0, every layer's width is in config.json and the run record,
//    the saved folder reloads to the logits of the model in memory and generates;
//  - a uniform run keeps the old folder format (format_version 1, no per-layer codebook).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { resolveSettings } from '../../domain/quantize/index.js';
import { loadModel } from '../model/index.js';
import { generate } from '../runtime/generation.js';
import { createEngine } from '../runtime/native-model.js';
import { allocateWidths, LAND_TOLERANCE, widthBits, type AllocationLayer, type LayerWidth } from './allocate.js';
import { compareRow, formatCompareTable } from './compare.js';
import { runQuantizeJob } from './job.js';

const DATA = path.resolve('../shared/data');
const STORIES = path.join(DATA, 'models', 'stories260k');
const CALIB = path.join(DATA, 'wikitext-2-raw', 'wiki.valid.raw');
const root = mkdtempSync(path.join(os.tmpdir(), 'quip-mixed-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('allocation (greedy knapsack)', () => {
  const signs = { incoherence: true, su: 1, sv: 4 };
  it('counts bits as the saved folder does: codes over the padded width, sign vectors, scales', () => {
    expect(widthBits(64, 172, 'e8p', signs)).toBe(64 * 176 * 2 + 8 * (172 + 64 * 4) + 32);
    expect(widthBits(64, 172, 'rvq3', signs)).toBe(64 * 176 * 3 + 8 * (172 + 64 * 4) + 64);
    expect(widthBits(64, 172, 'f16', signs)).toBe(64 * 172 * 16);
  });

  it('comes within one step of the best assignment under the budget (brute force over 4^6 mixes)', () => {
    const widths: LayerWidth[] = ['e8p', 'rvq3', 'rvq4', 'f16'];
    const shapes = [[64, 64], [64, 64], [32, 64], [64, 172], [172, 64], [64, 128]];
    const sens = [0.02, 0.1, 0.3, 0.05, 0.01, 0.2];
    const layers: AllocationLayer[] = shapes.map(([m, n], i) => ({
      name: `l${i}`, m, n,
      options: widths.map((w) => ({ width: w, bits: widthBits(m, n, w, signs), loss: w === 'f16' ? 0 : sens[i] * { e8p: 1, rvq3: 0.32, rvq4: 0.105 }[w] })),
    }));
    const weights = shapes.reduce((a, [m, n]) => a + m * n, 0);
    for (const target of [2.5, 3.0, 3.7, 5.0]) {
      const a = allocateWidths(layers, target);
      // Brute force: the least loss of any mix within the budget, and within the budget plus the tolerance.
      let best = Infinity, bestAbove = Infinity, bestLanded = Infinity;
      for (let code = 0; code < 4 ** layers.length; code++) {
        let bits = 0, loss = 0;
        for (let i = 0, c = code; i < layers.length; i++, c >>= 2) {
          bits += layers[i].options[c & 3].bits;
          loss += layers[i].options[c & 3].loss;
        }
        if (bits <= target * weights) best = Math.min(best, loss);
        if (bits <= (target + LAND_TOLERANCE) * weights) bestAbove = Math.min(bestAbove, loss);
        if (Math.abs(bits / weights - target) <= LAND_TOLERANCE) bestLanded = Math.min(bestLanded, loss);
      }
      // Greedy on convex hulls is optimal up to the last step that did not fit; landing on the size costs
      // a little more: within the loss of one step of the best mix of that size.
      expect(a.predictedLoss).toBeLessThanOrEqual(Math.max(best, bestLanded) + 0.2 * Math.max(...sens));
      expect(a.predictedLoss).toBeGreaterThanOrEqual(bestAbove - 1e-12);
      // Within the landing tolerance where some mix is; below the target where none is (steps too coarse).
      // (At 5.0 these six layers land only by two steps to 16 bits at once, and the landing takes one at
      // a time: it stays below, at 4.80. stories260k's 35 layers land at 3.0 and 5.0, tested below.)
      if (target < 5) expect(Math.abs(a.bitsPerWeight - target)).toBeLessThanOrEqual(LAND_TOLERANCE + 1e-12);
      else expect(a.bitsPerWeight).toBeLessThanOrEqual(target);
    }
    // The most sensitive layer per weight gets the most bits.
    const a = allocateWidths(layers, 3.0);
    const order = ['e8p', 'rvq3', 'rvq4', 'f16'];
    expect(order.indexOf(a.widths.l2)).toBeGreaterThanOrEqual(order.indexOf(a.widths.l4));
    // Out of reach: all at 2 bits, or all at 16.
    expect(allocateWidths(layers, 2.0).bitsPerWeight).toBe(a.range[0]);
    expect(Object.values(allocateWidths(layers, 17).widths).every((w) => w === 'f16')).toBe(true);
  });
});

describe('--target-bpw on stories260k', () => {
  it('lands within 0.02 of 3.0 bits per weight, records every width, reloads and generates', async () => {
    const out = path.join(root, 'mixed-3.0');
    const settings = resolveSettings({ targetBpw: 3.0, calibTextFile: CALIB, calibSamples: 8, calibCtx: 128, threads: 2 });
    const r = await runQuantizeJob({ model: STORIES, out, settings, evaluation: null, keepModel: true });
    // True bits per linear weight (codes + sign vectors + scales + the 16-bit layers), as compare counts them.
    expect(Math.abs(r.record.sizes.bitsPerWeight - 3.0)).toBeLessThanOrEqual(0.02);
    const row = compareRow(out);
    expect(row.bitsPerWeight).toBeCloseTo(r.record.sizes.bitsPerWeight, 10);
    expect(row.widths).not.toBeNull();
    expect(Object.values(row.widths!).reduce((a, b) => a + b, 0)).toBe(35);
    expect(formatCompareTable([row])).toMatch(/mixed/);
    // A mix, not one width: the allocation spent bits unevenly.
    expect(Object.keys(row.widths!).length).toBeGreaterThan(1);
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    const q = config.quantization_config;
    expect(q.format_version).toBe(2);
    expect(q.target_bpw).toBe(3.0);
    const recorded = r.record.layers.map((l) => l.width);
    expect(recorded.every((w) => w !== undefined)).toBe(true);
    expect(r.record.layers.every((l) => typeof l.kld2 === 'number' && l.kld2 >= 0)).toBe(true);
    for (const l of r.record.layers) {
      if (l.width === 'f16') expect(q.dense_layers[l.name]).toMatchObject({ m: l.shape[0], n: l.shape[1] });
      else expect(q.layers[l.name].codebook).toBe(l.width);
    }
    // The saved folder runs what the job had in memory, and generates.
    const model = await loadModel(out);
    try {
      const saved = createEngine(model);
      const ids = Int32Array.from(model.tokenizer.encode('Once upon a time', { addBos: true }));
      const a = await saved.createSession(32).forward(ids, false);
      const b = await r.model!.createSession(32).forward(ids, false);
      expect(Array.from(a)).toEqual(Array.from(b));
      const g = await generate(saved, model.tokenizer, Array.from(ids), model.architecture.contextLength, { maxTokens: 12, temperature: 0, topP: 1, seed: 0 });
      expect(g.ids.length).toBeGreaterThan(0);
      expect(g.text.length).toBeGreaterThan(0);
    } finally {
      model.close();
    }
  }, 300_000);

  it('keeps layers at 16 bits where that pays (5.0 bits per weight): the folder reloads to the same logits', async () => {
    const out = path.join(root, 'mixed-5.0');
    const settings = resolveSettings({ targetBpw: 5.0, calibTextFile: CALIB, calibSamples: 8, calibCtx: 128, threads: 2 });
    const r = await runQuantizeJob({ model: STORIES, out, settings, evaluation: null, keepModel: true });
    expect(Math.abs(r.record.sizes.bitsPerWeight - 5.0)).toBeLessThanOrEqual(0.02);
    const row = compareRow(out);
    expect(row.widths!.f16).toBeGreaterThan(0);
    const model = await loadModel(out);
    try {
      const ids = Int32Array.from(model.tokenizer.encode('Once upon a time there was', { addBos: true }));
      const a = await createEngine(model).createSession(32).forward(ids, true);
      const b = await r.model!.createSession(32).forward(ids, true);
      expect(Array.from(a)).toEqual(Array.from(b));
    } finally {
      model.close();
    }
  }, 300_000);

  it('fine-tunes a mixed model unchanged (in-block): widths 2-4 bits only, float32 sign vectors counted', async () => {
    const out = path.join(root, 'mixed-ft');
    const settings = resolveSettings({ targetBpw: 3.0, calibTextFile: CALIB, calibSamples: 8, calibCtx: 128, threads: 2, finetune: { mode: 'block', epochs: 1, batch: 2 } });
    const r = await runQuantizeJob({ model: STORIES, out, settings, evaluation: null });
    expect(r.record.finetune?.blocks.length).toBe(5);
    expect(r.record.layers.every((l) => l.width !== 'f16')).toBe(true);
    expect(Math.abs(r.record.sizes.bitsPerWeight - 3.0)).toBeLessThanOrEqual(0.02);
    expect(compareRow(out).bitsPerWeight).toBeCloseTo(r.record.sizes.bitsPerWeight, 10);
    const model = await loadModel(out);
    try {
      const logits = await createEngine(model).createSession(16).forward(Int32Array.from([1, 400, 300]), false);
      expect(logits.every(Number.isFinite)).toBe(true);
    } finally {
      model.close();
    }
  }, 300_000);

  it('keeps the uniform folder format when no target is given', async () => {
    const out = path.join(root, 'uniform');
    await runQuantizeJob({ model: STORIES, out, settings: resolveSettings({ bits: 2, calibTextFile: CALIB, calibSamples: 4, calibCtx: 128, threads: 2 }), evaluation: null });
    const q = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).quantization_config;
    expect(q.format_version).toBe(1);
    expect(q.target_bpw).toBeUndefined();
    expect(q.dense_layers).toBeUndefined();
    expect(Object.values(q.layers).every((l) => !('codebook' in (l as object)))).toBe(true);
    expect(compareRow(out).widths).toBeNull();
  }, 120_000);
});
