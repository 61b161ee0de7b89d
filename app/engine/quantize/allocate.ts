// Per-layer bit widths for a target bits per weight (--target-bpw): each linear layer gets E8P 2-bit,
// RVQ 3-bit, RVQ 4-bit, or stays at 16 bits, so that the bits per linear weight (codes, sign vectors
// and scales, counted as `quip compare` counts them; embeddings, norms and lm_head are not linear
// layers and do not count) land at the target, spending bits where they lower the loss most.
//
// The loss of layer l at width w is   loss_l(w) = KLD_l x proxy_l(w) / proxy_l(2 bits):
//  - proxy_l(w): the layer's normalised proxy loss tr(dW H dW^T) / tr(W H W^T), measured by quantizing
//    it at every width against its Hessian from the 16-bit model's calibration states (one calibration
//    pass through the 16-bit model, three quantizations per layer);
//  - KLD_l: the layer's importance measured end to end: the mean KL divergence of the output
//    distribution from the 16-bit model's when that layer alone is quantized at 2 bits, on the first
//    calibration sequences (one forward per layer).
// Why this measure: the proxy loss weighs a layer's error by its own inputs only and cannot see how
// much of it reaches the output; on SmolLM2, v_proj carries 29% of the 4-bit perplexity gap with 3%
// of the weights (docs/quality-smollm2.md), which no per-layer proxy predicts. The KLD change is what
// the user's figure (perplexity, KLD) responds to, measured rather than modelled; it is one forward per
// layer, cheap next to quantization. The proxy-loss ratio carries it to 3 and 4 bits (the ratios are
// nearly constant across layers: about 3.1x per bit on SmolLM2), and to first order the KL divergences
// of small independent errors add, so the model's loss is the sum over layers.
// Allocation: a greedy knapsack over each layer's lower convex hull of (bits, loss), taking the step
// with the largest loss reduction per extra bit while it fits the budget, then filling what is left
// with the best single steps that still fit.
import { CODEBOOK_TABLE, codeBitsPerWeight, hasResidual, type Codebook, type QuantizeSettings } from '../../domain/quantize/index.js';
import type { LoadedModel } from '../model/index.js';
import { layerSeed } from '../model/quantized-format.js';
import { native } from '../native.js';
import { quantizeLinear } from '../quip/index.js';
import { createEngine } from '../runtime/native-model.js';
import type { BlockHessians, EngineLinearKind } from '../runtime/native-types.js';
import type { QuantizedLinearSpec } from '../runtime/qinfer-native-types.js';
import { LINEAR_KINDS, linearName } from '../runtime/quantized-model.js';
import { layerFromResult } from './qmodel.js';

/** How close to the target (bits per weight) the allocation lands when its finer steps run out. */
export const LAND_TOLERANCE = 0.01;

/** A layer's width: one of the lattice codebooks, or 16 bits (the layer left as it is). */
export type LayerWidth = 'e8p' | 'rvq3' | 'rvq4' | 'f16';
export const MIXED_CODEBOOKS = ['e8p', 'rvq3', 'rvq4'] as const satisfies readonly Codebook[];

const TAP_OF: Record<EngineLinearKind, keyof Omit<BlockHessians, 'block'>> = {
  q_proj: 'qkv', k_proj: 'qkv', v_proj: 'qkv', o_proj: 'o', gate_proj: 'gateUp', up_proj: 'gateUp', down_proj: 'down',
};

/** How the sign vectors will be stored: bytes per entry of SU (n) and SV (m); 1 for +-1 signs, 4 where
 * they are real numbers (row scales fold each row's RMS into SV; fine-tuning tunes both). */
export interface SignBytes {
  incoherence: boolean;
  su: number;
  sv: number;
}

/** Bits a layer takes at a width, as layerBits counts them once saved. */
export function widthBits(m: number, n: number, width: LayerWidth, o: SignBytes): number {
  if (width === 'f16') return m * n * 16;
  const nPadded = Math.ceil(n / 8) * 8;
  const signs = o.incoherence ? 8 * (n * o.su + m * o.sv) : 0;
  return m * nPadded * codeBitsPerWeight(width) + signs + 32 * (hasResidual(width) ? 2 : 1);
}

export interface LayerSensitivity {
  name: string;
  block: number;
  kind: EngineLinearKind;
  m: number;
  n: number;
  /** Normalised proxy loss at each lattice width (Hessian of the 16-bit model's states). */
  proxy: Record<(typeof MIXED_CODEBOOKS)[number], number>;
  /** Mean KL divergence (nats per token) of the output when this layer alone is at 2 bits. */
  kld2: number;
}

