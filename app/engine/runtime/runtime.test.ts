// The engine on a real model: greedy decoding of stories260k reproduces the reference ids exactly,
// perplexity on WikiText-2 test is finite, deterministic and equal across thread counts, sampling is
// seeded, and calibration Hessians are symmetric with the right sizes.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type LoadedModel } from '../model/index.js';
import { native } from '../native.js';
import { collectHessians, hessianMean, startCalibration } from './calibration.js';
import { createEngine, setEngineThreads, type EngineModel } from './native-model.js';
import { generate, generateOn, PREFILL_CHUNK } from './generation.js';
import { evaluateModelPerplexity, evaluatePerplexity, perplexityWindows, readEvalText } from './perplexity.js';
import { SeededRng, argmax, sampleToken } from './sampling.js';

const DATA = path.resolve('../shared/data');
const STORIES = path.join(DATA, 'models', 'stories260k');

let model: LoadedModel;
let engine: EngineModel;

beforeAll(async () => {
  model = await loadModel(STORIES);
  engine = createEngine(model);
});
afterAll(() => {
  setEngineThreads(0);
  model?.close();
});

describe('engine on stories260k', () => {
  it('greedy decoding from BOS reproduces reference-greedy-ids.json exactly', async () => {
    const ref = JSON.parse(readFileSync(path.join(STORIES, 'reference-greedy-ids.json'), 'utf8')) as number[];
    expect(ref[0]).toBe(1);
    const r = await generate(engine, model.tokenizer, [ref[0]], model.architecture.contextLength, {
      maxTokens: ref.length - 1,
      temperature: 0,
      topP: 1,
      seed: 0,
      stopIds: [],
    });
    expect(r.ids).toEqual(ref.slice(1));
    expect(r.text.startsWith('Once upon a time, there was a little girl named Lily.')).toBe(true);
  });

  it('KV-cache decoding gives the logits of a full forward pass (1e-4), past one GEMM token block', async () => {
    const ref = JSON.parse(readFileSync(path.join(STORIES, 'reference-greedy-ids.json'), 'utf8')) as number[];
    const ids = Int32Array.from(ref.slice(0, 90)); // > 64-token GEMM block and > 48-row block
    const V = model.architecture.vocabSize;
    const full = await engine.createSession(90).forward(ids, true);
    expect(full.length).toBe(90 * V);
    const s = engine.createSession(90);
    let worst = 0;
    const last = await s.forward(ids.subarray(0, 7), false);
    for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(last[v] - full[6 * V + v]));
    for (let t = 7; t < 90; t++) {
      const l = await s.forward(ids.subarray(t, t + 1), false);
      for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(l[v] - full[t * V + v]));
    }
    expect(worst).toBeLessThan(1e-4);
    expect(s.position).toBe(90);
    await expect(s.forward(Int32Array.of(5), false)).rejects.toThrow(/context is full/);
    await expect(engine.createSession(4).forward(Int32Array.of(V), false)).rejects.toThrow(/outside the vocabulary/);
  });

  it('a long prompt prefilled in chunks picks the greedy token of one whole forward, and a stop lands between chunks', async () => {
    const text = readEvalText(path.join(DATA, 'wikitext-2-raw', 'wiki.test.raw')).slice(0, 20_000);
    const ids = model.tokenizer.encode(text).slice(0, 2 * PREFILL_CHUNK + 50);
    expect(ids.length).toBe(2 * PREFILL_CHUNK + 50);
    const V = model.architecture.vocabSize;
    const whole = await engine.createSession(ids.length + 1).forward(Int32Array.from(ids), false);
    const greedy = { maxTokens: 1, temperature: 0, topP: 1, seed: 0, stopIds: [] as number[] };
    const chunked = await generateOn(engine.createSession(ids.length + 1), model.tokenizer, ids, ids, greedy);
    let best = 0;
    for (let v = 1; v < V; v++) if (whole[v] > whole[best]) best = v;
    expect(chunked.ids).toEqual([best]);
    expect(chunked.promptIds.length).toBe(ids.length);
    // A stop raised while the first chunk runs ends the prefill before the next chunk starts.
    const cancel = new Int32Array(1);
    const session = engine.createSession(ids.length + 1);
    const stopped = generateOn(session, model.tokenizer, ids, ids, { ...greedy, cancel });
    cancel[0] = 1;
    const r = await stopped;
    expect(r.stopReason).toBe('cancelled');
    expect(r.ids).toEqual([]);
    expect(session.position).toBeLessThanOrEqual(PREFILL_CHUNK);
  });

  it('perplexity on WikiText-2 test is finite, deterministic and equal for 1 and 2 threads', async () => {
    const text = readEvalText(path.join(DATA, 'wikitext-2-raw', 'wiki.test.raw'));
    const windows = perplexityWindows(model.tokenizer, text, 128, 3);
    expect(windows.length).toBe(3);
    expect(windows.every((w) => w.length === 128 && w[0] === model.tokenizer.bosId)).toBe(true);
    setEngineThreads(1);
    const a = await evaluatePerplexity(engine, windows, { ctx: 128 });
    const b = await evaluatePerplexity(engine, windows, { ctx: 128 });
    setEngineThreads(2);
    const c = await evaluatePerplexity(engine, windows, { ctx: 128 });
    expect(Number.isFinite(a.ppl)).toBe(true);
    expect(a.ppl).toBeGreaterThan(1);
    expect(a.ppl).toBeLessThan(512); // better than uniform over the vocabulary
    expect(a.tokensScored).toBe(3 * 127);
    expect(b.nll).toBe(a.nll);
    expect(c.nll).toBe(a.nll);
    const d = await evaluateModelPerplexity(model, path.join(DATA, 'wikitext-2-raw', 'wiki.test.raw'), { ctx: 128, maxWindows: 3, engine });
    expect(d.nll).toBe(a.nll);
  });

  it('seeded sampling repeats and differs across seeds; a cancelled flag stops generation', async () => {
    const opts = { maxTokens: 20, temperature: 0.9, topP: 0.9, stopIds: [] as number[] };
    const a = await generate(engine, model.tokenizer, [1], 512, { ...opts, seed: 7 });
    const b = await generate(engine, model.tokenizer, [1], 512, { ...opts, seed: 7 });
    const c = await generate(engine, model.tokenizer, [1], 512, { ...opts, seed: 8 });
    expect(a.ids).toEqual(b.ids);
    expect(a.ids).not.toEqual(c.ids);
    const cancel = new Int32Array(1);
    let seen = 0;
    const d = await generate(engine, model.tokenizer, [1], 512, { ...opts, seed: 7, cancel, onText: () => { if (++seen === 3) cancel[0] = 1; } });
    expect(d.stopReason).toBe('cancelled');
    expect(d.ids.length).toBeLessThan(20);
  });

  it('calibration gives four symmetric Hessians per block and walks every block', async () => {
    const cal = startCalibration(engine, model.tokenizer, { sequences: 2, seqLen: 32 });
    const a = model.architecture;
    for (let b = 0; b < a.numLayers; b++) {
      expect(cal.nextBlock).toBe(b);
      const h = await cal.hessians();
      expect([h.qkv.n, h.o.n, h.gateUp.n, h.down.n]).toEqual([a.hiddenSize, a.numHeads * a.headDim, a.hiddenSize, a.intermediateSize]);
      for (const s of [h.qkv, h.o, h.gateUp, h.down]) {
        expect(s.count).toBe(64);
        for (let i = 0; i < s.n; i += 7) {
          expect(s.sum[i * s.n + i]).toBeGreaterThan(0);
          for (let j = 0; j < s.n; j += 5) expect(Math.abs(s.sum[i * s.n + j] - s.sum[j * s.n + i])).toBeLessThanOrEqual(1e-6 * Math.abs(s.sum[i * s.n + i]) + 1e-9);
        }
      }
      expect(await cal.advance()).toBe(b + 1);
    }
    await expect(cal.hessians()).rejects.toThrow(/every block/);
    // collectHessians walks the same blocks and gives the same sums; progress events name them.
    const again = startCalibration(engine, model.tokenizer, { sequences: 2, seqLen: 32 });
    const blocks: number[] = [];
    const events: Array<{ phase: string; block: number }> = [];
    await collectHessians(again, a.numLayers, (h) => { blocks.push(h.block); }, { onProgress: (j) => events.push(JSON.parse(j)) });
    expect(blocks).toEqual([0, 1, 2, 3, 4]);
    expect(events.filter((e) => e.phase === 'hessians' && e.block === 4)).toHaveLength(2);
    const first = await startCalibration(engine, model.tokenizer, { sequences: 2, seqLen: 32 }).hessians();
    const mean = hessianMean(first.down);
    expect(mean[0]).toBeCloseTo(first.down.sum[0] / 64, 12);
  });
});

