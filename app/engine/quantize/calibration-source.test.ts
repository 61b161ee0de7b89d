// Where calibration tokens come from when no text is given: the default WikiText-2 file when it is
// there, else sequences the model samples itself (an installed studio ships no WikiText). The default
// file is made absent through QUIP_DEFAULT_CALIB_TEXT, exactly as it is absent in an install. Also:
// bits per weight count sign vectors at their stored dtype (I8, or F32 once fine-tuned).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { loadModel } from '../model/index.js';
import { bytesOf, writeSafetensors, type TensorToWrite } from '../model/safetensors-writer.js';
import { calibrationSampleSeed, defaultCalibrationText, resolveCalibrationSource, sampledCalibrationIds } from '../runtime/calibration.js';
import { createEngine } from '../runtime/native-model.js';
import { evaluatePerplexity } from '../runtime/perplexity.js';
import { generate } from '../runtime/generation.js';
import { compareRow } from './compare.js';
import { QuantizeEvent, RunRecord, resolveSettings } from '../../domain/quantize/index.js';
import { FORMAT_VERSION, QUANT_METHOD, layerBits, type QuantizedLayerRecord } from '../model/quantized-format.js';
import { runQuantizeJob } from './job.js';
import { terminalRenderer } from '../../cli/render.js';

const STORIES = path.resolve('../shared/data/models/stories260k');
const root = mkdtempSync(path.join(os.tmpdir(), 'quip-calsrc-'));
const ABSENT = path.join(root, 'no-such-dir', 'wiki.valid.raw');
const saved = process.env.QUIP_DEFAULT_CALIB_TEXT;