export interface AllocationLayer {
  name: string;
  m: number;
  n: number;
  options: Array<{ width: LayerWidth; bits: number; loss: number }>;
}

export interface Allocation {
  widths: Record<string, LayerWidth>;
  totalBits: number;
  weights: number;
  bitsPerWeight: number;
  /** Sum of the chosen widths' losses (predicted KLD, nats per token). */
  predictedLoss: number;
  /** The least and most bits per weight the allowed widths can reach on this model. */
  range: [number, number];
}

/** The loss options of a layer from its measured sensitivity. */
export function layerOptions(l: LayerSensitivity, widths: readonly LayerWidth[], o: SignBytes): AllocationLayer {
  const base = l.proxy.e8p;
  const loss = (w: LayerWidth) => (w === 'f16' ? 0 : base > 0 ? (l.kld2 * l.proxy[w]) / base : 0);
  return { name: l.name, m: l.m, n: l.n, options: widths.map((w) => ({ width: w, bits: widthBits(l.m, l.n, w, o), loss: Math.max(0, loss(w)) })) };
}

/** Greedy knapsack: the widths whose bits per weight come closest to `target` from below, least loss first. */
export function allocateWidths(layers: AllocationLayer[], target: number): Allocation {
  const weights = layers.reduce((a, l) => a + l.m * l.n, 0);
  const budget = target * weights;
  const sorted = layers.map((l) => [...l.options].sort((a, b) => a.bits - b.bits || a.loss - b.loss));
  const choice = sorted.map(() => 0);
  let total = sorted.reduce((a, o) => a + o[0].bits, 0);
  const range: [number, number] = [total / weights, sorted.reduce((a, o) => a + o[o.length - 1].bits, 0) / weights];
  // Each layer's lower convex hull from its smallest option: steps of falling efficiency.
  type Step = { layer: number; from: number; to: number; dBits: number; dLoss: number; rank: number };
  const steps: Step[] = [];
  sorted.forEach((opts, li) => {
    let at = 0;
    let rank = 0;
    for (;;) {
      let best = -1;
      let bestEff = 0;
      for (let j = at + 1; j < opts.length; j++) {
        const dBits = opts[j].bits - opts[at].bits;
        const eff = (opts[at].loss - opts[j].loss) / dBits;
        if (dBits > 0 && eff > bestEff) (best = j), (bestEff = eff);
      }
      if (best < 0) break;
      steps.push({ layer: li, from: at, to: best, dBits: opts[best].bits - opts[at].bits, dLoss: opts[at].loss - opts[best].loss, rank: rank++ });
      at = best;
    }
  });
  steps.sort((a, b) => b.dLoss / b.dBits - a.dLoss / a.dBits || a.rank - b.rank || a.layer - b.layer);
  for (const st of steps) {
    if (choice[st.layer] !== st.from) continue; // an earlier step of this layer did not fit
    if (total + st.dBits > budget) continue;
    choice[st.layer] = st.to;
    total += st.dBits;
  }
  const fill = () => {
    for (;;) {
    let best: { layer: number; to: number; dBits: number; eff: number } | null = null;
    sorted.forEach((opts, li) => {
      for (let j = 0; j < opts.length; j++) {
        const dBits = opts[j].bits - opts[choice[li]].bits;
        const dLoss = opts[choice[li]].loss - opts[j].loss;
        if (dBits <= 0 || dLoss <= 0 || total + dBits > budget) continue;
        const eff = dLoss / dBits;
        if (!best || eff > best.eff) best = { layer: li, to: j, dBits, eff };
      }
    });
    if (!best) break;
    const b = best as { layer: number; to: number; dBits: number };
    choice[b.layer] = b.to;
    total += b.dBits;
    }
  };
  // Fill: the best single move (any larger option of any layer) that still fits, until none does.
  fill();
  // Exchange: a step that does not fit (e.g. a layer to 16 bits) paid for by the cheapest steps down
  // of other layers, when that lowers the loss; then fill again. Lands the total near the budget where
  // the remaining steps up are coarse.
  for (let iter = 0; iter < 200; iter++) {
    let applied = false;
    for (let li = 0; li < sorted.length && !applied; li++) {
      const opts = sorted[li];
      for (let j = choice[li] + 1; j < opts.length && !applied; j++) {
        const dBits = opts[j].bits - opts[choice[li]].bits;
        const gain = opts[choice[li]].loss - opts[j].loss;
        const need = total + dBits - budget;
        if (dBits <= 0 || gain <= 0 || need <= 0) continue;
        // Each other layer's cheapest single step down (loss added per bit freed).
        const downs: Array<{ layer: number; to: number; freed: number; cost: number }> = [];
        sorted.forEach((o2, lk) => {
          if (lk === li) return;
          let bestDown: { layer: number; to: number; freed: number; cost: number } | null = null;
          for (let k = 0; k < choice[lk]; k++) {
            const freed = o2[choice[lk]].bits - o2[k].bits;
            const cost = o2[k].loss - o2[choice[lk]].loss;
            if (freed > 0 && (!bestDown || cost / freed < bestDown.cost / bestDown.freed)) bestDown = { layer: lk, to: k, freed, cost };
          }
          if (bestDown) downs.push(bestDown);
        });
        downs.sort((a, b) => a.cost / a.freed - b.cost / b.freed);
        let freed = 0, cost = 0;
        const take: typeof downs = [];
        for (const d of downs) {
          if (freed >= need || cost >= gain) break;
          take.push(d);
          freed += d.freed;
          cost += d.cost;
        }
        if (freed < need || cost >= gain * (1 - 1e-9)) continue;
        choice[li] = j;
        total += dBits;
        for (const d of take) {
          choice[d.layer] = d.to;
          total -= d.freed;
        }
        applied = true;
      }
    }
    if (!applied) break;
    fill();
  }
  // Land: where the steps left are coarser than the tolerance (e.g. only steps to 16 bits remain), the
  // exchange whose total lands within LAND_TOLERANCE of the target and adds the least loss.
  const tol = LAND_TOLERANCE * weights;
  for (let iter = 0; iter < 20 && budget - total > tol; iter++) {
    let best: { li: number; j: number; take: Array<{ layer: number; to: number; freed: number }>; total: number; net: number } | null = null;
    for (let li = 0; li < sorted.length; li++) {
      const opts = sorted[li];
      for (let j = choice[li] + 1; j < opts.length; j++) {
        const dBits = opts[j].bits - opts[choice[li]].bits;
        const gain = opts[choice[li]].loss - opts[j].loss;
        if (dBits <= 0) continue;
        const need = total + dBits - (budget + tol);
        const downs: Array<{ layer: number; to: number; freed: number; cost: number }> = [];
        if (need > 0) {
          sorted.forEach((o2, lk) => {
            if (lk === li) return;
            for (let k = 0; k < choice[lk]; k++) {
              const freed = o2[choice[lk]].bits - o2[k].bits;
              if (freed > 0) downs.push({ layer: lk, to: k, freed, cost: o2[k].loss - o2[choice[lk]].loss });
            }
          });
        }
        // Steps down in two orders: least loss per bit freed, and smallest first (finer landing).
        const orders = [[...downs].sort((x, y) => x.cost / x.freed - y.cost / y.freed), [...downs].sort((x, y) => x.freed - y.freed || x.cost - y.cost)];
        for (const order of orders) {
          let freed = 0, cost = 0;
          const take: typeof downs = [];
          const seen = new Set<number>();
          for (const d of order) {
            const now = total + dBits - freed;
            if (now <= budget + tol) break;
            // A step down that would overshoot below the tolerance is passed over for smaller ones.
            if (seen.has(d.layer) || now - d.freed < budget - tol) continue;
            seen.add(d.layer);
            take.push(d);
            freed += d.freed;
            cost += d.cost;
          }
          const t = total + dBits - freed;
          if (t > budget + tol || t < budget - tol) continue;
          const net = cost - gain;
          if (!best || net < best.net) best = { li, j, take, total: t, net };
        }
      }
    }
    if (!best) break;
    choice[best.li] = best.j;
    for (const d of best.take) choice[d.layer] = d.to;
    total = best.total;
  }
  const widths: Record<string, LayerWidth> = {};
  let predictedLoss = 0;
  layers.forEach((l, i) => {
    const o = sorted[i][choice[i]];
    widths[l.name] = o.width;
    predictedLoss += o.loss;
  });
  return { widths, totalBits: total, weights, bitsPerWeight: total / weights, predictedLoss, range };
}