describe('engine bindings refuse bad input with an error, never a crash', () => {
  it('names a missing tensor, a wrong argument and a busy session', async () => {
    const weights = Object.fromEntries(model.tensorNames().filter((n) => !n.includes('layers.3.mlp.up')).map((n) => [n, model.tensor(n)]));
    expect(() => native().createModel(model.architecture, weights)).toThrow(/model\.layers\.3\.mlp\.up_proj\.weight/);
    expect(() => native().createModel({ ...model.architecture, numHeads: 3 }, weights)).toThrow(/multiple of key\/value heads|heads/);
    const s = engine.createSession(16);
    expect(() => s.forward([1, 2] as unknown as Int32Array, false)).toThrow(/Int32Array/);
    const first = s.forward(Int32Array.of(1, 2, 3), false);
    expect(() => s.forward(Int32Array.of(4), false)).toThrow(/busy/);
    await first;
    expect(() => s.rewind(9)).toThrow(/cannot rewind/);
    expect(() => engine.createCalibration(Int32Array.of(1, 2, 3), 2, 2)).toThrow(/expected 2 x 2/);
  });
});

describe('sampling', () => {
  it('argmax, greedy and nucleus behave', () => {
    const logits = Float32Array.from([0.1, 3, 2.9, -1]);
    expect(argmax(logits)).toBe(1);
    expect(sampleToken(logits, { temperature: 0, topP: 1 }, new SeededRng(1))).toBe(1);
    // top-p small enough to keep only the best token
    const rng = new SeededRng(3);
    for (let i = 0; i < 50; i++) expect(sampleToken(logits, { temperature: 1, topP: 0.3 }, rng)).toBe(1);
    // with everything kept, frequencies follow the softmax
    const counts = [0, 0, 0, 0];
    const r2 = new SeededRng(5);
    for (let i = 0; i < 20000; i++) counts[sampleToken(logits, { temperature: 1, topP: 1 }, r2)]++;
    const z = [0.1, 3, 2.9, -1].map(Math.exp);
    const total = z.reduce((x, y) => x + y);
    z.forEach((p, i) => expect(Math.abs(counts[i] / 20000 - p / total)).toBeLessThan(0.015));
  });

  it('nucleus sampling over a large vocabulary equals a full-sort reference', () => {
    const g = new SeededRng(11);
    const logits = Float32Array.from({ length: 5000 }, () => (g.next() - 0.5) * 12);
    const reference = (o: { temperature: number; topP: number }, rng: SeededRng) => {
      let mx = -Infinity;
      for (const l of logits) mx = Math.max(mx, l);
      const p = Array.from(logits, (l) => Math.exp((l - mx) / o.temperature));
      const sum = p.reduce((a, b) => a + b);
      const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
      let kept = 0;
      let mass = 0;
      while (kept < order.length && (kept === 0 || mass < o.topP * sum)) mass += p[order[kept++]];
      let u = rng.next() * mass;
      for (let i = 0; i < kept; i++) if ((u -= p[order[i]]) < 0) return order[i];
      return order[kept - 1];
    };
    for (const o of [{ temperature: 0.7, topP: 0.9 }, { temperature: 1.3, topP: 1 }, { temperature: 1, topP: 0.01 }]) {
      const a = new SeededRng(99);
      const b = new SeededRng(99);
      for (let i = 0; i < 40; i++) expect(sampleToken(logits, o, a)).toBe(reference(o, b));
    }
  });
});
