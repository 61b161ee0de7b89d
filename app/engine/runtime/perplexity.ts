// Perplexity with the usual convention: the text's rows (lines) joined by blank lines ("\n\n"),
// tokenized once, cut into non-overlapping windows of `ctx` tokens; when the tokenizer adds BOS, each
// window is BOS + ctx - 1 text tokens. Within a window every token after the first is scored, so
// ppl = exp(sum of -log p / tokens scored).
import { readFileSync } from 'node:fs';

import { perplexitySpread } from '../../domain/quantize/evaluation.js';
import { UserError } from '../../util/errors.js';
import type { LoadedModel, ModelTokenizer } from '../model/index.js';
import { createEngine } from './native-model.js';
import type { EngineModel, EngineSession } from './native-types.js';

export interface PerplexityOptions {
  ctx: number;
  /**
   * Score every token from a one-token forward, as generation decodes, instead of the batched
   * (prefill) forward: on CPUs whose quantized decode kernels round x to int8 (AVX-512) the two
   * differ slightly, and this measures what chat sees. Slower.
   */
  decodePath?: boolean;
  /** Score at most this many windows (from the start of the text). */
  maxWindows?: number;
  onProgress?: (p: { window: number; windows: number; tokensScored: number; ppl: number }) => void;
  cancel?: Int32Array;
}

export interface PerplexityResult {
  ppl: number;
  nll: number;
  tokensScored: number;
  windows: number;
  /** Mean NLL per scored token of each window (nats), in order: their spread is the figure's. */
  windowNll: number[];
  /** Standard error of the mean of windowNll (nats; null with one window): ppl +- ppl * stdErr. */
  stdErr: number | null;
  ctx: number;
  seconds: number;
  tokensPerSecond: number;
}

/** Rows of a text file joined by "\n\n" (the WikiText convention). */
export function readEvalText(file: string): string {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`Cannot read the evaluation text ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Give a readable UTF-8 text file.`, 'BAD_TEXT');
  }
  const rows = raw.split('\n');
  if (rows.at(-1) === '') rows.pop();
  const text = rows.join('\n\n');
  if (!text.trim()) throw new UserError(`The evaluation text ${file} is empty.`, 'BAD_TEXT');
  return text;
}

/** Token windows for perplexity: at most maxWindows, each exactly ctx tokens long. */
export function perplexityWindows(tokenizer: Pick<ModelTokenizer, 'encode' | 'addBos' | 'bosId'>, text: string, ctx: number, maxWindows?: number): Int32Array[] {
  if (!Number.isInteger(ctx) || ctx < 2) throw new UserError(`--ctx must be a whole number >= 2, got ${ctx}`, 'BAD_SETTING');
  if (maxWindows !== undefined && (!Number.isInteger(maxWindows) || maxWindows < 1)) {
    throw new UserError(`--max-windows must be a whole number >= 1, got ${maxWindows}`, 'BAD_SETTING');
  }
  const bos = tokenizer.addBos && tokenizer.bosId !== null ? tokenizer.bosId : null;
  const per = bos === null ? ctx : ctx - 1;
  // Tokenize only as much text as the windows need (a generous character budget, grown if short):
  // the cut lands at a row boundary, and only whole windows before it are used.
  let ids: number[] = [];
  let budget = maxWindows === undefined ? Infinity : per * maxWindows * 8 + 4096;
  for (;;) {
    let part = text;
    if (budget < text.length) {
      const cut = text.lastIndexOf('\n\n', budget);
      part = text.slice(0, cut > 0 ? cut : budget);
    }
    ids = tokenizer.encode(part, { addBos: false });
    const complete = part.length === text.length;
    // Tokens at the very end of a partial text may merge differently with what follows: drop a margin.
    const usable = complete ? ids.length : Math.max(0, ids.length - 64);
    if (complete || usable >= per * (maxWindows ?? Infinity)) {
      ids = ids.slice(0, usable);
      break;
    }
    budget *= 2;
  }
  const windows: Int32Array[] = [];
  for (let at = 0; at + per <= ids.length; at += per) {
    if (maxWindows !== undefined && windows.length >= maxWindows) break;
    const w = new Int32Array(ctx);
    const body = ids.slice(at, at + per);
    if (bos === null) w.set(body);
    else {
      w[0] = bos;
      w.set(body, 1);
    }
    windows.push(w);
  }
  if (windows.length === 0) {
    throw new UserError(`The text has ${ids.length} tokens, fewer than one window of --ctx ${ctx}; use a longer text or a smaller --ctx.`, 'BAD_TEXT');
  }
  return windows;
}

