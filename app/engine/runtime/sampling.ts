// Token sampling: greedy at temperature 0, otherwise softmax(logits / T) restricted to the smallest
// set of tokens whose probability reaches top-p (nucleus sampling), drawn with a seeded RNG that gives
// the same stream on every platform.

/** mulberry32: a 32-bit generator with integer-only state updates, so JS engines agree bit for bit. */
export class SeededRng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export interface SamplingOptions {
  /** 0 = greedy (argmax). */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 keeps every token. */
  topP: number;
}

/** Index of the largest logit (the first one on ties). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

export function validateSampling(o: SamplingOptions): void {
  if (!(o.temperature >= 0) || !Number.isFinite(o.temperature)) throw new Error(`temperature must be a number >= 0, got ${o.temperature}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new Error(`top-p must be in (0, 1], got ${o.topP}`);
}

export function sampleToken(logits: Float32Array, o: SamplingOptions, rng: SeededRng): number {
  if (o.temperature === 0) return argmax(logits);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const probs = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += probs[i] = Math.exp((logits[i] - max) / o.temperature);
  // The nucleus is the shortest prefix of the tokens ordered by probability (ties by id) whose mass
  // reaches topP. It lies within {p >= t} for any t where that set's mass already reaches topP, so
  // only that set is sorted (halving t until it qualifies), not the whole vocabulary.
  let threshold = 1;
  let candidates: number[] = [];
  for (;;) {
    candidates = [];
    let m = 0;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i] >= threshold) {
        candidates.push(i);
        m += probs[i];
      }
    }
    if (m >= o.topP * sum || threshold === 0) break;
    threshold = threshold < 1e-300 ? 0 : threshold / 16;
  }
  const order = candidates.sort((a, b) => probs[b] - probs[a] || a - b);
  let kept = 0;
  let mass = 0;
  while (kept < order.length && (kept === 0 || mass < o.topP * sum)) mass += probs[order[kept++]];
  let u = rng.next() * mass;
  for (let i = 0; i < kept; i++) {
    u -= probs[order[i]];
    if (u < 0) return order[i];
  }
  return order[kept - 1];
}
