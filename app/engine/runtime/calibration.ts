// Calibration settings and token sequences for Hessian collection: N sequences of L tokens cut from
// the calibration text (the user's file or WikiText-2 validation), each starting with BOS when the
// tokenizer adds it. The native EngineCalibration then walks the model block by block.
import path from 'node:path';

import { projectRoot } from '../../util/paths.js';
import { UserError } from '../../util/errors.js';
import type { ModelTokenizer } from '../model/index.js';
import { setEngineThreads } from './engine.js';
import type { BlockHessians, EngineCalibration, EngineModel } from './native-types.js';
import { readEvalText } from './perplexity.js';

export interface CalibrationSettings {
  /** A text file; default WikiText-2 validation. */
  textFile?: string;
  sequences: number;
  seqLen: number;
  /** Threads for the native work (the process-wide pool); default: leave the pool as it is. */
  threads?: number;
}

/** ../shared/data/wikitext-2-raw/wiki.valid.raw beside the project. */
export function defaultCalibrationText(): string {
  return path.join(projectRoot(), '..', 'shared', 'data', 'wikitext-2-raw', 'wiki.valid.raw');
}

/** sequences x seqLen ids (row-major), consecutive non-overlapping pieces of the text. */
export function calibrationIds(tokenizer: Pick<ModelTokenizer, 'encode' | 'addBos' | 'bosId'>, s: CalibrationSettings): Int32Array {
  if (!Number.isInteger(s.sequences) || s.sequences < 1) throw new UserError(`calibration sequences must be a whole number >= 1, got ${s.sequences}`, 'BAD_SETTING');
  if (!Number.isInteger(s.seqLen) || s.seqLen < 2) throw new UserError(`calibration sequence length must be a whole number >= 2, got ${s.seqLen}`, 'BAD_SETTING');
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