/** -log softmax(row)[target] in float64. */
export function negLogSoftmax(row: Float32Array, target: number): number {
  let max = -Infinity;
  for (let j = 0; j < row.length; j++) if (row[j] > max) max = row[j];
  let sum = 0;
  for (let j = 0; j < row.length; j++) sum += Math.exp(row[j] - max);
  return Math.log(sum) - (row[target] - max);
}

/**
 * One window through the decode path: window[0 .. first) is prefilled, then each position p in
 * first .. ctx-2 runs as a one-token forward whose logits score window[p + 1].
 */
export async function scoreTokenByToken(session: EngineSession, window: Int32Array, first: number, cancel?: Int32Array): Promise<{ nll: number; count: number }> {
  session.reset();
  if (first > 0) await session.forward(window.subarray(0, first), false, undefined, cancel);
  let nll = 0;
  let count = 0;
  for (let p = first; p < window.length - 1; p++) {
    nll += negLogSoftmax(await session.forward(window.subarray(p, p + 1), false, undefined, cancel), window[p + 1]);
    count++;
  }
  return { nll, count };
}

/** Scores the windows with one session (reset per window); off the JS thread, cancellable. */
export async function evaluatePerplexity(engine: EngineModel, windows: Int32Array[], o: PerplexityOptions): Promise<PerplexityResult> {
  const session = engine.createSession(o.ctx);
  const t0 = process.hrtime.bigint();
  let nll = 0;
  let scored = 0;
  const windowNll: number[] = [];
  for (let i = 0; i < windows.length; i++) {
    const r = o.decodePath
      ? await scoreTokenByToken(session, windows[i], 0, o.cancel)
      : await session.score(windows[i], undefined, o.cancel);
    nll += r.nll;
    scored += r.count;
    windowNll.push(r.count ? r.nll / r.count : 0);
    o.onProgress?.({ window: i + 1, windows: windows.length, tokensScored: scored, ppl: Math.exp(nll / scored) });
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const tokens = windows.reduce((a, w) => a + w.length, 0);
  return { ppl: Math.exp(nll / scored), nll, tokensScored: scored, windows: windows.length, windowNll, stdErr: perplexitySpread(windowNll).stdErr, ctx: o.ctx, seconds, tokensPerSecond: tokens / seconds };
}

/**
 * Perplexity of a loaded model on a text file, in one call (the quantization job and the studio use
 * this): windows from the file, a native model over the folder's weights, scored off the JS thread.
 */
export async function evaluateModelPerplexity(
  model: Pick<LoadedModel, 'architecture' | 'tensor' | 'tensorNames' | 'tokenizer'>,
  textFile: string,
  o: Omit<PerplexityOptions, 'ctx'> & { ctx?: number; engine?: EngineModel },
): Promise<PerplexityResult> {
  const ctx = o.ctx ?? Math.min(512, model.architecture.contextLength);
  if (ctx > model.architecture.contextLength) {
    throw new UserError(`ctx ${ctx} is longer than the model's context (${model.architecture.contextLength} tokens)`, 'BAD_SETTING');
  }
  const windows = perplexityWindows(model.tokenizer, readEvalText(textFile), ctx, o.maxWindows);
  return evaluatePerplexity(o.engine ?? createEngine(model), windows, { ...o, ctx });
}
