// The quantization job with fine-tuning on stories260k at 2 bits (E8P), calibrated on and scored on
// WikiText-2: the same run (same seed) with the fine-tuning steps run for 0 epochs measures each
// block's held-out output error untuned; with fine-tuning every block's error and the perplexity are
// lower, and the run records show both. The fine-tuned folder (real-valued sign vectors) reloads to
// the same perplexity and generates. block+e2e also tunes the final norm and lm_head: stories260k
// ties lm_head to its embeddings, so the folder is untied (its own lm_head.weight, config.json
// tie_word_embeddings false, the embedding as in a plain run) and reloads to the logits the job had in
// memory; a run cancelled during end-to-end resumes to the same files.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadModel } from '../model/index.js';
import { readSafetensorsFile } from '../model/safetensors.js';
import { runQuantizeJob } from '../quantize/job.js';
import { type QuantizeEvent, resolveSettings, type FinetuneSettingsInput } from '../../domain/quantize/index.js';
import { terminalRenderer } from '../../cli/render.js';
import { createEngine } from '../runtime/native-model.js';
import { native } from '../native.js';
import { generate } from '../runtime/generation.js';
import { evaluatePerplexity, perplexityWindows, readEvalText } from '../runtime/perplexity.js';

const STORIES = path.resolve('../shared/data/models/stories260k');
const WIKI_TEST = path.resolve('../shared/data/wikitext-2-raw/wiki.test.raw');
const root = mkdtempSync(path.join(os.tmpdir(), 'quip-ft-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const TUNE: FinetuneSettingsInput = { epochs: 3, lr: 1e-3, lrSign: 1e-3, batch: 4, holdout: 0.25, patience: 2 };

async function run(name: string, finetune: FinetuneSettingsInput, events?: QuantizeEvent[], cancel?: Int32Array, keepModel = false) {
  return runQuantizeJob({
    model: STORIES,
    out: path.join(root, name),
    settings: resolveSettings({ bits: 2, calibSamples: 16, calibCtx: 128, seed: 3, finetune }),
    evaluation: { textFile: WIKI_TEST, ctx: 128, maxWindows: 8, full: false },
    onEvent: events ? (e) => events.push(e) : undefined,
    cancel,
    keepModel,
  });
}

describe('quantization job with fine-tuning (stories260k, 2 bits)', () => {
  let tunedPpl = 0;
  it('lowers every block held-out error and the WikiText-2 perplexity; the folder reloads and generates', async () => {
    const untuned = await run('untuned', { mode: 'block', ...TUNE, epochs: 0 });
    const events: QuantizeEvent[] = [];
    const tuned = await run('tuned', { mode: 'block', ...TUNE }, events);
    tunedPpl = tuned.record.perplexity!.quantized;
    const a = untuned.record, b = tuned.record;
    expect(a.settings.finetune).toMatchObject({ mode: 'block', epochs: 0 });
    expect(b.settings.finetune).toMatchObject({ mode: 'block', epochs: 3, lr: 1e-3 });
    const errA = a.finetune!.blocks.map((x) => x.heldoutError), errB = b.finetune!.blocks.map((x) => x.heldoutError);
    console.log(`held-out block errors untuned / tuned: ${errA.map((e, i) => `${e.toExponential(2)} / ${errB[i].toExponential(2)}`).join(', ')}`);
    console.log(`WikiText-2 ppl (8 x 128): untuned ${a.perplexity!.quantized.toFixed(3)}, in-block fine-tuned ${b.perplexity!.quantized.toFixed(3)}`);
    expect(errB.length).toBe(5);
    errB.forEach((e, i) => expect(e).toBeLessThan(errA[i]));
    expect(b.perplexity!.quantized).toBeLessThan(a.perplexity!.quantized);
    // Progress: every tuning epoch and every block's error reached the event stream.
    const epochs = events.filter((e) => e.type === 'ft-epoch');
    expect(epochs.length).toBe(b.finetune!.blocks.flatMap((x) => x.groups).reduce((s, g) => s + g.epochs.length, 0));
    expect(events.filter((e) => e.type === 'ft-block').length).toBe(5);

    // Saved and reloaded: the same perplexity as measured in the job, and it generates.
    const loaded = await loadModel(tuned.out);
    try {
      const engine = createEngine(loaded);
      const windows = perplexityWindows(loaded.tokenizer, readEvalText(WIKI_TEST), 128, 8);
      const p = await evaluatePerplexity(engine, windows, { ctx: 128 });
      expect(p.ppl).toBeCloseTo(b.perplexity!.quantized, 6);
      const g = await generate(engine, loaded.tokenizer, loaded.tokenizer.encode('Once upon a time'), 128, { maxTokens: 16, seed: 1, temperature: 0, topP: 1 });
      expect(g.text.length).toBeGreaterThan(0);
    } finally {
      loaded.close();
    }
  }, 600_000);

  it('cancelled during fine-tuning, the same run resumes and writes the same model', async () => {
    const cancel = new Int32Array(1);
    const events: QuantizeEvent[] = [];
    const push = events.push.bind(events);
    events.push = (...e: QuantizeEvent[]) => {
      for (const x of e) if (x.type === 'ft-epoch' && x.block === 2) cancel[0] = 1;
      return push(...e);
    };
    await expect(run('resumed', { mode: 'block', ...TUNE }, events, cancel)).rejects.toMatchObject({ code: 'CANCELLED' });
    const r = await run('resumed', { mode: 'block', ...TUNE });
    expect(r.record.resumedFromBlock).toBe(2);
    // The record still holds the blocks tuned before the cancel, as the uninterrupted run's.
    const whole = JSON.parse(readFileSync(path.join(root, 'tuned', 'run.json'), 'utf8')) as typeof r.record;
    expect(r.record.finetune!.blocks.map((b) => b.block)).toEqual([0, 1, 2, 3, 4]);
    expect(r.record.finetune!.blocks.map((b) => b.heldoutError)).toEqual(whole.finetune!.blocks.map((b) => b.heldoutError));
    expect(r.record.finetune!.blocks[0].groups.length).toBe(3);
    expect(r.record.perplexity!.quantized).toBeCloseTo(tunedPpl, 9);
    expect(readFileSync(path.join(root, 'resumed', 'model.safetensors')).equals(readFileSync(path.join(root, 'tuned', 'model.safetensors')))).toBe(true);
  }, 600_000);

  it('block+e2e adds distillation, tunes lm_head (untied from the embeddings) and lowers perplexity further', async () => {
    const events: QuantizeEvent[] = [];
    const r = await run('e2e', { mode: 'block+e2e', ...TUNE }, events, undefined, true);
    const e2e = r.record.finetune!.endToEnd!;
    console.log(`WikiText-2 ppl: in-block ${tunedPpl.toFixed(3)}, + end-to-end ${r.record.perplexity!.quantized.toFixed(3)}; distillation held-out ${e2e.initialHeldoutLoss.toFixed(4)} -> ${e2e.bestHeldoutLoss.toFixed(4)}`);
    expect(tunedPpl).toBeGreaterThan(0);
    expect(e2e.bestHeldoutLoss).toBeLessThan(e2e.initialHeldoutLoss);
    expect(e2e.lmHead).toEqual({ tuned: true, untied: true });
    expect(events.filter((e) => e.type === 'ft-e2e-epoch').length).toBe(e2e.epochs.length);
    // The estimate counts fine-tuning; the ETA keeps end to end in view until it has run: while the last
    // layers finish it is still ahead, the 'finetune' phase announces it, and each epoch re-estimates.
    const estimate = events.find((e) => e.type === 'estimate');
    expect(estimate?.type === 'estimate' && estimate.seconds.finetune).toBeGreaterThan(0);
    const phases = events.filter((e) => e.type === 'phase').map((e) => (e.type === 'phase' ? e.phase : ''));
    expect(phases.indexOf('finetune')).toBeGreaterThan(phases.indexOf('quantize'));
    expect(phases.indexOf('finetune')).toBeLessThan(phases.indexOf('save'));
    const etas = events.flatMap((e) => (e.type === 'eta' ? [e] : []));
    const lastLayer = etas.find((e) => e.layersDone === e.layersTotal)!;
    expect(lastLayer.etaSeconds).toBeGreaterThan(0);
    const afterEpochs = events.slice(events.findIndex((e) => e.type === 'ft-e2e-epoch')).filter((e) => e.type === 'eta');
    expect(afterEpochs.length).toBe(e2e.epochs.length);
    expect(afterEpochs.at(-1)).toMatchObject({ etaSeconds: 0 });
    // The terminal shows all of it.
    let printed = '';
    const render = terminalRenderer({ write: (t) => (printed += t), isTTY: false });
    for (const e of events) render(e);
    expect(printed).toMatch(/Estimate on \d+ thread\(s\): .*fine-tuning [\d.]+ (s|min)/);
    expect(printed).toMatch(/fine-tuned block 0: held-out error \d\.\d+e[-+]\d+ \(held-out loss of each tuning step, after q\/k\/v: \S+ -> \S+, o: \S+ -> \S+, gate\/up: \S+ -> \S+\)/);
    expect(printed).toContain('== finetune: end to end: 3 epochs of distillation');
    expect(printed).toMatch(/end to end, epoch 1: train loss \d+\.\d{4}, held-out \d+\.\d{4}/);
    expect(r.record.perplexity!.quantized).toBeLessThan(tunedPpl);
    // The folder is untied: lm_head.weight of the embedding's shape and dtype but tuned away from it;
    // the embedding is the one a run without end-to-end saves.
    const config = JSON.parse(readFileSync(path.join(r.out, 'config.json'), 'utf8'));
    expect(config.tie_word_embeddings).toBe(false);
    const { header, data } = readSafetensorsFile(path.join(r.out, 'model.safetensors'), true);
    const entry = (name: string) => header.tensors.find((t) => t.name === name)!;
    expect(entry('lm_head.weight')).toMatchObject({ dtype: entry('model.embed_tokens.weight').dtype, shape: [512, 64] });
    expect(Buffer.from(data.get('lm_head.weight')!).equals(Buffer.from(data.get('model.embed_tokens.weight')!))).toBe(false);
    const inBlock = readSafetensorsFile(path.join(root, 'tuned', 'model.safetensors'), true).data;
    expect(Buffer.from(data.get('model.embed_tokens.weight')!).equals(Buffer.from(inBlock.get('model.embed_tokens.weight')!))).toBe(true);
    expect(inBlock.has('lm_head.weight')).toBe(false);
    // Reloaded, it computes what the job had in memory, tuned final norm and lm_head included.
    const loaded = await loadModel(r.out);
    const source = await loadModel(STORIES);
    try {
      expect(loaded.architecture.tiedEmbeddings).toBe(false);
      const engine = createEngine(loaded);
      const ids = new Int32Array(loaded.tokenizer.encode('Once upon a time, there was a little girl named Lily. She loved to play.'));
      const inMemory = await r.model!.createSession(128).forward(ids, true);
      const reloaded = await engine.createSession(128).forward(ids, true);
      expect(Buffer.from(reloaded.buffer).equals(Buffer.from(inMemory.buffer))).toBe(true);
      const windows = perplexityWindows(loaded.tokenizer, readEvalText(WIKI_TEST), 128, 8);
      expect((await evaluatePerplexity(engine, windows, { ctx: 128 })).ppl).toBeCloseTo(r.record.perplexity!.quantized, 6);
      const sourceEngine = createEngine(source);
      const tunedNorm = native().finalNorm(engine), sourceNorm = native().finalNorm(sourceEngine);
      expect(tunedNorm.length).toBe(sourceNorm.length);
      expect(tunedNorm.some((v, i) => v !== sourceNorm[i])).toBe(true);
      const head = native().lmHead(engine), embedding = native().lmHead(sourceEngine);
      expect(head.some((v, i) => Math.abs(v - embedding[i]) > 1e-3)).toBe(true);
      const g = await generate(engine, loaded.tokenizer, loaded.tokenizer.encode('Once upon a time'), 128, { maxTokens: 16, seed: 1, temperature: 0, topP: 1 });
      expect(g.text.length).toBeGreaterThan(0);
    } finally {
      loaded.close();
      source.close();
    }
  }, 600_000);

  it('cancelled during end-to-end fine-tuning, the same run resumes and writes the same model', async () => {
    const cancel = new Int32Array(1);
    const events: QuantizeEvent[] = [];
    const push = events.push.bind(events);
    events.push = (...e: QuantizeEvent[]) => {
      for (const x of e) if (x.type === 'ft-e2e-epoch') cancel[0] = 1;
      return push(...e);
    };
    await expect(run('e2e-resumed', { mode: 'block+e2e', ...TUNE }, events, cancel)).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(events.some((e) => e.type === 'ft-e2e-epoch')).toBe(true);
    const r = await run('e2e-resumed', { mode: 'block+e2e', ...TUNE });
    expect(r.record.resumedFromBlock).toBe(5);
    for (const f of ['model.safetensors', 'config.json']) {
      expect(readFileSync(path.join(root, 'e2e-resumed', f)).equals(readFileSync(path.join(root, 'e2e', f)))).toBe(true);
    }
  }, 600_000);
});
