// Perplexity exactly as llama.cpp's `llama-perplexity` computes it, so figures compare one to one:
//  - the file's text as it is (one trailing "\n" dropped, as llama.cpp's -f does), tokenized whole
//    with BOS in front when the model adds BOS;
//  - consecutive windows of ctx tokens, n = min(tokens / ctx, max windows); llama.cpp refuses texts
//    shorter than 2 * ctx tokens;
//  - each window's first token replaced by BOS when the model adds BOS;
//  - only the second half is scored: the logits at positions ctx/2 .. ctx-2 predict tokens
//    ctx/2 + 1 .. ctx-1 (ctx - ctx/2 - 1 tokens per window); ppl = exp(mean -log p).
import { readFileSync } from 'node:fs';

import { UserError } from '../../util/errors.js';
import type { ModelTokenizer } from '../model/index.js';
import type { EngineModel, EngineSession } from './native-types.js';
import { perplexitySpread } from '../../domain/quantize/evaluation.js';
import { negLogSoftmax, scoreTokenByToken, type PerplexityOptions, type PerplexityResult } from './perplexity.js';

export type PerplexityConvention = 'ours' | 'llama.cpp';
export const PERPLEXITY_CONVENTIONS: readonly PerplexityConvention[] = ['ours', 'llama.cpp'];

// Second-half logits are requested this many positions at a time (memory: rows x vocab floats).
const LOGIT_ROWS = 256;

/** The file's text as llama.cpp's `-f` reads it: bytes as they are, one trailing newline dropped. */
export function readLlamaCppText(file: string): string {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`Cannot read the evaluation text ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Give a readable UTF-8 text file.`, 'BAD_TEXT');
  }
  const text = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
  if (!text.trim()) throw new UserError(`The evaluation text ${file} is empty.`, 'BAD_TEXT');
  return text;
}

/**
 * llama.cpp's windows: ctx consecutive tokens of the whole text's tokenization (BOS first when the
 * model adds it), each window's first token replaced by BOS. Only as much text as the windows need is
 * tokenized: a prefix cut at a line break, with a margin dropped where its last tokens could merge
 * with what follows, which gives the same tokens as the whole text.
 */
export function llamaCppWindows(tokenizer: Pick<ModelTokenizer, 'encode' | 'addBos' | 'bosId'>, text: string, ctx: number, maxWindows?: number): Int32Array[] {
  if (!Number.isInteger(ctx) || ctx < 4) throw new UserError(`--ctx must be a whole number >= 4 for the llama.cpp convention, got ${ctx}`, 'BAD_SETTING');
  if (maxWindows !== undefined && (!Number.isInteger(maxWindows) || maxWindows < 1)) {
    throw new UserError(`--max-windows must be a whole number >= 1, got ${maxWindows}`, 'BAD_SETTING');
  }
  const bos = tokenizer.addBos && tokenizer.bosId !== null ? tokenizer.bosId : null;
  // llama.cpp needs 2 * ctx tokens even for one window.
  const needed = Math.max(2, maxWindows ?? Infinity) * ctx;
  let ids: number[] = [];
  let complete = false;
  let budget = Number.isFinite(needed) ? needed * 8 + 4096 : Infinity;
  for (;;) {
    let part = text;
    if (budget < text.length) {
      const cut = text.lastIndexOf('\n', budget);
      part = text.slice(0, cut > 0 ? cut : budget);
    }
    ids = tokenizer.encode(part, { addBos: bos !== null });
    complete = part.length === text.length;
    const usable = complete ? ids.length : Math.max(0, ids.length - 64);
    if (complete || usable >= needed) {
      ids = ids.slice(0, usable);
      break;
    }
    budget *= 2;
  }
  if (complete && ids.length < 2 * ctx) {
    throw new UserError(`The text has ${ids.length} tokens; llama.cpp's convention needs at least ${2 * ctx} (2 x --ctx ${ctx}). Use a longer text or a smaller --ctx.`, 'BAD_TEXT');
  }
  const count = Math.min(Math.floor(ids.length / ctx), maxWindows ?? Infinity);
  const windows: Int32Array[] = [];
  for (let i = 0; i < count; i++) {
    const w = Int32Array.from(ids.slice(i * ctx, (i + 1) * ctx));
    if (bos !== null) w[0] = bos;
    windows.push(w);
  }
  return windows;
}

/** One window: the first half fills the cache, the second half's logits score their next tokens. */
export async function scoreSecondHalf(session: EngineSession, window: Int32Array, vocab: number, cancel?: Int32Array): Promise<{ nll: number; count: number }> {
  const ctx = window.length;
  const first = ctx >> 1;
  session.reset();
  await session.forward(window.subarray(0, first), false, undefined, cancel);
  let nll = 0;
  let count = 0;
  // Positions first .. ctx-2 predict tokens first+1 .. ctx-1; the last token is never fed.
  for (let at = first; at < ctx - 1; at += LOGIT_ROWS) {
    const end = Math.min(ctx - 1, at + LOGIT_ROWS);
    const logits = await session.forward(window.subarray(at, end), true, undefined, cancel);
    for (let p = at; p < end; p++) {
      nll += negLogSoftmax(logits.subarray((p - at) * vocab, (p - at + 1) * vocab), window[p + 1]);
      count++;
    }
  }
  return { nll, count };
}

/** Scores llama.cpp-convention windows with one session; off the JS thread, cancellable. */
export async function evaluatePerplexityLlamaCpp(engine: EngineModel, windows: Int32Array[], vocab: number, o: PerplexityOptions): Promise<PerplexityResult> {
  const session = engine.createSession(o.ctx);
  const t0 = process.hrtime.bigint();
  let nll = 0;
  let scored = 0;
  const windowNll: number[] = [];
  for (let i = 0; i < windows.length; i++) {
    const r = o.decodePath
      ? await scoreTokenByToken(session, windows[i], windows[i].length >> 1, o.cancel)
      : await scoreSecondHalf(session, windows[i], vocab, o.cancel);
    nll += r.nll;
    scored += r.count;
    windowNll.push(r.count ? r.nll / r.count : 0);
    o.onProgress?.({ window: i + 1, windows: windows.length, tokensScored: scored, ppl: Math.exp(nll / scored) });
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const tokens = windows.reduce((a, w) => a + w.length - 1, 0);
  return { ppl: Math.exp(nll / scored), nll, tokensScored: scored, windows: windows.length, windowNll, stdErr: perplexitySpread(windowNll).stdErr, ctx: o.ctx, seconds, tokensPerSecond: tokens / seconds };
}