export interface SensitivityOptions {
  model: LoadedModel;
  settings: QuantizeSettings;
  /** Calibration ids: `sequences` x `seqLen`. */
  ids: Int32Array;
  sequences: number;
  seqLen: number;
  /** Sequences and tokens per sequence of the KLD measurement (default 2 x at most 256). */
  kldSequences?: number;
  kldTokens?: number;
  cancel?: Int32Array;
  onProgress?: (p: { phase: 'proxy' | 'kld'; done: number; total: number }) => void;
}

/** Proxy loss at every lattice width and the 2-bit KLD of every linear layer (see the top of this file). */
export async function measureSensitivity(o: SensitivityOptions): Promise<LayerSensitivity[]> {
  const { model, settings: s, cancel } = o;
  const arch = model.architecture;
  const total = arch.numLayers * LINEAR_KINDS.length;
  const engine = createEngine(model);
  const cal = engine.createCalibration(o.ids, o.sequences, o.seqLen);
  const out: Array<LayerSensitivity & { spec: QuantizedLinearSpec }> = [];
  for (let b = 0; b < arch.numLayers; b++) {
    const hs = await cal.hessians(undefined, cancel);
    const normalised = new Set<string>();
    for (const k of LINEAR_KINDS) {
      const h = hs[TAP_OF[k.kind]];
      if (!normalised.has(TAP_OF[k.kind])) {
        for (let i = 0; i < h.sum.length; i++) h.sum[i] /= h.count;
        normalised.add(TAP_OF[k.kind]);
      }
      const name = linearName(b, k.kind);
      const source = model.tensor(`${name}.weight`);
      const [m, n] = source.shape;
      const proxy = {} as LayerSensitivity['proxy'];
      let spec: QuantizedLinearSpec | null = null;
      for (const cb of MIXED_CODEBOOKS) {
        const r = await quantizeLinear(source, h.sum, {
          m, n, codebook: cb, incoherence: s.incoherence, rowScale: s.rowScale, ldlq: s.ldlq, sigma: s.sigma, rho: CODEBOOK_TABLE[cb].defaultRho, tuneIters: s.tuneIters, seed: layerSeed(s.seed, name),
        }, { cancel });
        proxy[cb] = r.proxyLoss;
        if (cb === 'e8p') spec = layerFromResult(b, k.kind, r).spec;
      }
      out.push({ name, block: b, kind: k.kind, m, n, proxy, kld2: 0, spec: spec! });
      o.onProgress?.({ phase: 'proxy', done: out.length, total });
    }
    if (b + 1 < arch.numLayers) await cal.advance(undefined, cancel);
  }

  // The 16-bit model's log-probabilities on the first sequences, then each layer alone at 2 bits.
  const E = Math.max(1, Math.min(o.kldSequences ?? 2, o.sequences));
  const L = Math.max(2, Math.min(o.kldTokens ?? 256, o.seqLen));
  const vocab = arch.vocabSize;
  const seqs = Array.from({ length: E }, (_, i) => o.ids.subarray(i * o.seqLen, i * o.seqLen + L));
  const logSoftmax = (logits: Float32Array, rows: number): Float32Array => {
    const out32 = new Float32Array(rows * vocab);
    for (let r = 0; r < rows; r++) {
      const row = logits.subarray(r * vocab, (r + 1) * vocab);
      let max = -Infinity;
      for (let j = 0; j < vocab; j++) if (row[j] > max) max = row[j];
      let sum = 0;
      for (let j = 0; j < vocab; j++) sum += Math.exp(row[j] - max);
      const lse = max + Math.log(sum);
      for (let j = 0; j < vocab; j++) out32[r * vocab + j] = row[j] - lse;
    }
    return out32;
  };
  const base = [];
  for (const seq of seqs) base.push(logSoftmax(await engine.createSession(L).forward(seq, true, undefined, cancel), L));
  let done = 0;
  for (const l of out) {
    const e = createEngine(model);
    native().qinferSetLinear(e, l.block, l.kind, l.spec);
    let kld = 0;
    for (let i = 0; i < seqs.length; i++) {
      const lq = logSoftmax(await e.createSession(L).forward(seqs[i], true, undefined, cancel), L);
      const lb = base[i];
      for (let j = 0; j < lq.length; j++) {
        const p = Math.exp(lb[j]);
        kld += p * (lb[j] - lq[j]);
      }
    }
    l.kld2 = Math.max(0, kld / (seqs.length * L));
    o.onProgress?.({ phase: 'kld', done: ++done, total });
  }
  return out.map(({ spec: _spec, ...rest }) => {
    void _spec;
    return rest;
  });
}
