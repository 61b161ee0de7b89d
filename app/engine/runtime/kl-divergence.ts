// KL divergence of a model against a base (16-bit) model, in llama.cpp's `llama-perplexity
// --kl-divergence` convention, so the figures line up with theirs one to one:
//  - the same windows as perplexity-llamacpp.ts; for each scored token of the second half of each
//    window, KL(P_base || P_model) over the full vocabulary;
//  - the base's distribution is what `--kl-divergence-base` stores: per row, log-probabilities
//    quantized to uint16 on [max(min logit, max logit - 16), max logit] (scale = range / 65535,
//    offset = the log-probability of the range's low end); entries at or below the low end read as
//    that low end, and only entries above -16 in log-probability add to the sum:
//      KLD = sum_{i: log p_b(i) > -16} p_b(i) (log p_b(i) - log p_q(i));
//  - "Same top p": the share of positions where the model's argmax (first maximum of its logits)
//    equals the base's (first maximum of the quantized base log-probabilities);
//  - mean and +-: llama.cpp's mean_and_uncertainty (sqrt(var / (n - 1)), 0 for n <= 10), the top
//    agreement's +- sqrt(p (1 - p) / (n - 1)).
// Both models run side by side, window by window: the base's logits are never written to disk.
// The model's perplexity is computed as perplexity-llamacpp.ts does (float64 -log softmax), the base's
// from its exact logits too (llama.cpp's "PPL(base)" reads the uint16 copy; they differ by < 1e-4).
import type { EngineModel, EngineSession } from './native-types.js';
import { negLogSoftmax } from './perplexity.js';

// Second-half logits are requested this many positions at a time (memory: 2 x rows x vocab floats).
const LOGIT_ROWS = 128;
/** llama.cpp keeps 16 nats of the base's log-probability range per row. */
const RANGE = 16;

/** One row of base log-probabilities as llama.cpp's `--kl-divergence-base` file stores it. */
export interface QuantizedLogProbs {
  scale: number;
  minLogProb: number;
  q: Uint16Array;
}

/** The base row's log-probabilities, quantized as llama.cpp stores them (float32 arithmetic kept). */
export function quantizeBaseLogProbs(logits: Float32Array, out?: Uint16Array): QuantizedLogProbs {
  const f = Math.fround;
  const n = logits.length;
  let max = logits[0], min = logits[0];
  for (let i = 1; i < n; i++) {
    if (logits[i] > max) max = logits[i];
    if (logits[i] < min) min = logits[i];
  }
  min = Math.max(min, f(max - RANGE));
  let sum = 0;
  for (let i = 0; i < n; i++) sum += f(Math.exp(f(logits[i] - max)));
  const logSum = f(Math.log(sum));
  const minLogProb = f(f(min - max) - logSum);
  const scale = f(f(max - min) / 65535);
  const q = out ?? new Uint16Array(n);
  if (scale) {
    const inv = f(1 / scale);
    for (let i = 0; i < n; i++) q[i] = logits[i] > min ? Math.min(65535, Math.round(f(inv * f(logits[i] - min)))) : 0;
  } else q.fill(0);
  return { scale, minLogProb, q };
}

/** KL(P_base || P_model) of one position in llama.cpp's convention, and whether the top tokens agree. */
export function kldRow(logits: Float32Array, base: QuantizedLogProbs): { kld: number; sameTop: boolean } {
  const f = Math.fround;
  const n = logits.length;
  let max = logits[0], imax = 0;
  for (let i = 1; i < n; i++) if (logits[i] > max) (max = logits[i]), (imax = i);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += f(Math.exp(f(logits[i] - max)));
  const lse = f(max + f(Math.log(sum)));
  let kld = 0;
  let imaxBase = 0, baseMax = -Infinity;
  for (let i = 0; i < n; i++) {
    const lpBase = f(f(base.scale * base.q[i]) + base.minLogProb);
    if (i === 0 || lpBase > baseMax) (baseMax = lpBase), (imaxBase = i);
    if (lpBase > -RANGE) kld += Math.exp(lpBase) * (lpBase - logits[i] + lse);
  }
  return { kld, sameTop: imax === imaxBase };
}

/** llama.cpp's mean and its uncertainty (standard error, 0 with 10 values or fewer). */
export function meanAndUncertainty(sum: number, sum2: number, count: number): [number, number] {
  if (count < 1) return [0, 0];
  const mean = sum / count;
  const v = sum2 / count - mean * mean;
  return [mean, v > 0 && count > 10 ? Math.sqrt(v / (count - 1)) : 0];
}

