// Calibration settings and token sequences for Hessian collection: N sequences of L tokens cut from
// the calibration text (the user's file, else WikiText-2 validation shipped in assets/wikitext-2-raw),
// each starting with BOS when the tokenizer adds it, or - where no text was given and the default
// text is missing (a damaged install, or QUIP_DEFAULT_CALIB_TEXT naming an absent file) - N sequences
// the model itself samples from BOS (model-generated calibration data). The native EngineCalibration
// then walks the model block by block.
import { existsSync } from 'node:fs';
import path from 'node:path';

import { shippedText } from '../../util/paths.js';
import { UserError } from '../../util/errors.js';
import type { ModelTokenizer } from '../model/index.js';
import { setEngineThreads } from './native-model.js';
import { generate } from './generation.js';
import type { BlockHessians, EngineCalibration, EngineModel } from './native-types.js';
import { readEvalText } from './perplexity.js';

export interface CalibrationSettings {
  /** A text file; default: defaultCalibrationText(). */
  textFile?: string;
  sequences: number;
  seqLen: number;
  /** Threads for the native work (the process-wide pool); default: leave the pool as it is. */
  threads?: number;
}

/** QUIP_DEFAULT_CALIB_TEXT when set (tests), else WikiText-2 validation shipped with the studio. */
export function defaultCalibrationText(): string {
  const override = process.env.QUIP_DEFAULT_CALIB_TEXT;
  if (override) return path.resolve(override);
  return shippedText('calibration');
}

/** Where calibration tokens come from: a text file, or sequences sampled from the model. */
export type CalibrationSource = { kind: 'file'; file: string } | { kind: 'model-sampled'; seed: number };

/** The sampling seed of a run: fixed by the run seed, apart from the per-layer seeds it also feeds. */
export function calibrationSampleSeed(runSeed: number): number {
  return (Math.imul((runSeed >>> 0) ^ 0x5ca1ab1e, 0x9e3779b1) >>> 0);
}

/**
 * An explicit file must exist (the error names it). Without one: the default text when it is there,
 * else model-sampled sequences seeded from the run seed.
 */
export function resolveCalibrationSource(textFile: string | null | undefined, runSeed: number): CalibrationSource {
  if (textFile) {
    if (!existsSync(textFile)) throw new UserError(`The calibration text ${textFile} does not exist. Choose a UTF-8 text file as the calibration text.`, 'BAD_TEXT');
    return { kind: 'file', file: textFile };
  }
  const file = defaultCalibrationText();
  return existsSync(file) ? { kind: 'file', file } : { kind: 'model-sampled', seed: calibrationSampleSeed(runSeed) };
}

/** "the file path" or "model-sampled, seed S" (the run record and the printed estimate). */
export function describeCalibrationSource(src: CalibrationSource): string {
  return src.kind === 'file' ? src.file : `model-sampled, seed ${src.seed}`;
}

/** The token every sampled sequence starts from: BOS, else the tokenizer's first token (id 0). */
export function samplingStartId(tokenizer: Pick<ModelTokenizer, 'bosId'>): number {
  return tokenizer.bosId ?? 0;
}

/**
 * sequences x seqLen ids (row-major), each row the start token and seqLen - 1 tokens sampled from
 * the model at temperature 1 (no nucleus cut), sequence q seeded with seed + q. End-of-sequence ids
 * do not stop a row: calibration needs full rows, and what a model writes after an end token is
 * still its own distribution (as in the packed streams it was trained on).
 */
export async function sampledCalibrationIds(
  engine: EngineModel,
  tokenizer: Pick<ModelTokenizer, 'decode' | 'eosIds' | 'bosId'>,
  contextLength: number,
  s: { sequences: number; seqLen: number; seed: number; cancel?: Int32Array; onSequence?: (done: number) => void },
): Promise<Int32Array> {
  checkShape(s);
  if (s.seqLen > contextLength) throw new UserError(`calibration sequences of ${s.seqLen} tokens exceed the model's context of ${contextLength}`, 'BAD_SETTING');
  const start = samplingStartId(tokenizer);
  const out = new Int32Array(s.sequences * s.seqLen);
  for (let q = 0; q < s.sequences; q++) {
    const r = await generate(engine, tokenizer, [start], contextLength, {
      maxTokens: s.seqLen - 1, temperature: 1, topP: 1, seed: (s.seed + q) >>> 0, stopIds: [], cancel: s.cancel, capacity: s.seqLen,
    });
    if (r.stopReason === 'cancelled') throw new UserError('Calibration sampling cancelled.', 'CANCELLED');
    const row = out.subarray(q * s.seqLen, (q + 1) * s.seqLen);
    row[0] = start;
    row.set(r.ids, 1);
    s.onSequence?.(q + 1);
  }
  return out;
}

