// Token by token: at every position of one text, each model's next-token distribution against a base
// (16-bit) model's: KL(P_base || P_model) over the full vocabulary in llama.cpp's --kl-divergence
// convention (kl-divergence.ts kldRow over the base row quantized as llama.cpp stores it), with both
// models' five likeliest tokens. Compare's "Token by token" card shades each token by it.
// The text is tokenized once (BOS in front where the model adds it) and run in one sequence through
// every model side by side, LOGIT_ROWS positions at a time; position i's distribution predicts token
// i + 1, so token t is shaded by the figure of position t - 1 (the first token, where no BOS precedes
// it, by none).
import type { ModelTokenizer } from '../model/index.js';
import { kldRow, quantizeBaseLogProbs } from './kl-divergence.js';
import type { EngineModel } from './native-types.js';

const LOGIT_ROWS = 128;
export const TOP_K = 5;

export interface TopToken {
  text: string;
  p: number;
}

export interface TokenKldRun {
  kld: Array<number | null>;
  top: Array<TopToken[] | null>;
  meanKld: number;
  sameTop: number;
}

export interface TokenKldResult {
  /** The scored tokens' text (BOS left out). */
  tokens: string[];
  /** The token ids of the sequence run (BOS included where added). */
  ids: Int32Array;
  /** Whether ids[0] is a BOS that tokens leave out. */
  bos: boolean;
  baseTop: Array<TopToken[] | null>;
  runs: TokenKldRun[];
  truncated: boolean;
  seconds: number;
}

/** A token's own text: decode([id]) with the leading space SentencePiece and byte-level BPE mark. */
export function tokenPiece(tokenizer: Pick<ModelTokenizer, 'decode' | 'idToToken'>, id: number): string {
  const text = tokenizer.decode([id]);
  const raw = tokenizer.idToToken(id) ?? '';
  if ((raw.startsWith('\u2581') || raw.startsWith('\u0120')) && !text.startsWith(' ')) return ` ${text}`;
  if (text === '' && /^<0x([0-9A-Fa-f]{2})>$/.test(raw)) return String.fromCharCode(parseInt(raw.slice(3, 5), 16));
  return text;
}

/**
 * The text of each of `ids` such that joined they read as decode(ids): the growth of the decoded
 * prefix at each token (a token that ends inside a multi-byte character gives "" and the next one the
 * whole character), falling back to the token's own text where the prefix does not grow by appending.
 */
export function tokenPieces(tokenizer: Pick<ModelTokenizer, 'decode' | 'idToToken'>, ids: readonly number[]): string[] {
  const out: string[] = [];
  let prev = '';
  for (let i = 0; i < ids.length; i++) {
    const now = tokenizer.decode(ids.slice(0, i + 1));
    if (now.startsWith(prev) && !now.endsWith('\uFFFD')) {
      out.push(now.slice(prev.length));
      prev = now;
    } else if (now.endsWith('\uFFFD')) {
      out.push('');
    } else {
      out.push(tokenPiece(tokenizer, ids[i]));
      prev = now;
    }
  }
  return out;
}

/** The k likeliest tokens of one row of logits, with their probabilities (softmax in float64). */
export function topTokens(logits: Float32Array, k: number, piece: (id: number) => string): TopToken[] {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i] - max);
  const best: number[] = [];
  for (let i = 0; i < n; i++) {
    if (best.length < k || logits[i] > logits[best[best.length - 1]]) {
      let at = best.length;
      while (at > 0 && logits[i] > logits[best[at - 1]]) at--;
      best.splice(at, 0, i);
      if (best.length > k) best.pop();
    }
  }
  return best.map((id) => ({ text: piece(id), p: Math.exp(logits[id] - max) / sum }));
}

export interface TokenKldOptions {
  tokenizer: Pick<ModelTokenizer, 'encode' | 'decode' | 'idToToken' | 'addBos' | 'bosId'>;
  vocab: number;
  /** At most this many tokens of the text are scored (BOS not counted). */
  maxTokens: number;
  cancel?: Int32Array;
}

/** Each model against the base, token by token over `text` (see the top of this file). */
export async function tokenKld(base: EngineModel, models: EngineModel[], text: string, o: TokenKldOptions): Promise<TokenKldResult> {
  const t0 = performance.now();
  const bos = o.tokenizer.addBos && o.tokenizer.bosId !== null;
  const all = o.tokenizer.encode(text, { addBos: bos });
  const limit = o.maxTokens + (bos ? 1 : 0);
  const ids = Int32Array.from(all.slice(0, limit));
  const truncated = all.length > limit;
  const n = ids.length;
  const first = bos ? 1 : 0;
  const scored = Array.from(ids.subarray(first));
  const tokens = tokenPieces(o.tokenizer, scored);
  const piece = (id: number) => tokenPiece(o.tokenizer, id);
  // Token t (of ids) is predicted by position t - 1: rows 0 .. n-2 are compared.
  const baseTop: Array<TopToken[] | null> = Array.from({ length: n - first }, () => null);
  const runs: TokenKldRun[] = models.map(() => ({ kld: Array.from({ length: n - first }, () => null), top: Array.from({ length: n - first }, () => null), meanKld: 0, sameTop: 0 }));
  const vocab = o.vocab;
  const scratch = new Uint16Array(vocab);
  const baseSession = base.createSession(Math.max(2, n));
  const sessions = models.map((m) => m.createSession(Math.max(2, n)));
  let count = 0;
  const same = models.map(() => 0);
  const sums = models.map(() => 0);
  for (let at = 0; at < n - 1; at += LOGIT_ROWS) {
    const end = Math.min(n - 1, at + LOGIT_ROWS);
    const chunk = ids.subarray(at, end);
    const bl = await baseSession.forward(chunk, true, undefined, o.cancel);
    const ml: Float32Array[] = [];
    for (const s of sessions) ml.push(await s.forward(chunk, true, undefined, o.cancel));
    for (let p = at; p < end; p++) {
      const r = (p - at) * vocab;
      const baseRow = bl.subarray(r, r + vocab);
      const token = p + 1 - first; // the token of `tokens` this position predicts
      if (token < 0) continue;
      baseTop[token] = topTokens(baseRow, TOP_K, piece);
      const q = quantizeBaseLogProbs(baseRow, scratch);
      models.forEach((_m, j) => {
        const row = ml[j].subarray(r, r + vocab);
        const k = kldRow(row, q);
        runs[j].kld[token] = k.kld;
        runs[j].top[token] = topTokens(row, TOP_K, piece);
        sums[j] += k.kld;
        if (k.sameTop) same[j]++;
      });
      count++;
    }
  }
  runs.forEach((r, j) => {
    r.meanKld = count ? sums[j] / count : 0;
    r.sameTop = count ? same[j] / count : 0;
  });
  return { tokens, ids, bos, baseTop, runs, truncated, seconds: (performance.now() - t0) / 1000 };
}