export interface KlDivergenceResult {
  /** Mean KL(P_base || P_model) per scored token (nats), and its +-. */
  kld: number;
  kldPlusMinus: number;
  /** Share of scored positions where both models' top token is the same, and its +-. */
  sameTop: number;
  sameTopPlusMinus: number;
  /** Largest and median KLD of one position. */
  kldMax: number;
  kldMedian: number;
  ppl: number;
  basePpl: number;
  tokensScored: number;
  windows: number;
  ctx: number;
  seconds: number;
}

export interface KlDivergenceOptions {
  ctx: number;
  cancel?: Int32Array;
  onProgress?: (p: { window: number; windows: number; tokensScored: number; kld: number; ppl: number; basePpl: number }) => void;
}

/** Running sums over scored positions. */
class KldSums {
  kld = 0;
  kld2 = 0;
  same = 0;
  nll = 0;
  nllBase = 0;
  count = 0;
  values: number[] = [];
  add(modelRow: Float32Array, baseRow: Float32Array, target: number, scratch: Uint16Array): void {
    const r = kldRow(modelRow, quantizeBaseLogProbs(baseRow, scratch));
    this.kld += r.kld;
    this.kld2 += r.kld * r.kld;
    if (r.sameTop) this.same++;
    this.nll += negLogSoftmax(modelRow, target);
    this.nllBase += negLogSoftmax(baseRow, target);
    this.count++;
    this.values.push(r.kld);
  }
}

async function prefill(session: EngineSession, ids: Int32Array, cancel?: Int32Array): Promise<void> {
  session.reset();
  await session.forward(ids, false, undefined, cancel);
}

/**
 * KL divergence of `model` against `base` on llama.cpp-convention windows: both run the same window,
 * the first half fills each cache, the second half's logits are compared position by position.
 */
export async function evaluateKlDivergenceLlamaCpp(
  model: EngineModel,
  base: EngineModel,
  windows: Int32Array[],
  vocab: number,
  o: KlDivergenceOptions,
): Promise<KlDivergenceResult> {
  const s = model.createSession(o.ctx);
  const b = base.createSession(o.ctx);
  const t0 = process.hrtime.bigint();
  const sums = new KldSums();
  const scratch = new Uint16Array(vocab);
  for (let w = 0; w < windows.length; w++) {
    const window = windows[w];
    const ctx = window.length;
    const first = ctx >> 1;
    await prefill(s, window.subarray(0, first), o.cancel);
    await prefill(b, window.subarray(0, first), o.cancel);
    for (let at = first; at < ctx - 1; at += LOGIT_ROWS) {
      const end = Math.min(ctx - 1, at + LOGIT_ROWS);
      const ml = await s.forward(window.subarray(at, end), true, undefined, o.cancel);
      const bl = await b.forward(window.subarray(at, end), true, undefined, o.cancel);
      for (let p = at; p < end; p++) {
        const r = (p - at) * vocab;
        sums.add(ml.subarray(r, r + vocab), bl.subarray(r, r + vocab), window[p + 1], scratch);
      }
    }
    o.onProgress?.({
      window: w + 1, windows: windows.length, tokensScored: sums.count, kld: sums.kld / sums.count,
      ppl: Math.exp(sums.nll / sums.count), basePpl: Math.exp(sums.nllBase / sums.count),
    });
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return klResult(sums, windows.length, o.ctx, seconds);
}

function klResult(sums: KldSums, windows: number, ctx: number, seconds: number): KlDivergenceResult {
  const [kld, kldPlusMinus] = meanAndUncertainty(sums.kld, sums.kld2, sums.count);
  const p = sums.count ? sums.same / sums.count : 0;
  const sorted = Float64Array.from(sums.values).sort();
  const n = sorted.length;
  return {
    kld,
    kldPlusMinus,
    sameTop: p,
    sameTopPlusMinus: n > 1 ? Math.sqrt((p * (1 - p)) / (n - 1)) : 0,
    kldMax: n ? sorted[n - 1] : 0,
    kldMedian: n ? (n % 2 ? sorted[n >> 1] : 0.5 * (sorted[n / 2] + sorted[n / 2 - 1])) : 0,
    ppl: Math.exp(sums.nll / sums.count),
    basePpl: Math.exp(sums.nllBase / sums.count),
    tokensScored: sums.count,
    windows,
    ctx,
    seconds,
  };
}