function checkShape(s: { sequences: number; seqLen: number }): void {
  if (!Number.isInteger(s.sequences) || s.sequences < 1) throw new UserError(`calibration sequences must be a whole number >= 1, got ${s.sequences}`, 'BAD_SETTING');
  if (!Number.isInteger(s.seqLen) || s.seqLen < 2) throw new UserError(`calibration sequence length must be a whole number >= 2, got ${s.seqLen}`, 'BAD_SETTING');
}

/** sequences x seqLen ids (row-major), consecutive non-overlapping pieces of the text. */
export function calibrationIds(tokenizer: Pick<ModelTokenizer, 'encode' | 'addBos' | 'bosId'>, s: CalibrationSettings): Int32Array {
  checkShape(s);
  const file = s.textFile ?? defaultCalibrationText();
  const text = readEvalText(file);
  const bos = tokenizer.addBos && tokenizer.bosId !== null ? tokenizer.bosId : null;
  const per = bos === null ? s.seqLen : s.seqLen - 1;
  const need = per * s.sequences;
  // Tokenize a prefix that is long enough (about 4 characters per token, doubled until it is).
  let budget = need * 6 + 1024;
  let ids: number[];
  for (;;) {
    ids = tokenizer.encode(text.slice(0, budget), { addBos: false });
    if (ids.length >= need + 64 || budget >= text.length) break;
    budget *= 2;
  }
  if (ids.length < need) {
    throw new UserError(`${file} has ${ids.length} tokens; ${s.sequences} sequences of ${s.seqLen} need ${need}. Use fewer or shorter sequences, or a longer text.`, 'BAD_TEXT');
  }
  const out = new Int32Array(s.sequences * s.seqLen);
  for (let q = 0; q < s.sequences; q++) {
    const row = out.subarray(q * s.seqLen, (q + 1) * s.seqLen);
    const body = ids.slice(q * per, (q + 1) * per);
    if (bos === null) row.set(body);
    else {
      row[0] = bos;
      row.set(body, 1);
    }
  }
  return out;
}

/** Starts calibration at block 0 (hidden states = embeddings of the sequences). */
export function startCalibration(engine: EngineModel, tokenizer: Pick<ModelTokenizer, 'encode' | 'addBos' | 'bosId'>, s: CalibrationSettings): EngineCalibration {
  const ids = calibrationIds(tokenizer, s);
  if (s.threads !== undefined) setEngineThreads(s.threads);
  return engine.createCalibration(ids, s.sequences, s.seqLen);
}

/** H = sum / count (the spec's Hessian before damping), as a new array. */
export function hessianMean(h: { n: number; count: number; sum: Float64Array }): Float64Array {
  const out = new Float64Array(h.sum.length);
  for (let i = 0; i < out.length; i++) out[i] = h.sum[i] / h.count;
  return out;
}

/**
 * Walks every block: Hessians of block b (handed to onBlock, which may swap quantized linears into
 * block b of the native model), then the states advance through block b as it is now. Memory stays
 * at one block's activations plus one block's Hessians.
 */
export async function collectHessians(
  cal: EngineCalibration,
  numLayers: number,
  onBlock: (h: BlockHessians) => Promise<void> | void,
  o: { onProgress?: (json: string) => void; cancel?: Int32Array } = {},
): Promise<void> {
  while (cal.nextBlock < numLayers) {
    const h = await cal.hessians(o.onProgress, o.cancel);
    await onBlock(h);
    await cal.advance(o.onProgress, o.cancel);
  }
}