afterEach(() => {
  if (saved === undefined) delete process.env.QUIP_DEFAULT_CALIB_TEXT;
  else process.env.QUIP_DEFAULT_CALIB_TEXT = saved;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('calibration source', () => {
  it('an explicit file must exist; without one the default text, else model-sampled from the run seed', () => {
    const text = path.join(root, 'mine.txt');
    writeFileSync(text, 'Once upon a time there was a cat.\n');
    expect(resolveCalibrationSource(text, 3)).toEqual({ kind: 'file', file: text });
    const missing = path.join(root, 'missing.txt');
    expect(() => resolveCalibrationSource(missing, 3)).toThrow(new RegExp(`calibration text ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} does not exist`));
    process.env.QUIP_DEFAULT_CALIB_TEXT = text;
    expect(defaultCalibrationText()).toBe(text);
    expect(resolveCalibrationSource(null, 3)).toEqual({ kind: 'file', file: text });
    process.env.QUIP_DEFAULT_CALIB_TEXT = ABSENT;
    expect(resolveCalibrationSource(null, 3)).toEqual({ kind: 'model-sampled', seed: calibrationSampleSeed(3) });
    expect(calibrationSampleSeed(3)).not.toBe(calibrationSampleSeed(4));
  });

  it('sampled sequences start at BOS, continue as the model samples them, and are reproducible by seed', async () => {
    const model = await loadModel(STORIES);
    try {
      const engine = createEngine(model);
      const ctx = model.architecture.contextLength;
      const ids = await sampledCalibrationIds(engine, model.tokenizer, ctx, { sequences: 3, seqLen: 48, seed: 77 });
      expect(ids.length).toBe(3 * 48);
      for (let q = 0; q < 3; q++) {
        const row = Array.from(ids.subarray(q * 48, (q + 1) * 48));
        expect(row[0]).toBe(model.tokenizer.bosId);
        for (const id of row) expect(id >= 0 && id < model.architecture.vocabSize).toBe(true);
        // Row q is what generation from BOS at temperature 1 with seed 77 + q gives, end tokens included.
        const r = await generate(engine, model.tokenizer, [model.tokenizer.bosId!], ctx, { maxTokens: 47, temperature: 1, topP: 1, seed: 77 + q, stopIds: [] });
        expect(row.slice(1)).toEqual(r.ids);
      }
      expect(Array.from(ids.subarray(0, 48))).not.toEqual(Array.from(ids.subarray(48, 96)));
      const again = await sampledCalibrationIds(engine, model.tokenizer, ctx, { sequences: 3, seqLen: 48, seed: 77 });
      expect(Buffer.from(again.buffer).equals(Buffer.from(ids.buffer))).toBe(true);
      const other = await sampledCalibrationIds(engine, model.tokenizer, ctx, { sequences: 1, seqLen: 48, seed: 78 });
      expect(Array.from(other)).toEqual(Array.from(ids.subarray(48, 96)));
      // The model's own text reads as stories: most sampled tokens decode to letters and spaces.
      const text = model.tokenizer.decode(Array.from(ids.subarray(1, 48)));
      expect(text.replace(/[^A-Za-z ]/g, '').length / text.length).toBeGreaterThan(0.7);
    } finally {
      model.close();
    }
  }, 60_000);
});

describe('quantizing with no calibration text and no default file', () => {
  it('calibrates on model-sampled sequences, says so (warning, estimate, run record) and the output loads', async () => {
    process.env.QUIP_DEFAULT_CALIB_TEXT = ABSENT;
    const out = path.join(root, 'sampled-2bit');
    const events: QuantizeEvent[] = [];
    let printed = '';
    const render = terminalRenderer({ write: (t) => (printed += t), isTTY: false });
    const settings = resolveSettings({ bits: 2, calibSamples: 4, calibCtx: 64, seed: 5 });
    expect(settings.calibration.textFile).toBeNull();
    const r = await runQuantizeJob({ model: STORIES, out, settings, evaluation: null, onEvent: (e) => (events.push(QuantizeEvent.parse(e)), render(e)) });
    const source = `model-sampled, seed ${calibrationSampleSeed(5)}`;
    expect(events.find((e) => e.type === 'estimate')).toMatchObject({ calibrationSource: source });
    const warning = events.find((e) => e.type === 'warning' && /sampled from the model/.test(e.message));
    expect(warning).toBeDefined();
    expect((warning as { message: string }).message).toContain(ABSENT);
    expect(printed).toContain(`Calibration: 4 sequences x 64 tokens from ${source} = 256 tokens`);
    expect(r.record.calibrationSource).toBe(source);
    const onDisk = RunRecord.parse(JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8')));
    expect(onDisk.calibrationSource).toBe(source);

    const loaded = await loadModel(out);
    try {
      expect(loaded.quantization?.codebook).toBe('e8p');
      const ids = loaded.tokenizer.encode('Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.');
      const ppl = await evaluatePerplexity(createEngine(loaded), [Int32Array.from(ids)], { ctx: ids.length });
      expect(Number.isFinite(ppl.ppl)).toBe(true);
      expect(ppl.ppl).toBeLessThan(100);
    } finally {
      loaded.close();
    }
  }, 180_000);

  it('an explicit --calib-text that is missing stays an error naming the file', async () => {
    process.env.QUIP_DEFAULT_CALIB_TEXT = ABSENT;
    const missing = path.join(root, 'not-there.txt');
    const settings = resolveSettings({ bits: 2, calibSamples: 4, calibCtx: 64, calibTextFile: missing });
    await expect(runQuantizeJob({ model: STORIES, out: path.join(root, 'never'), settings, evaluation: null })).rejects.toThrow(`The calibration text ${missing} does not exist`);
  }, 60_000);
});

describe('bits per weight', () => {
  const layer: QuantizedLayerRecord = {
    m: 64, n: 172, nPadded: 176, seed: 1, scale: 1, residualScale: null,
    hadamardIn: { n: 172, k: 43, pow2: 4, method: 'random-orthogonal' },
    hadamardOut: { n: 64, k: 1, pow2: 64, method: 'sylvester' },
    tensors: { codes: 'w.codes', codesResidual: null, su: 'w.su', sv: 'w.sv' },
  };

  it('counts sign vectors at their stored dtype: 8 bits per entry as I8, 32 as F32', () => {
    const codes = 64 * 176 * 2, scale = 32;
    expect(layerBits(layer, 'e8p', () => 'I8')).toBe(codes + (172 + 64) * 8 + scale);
    expect(layerBits(layer, 'e8p', () => 'F32')).toBe(codes + (172 + 64) * 32 + scale);
    expect(layerBits({ ...layer, tensors: { ...layer.tensors, su: null, sv: null } }, 'e8p', () => 'F32')).toBe(codes + scale);
  });

  it('quip compare reads the dtype from the folder: a fine-tuned folder (F32 signs) reports 24 more bits per sign entry', async () => {
    const rows = [];
    for (const dtype of ['I8', 'F32'] as const) {
      const dir = path.join(root, `signs-${dtype}`);
      mkdirSync(dir, { recursive: true });
      const name = 'model.layers.0.mlp.down_proj';
      const rec = { ...layer, tensors: { codes: `${name}.codes`, codesResidual: null, su: `${name}.su`, sv: `${name}.sv` } };
      const signs = (n: number): TensorToWrite => ({ name: '', dtype, shape: [n], source: { bytes: dtype === 'I8' ? new Uint8Array(n).fill(1) : bytesOf(new Float32Array(n).fill(0.5)) } });
      await writeSafetensors(path.join(dir, 'model.safetensors'), [
        { name: rec.tensors.codes, dtype: 'U16', shape: [64, 22], source: { bytes: bytesOf(new Uint16Array(64 * 22)) } },
        { ...signs(172), name: rec.tensors.su },
        { ...signs(64), name: rec.tensors.sv },
      ]);
      const qconfig = {
        quant_method: QUANT_METHOD, format_version: FORMAT_VERSION, engine: { name: 'quip-studio', version: '0.1.0' }, codebook: 'e8p', bits: 2,
        incoherence: true, ldlq: true, sigma: 0.01, rho: 1.03, tune_iters: 0, seed: 0, calibration: { textFile: null, samples: 4, ctx: 64 },
        hessian: 'damped-normalised', layers: { [name]: rec },
      };
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', quantization_config: qconfig }));
      rows.push(compareRow(dir));
    }
    expect(rows[0].bitsPerWeight).toBeCloseTo((64 * 176 * 2 + (172 + 64) * 8 + 32) / (64 * 172), 12);
    expect(rows[1].bitsPerWeight - rows[0].bitsPerWeight).toBeCloseTo(((172 + 64) * 24) / (64 * 172), 12);
  });
});
