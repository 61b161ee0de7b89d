// Estimates calibrated on this machine. estimate.ts predicts each phase from FLOP counts at fixed
// per-thread rates fitted on one CPU; here every finished job's phase timings (a short probe job the
// first time, then every finished run) are set against that prediction, phase group by phase group,
// and the ratios scale the next estimate: forward passes (calibration, Hessians), quantization,
// fine-tuning, evaluation, plus the fixed costs the FLOP model leaves out (process start, model load,
// tokenizing, saving). The observations nearest in model size count; their spread gives the range.
// Pure: the studio keeps the observations in <studio home>/machine-rates.json (app/services/runs).
import { z } from 'zod';

import type { Estimate } from './estimate.js';
import { runSeconds, type RunRecord } from './record.js';

export const PHASE_GROUPS = ['forward', 'quantize', 'train', 'evaluate', 'fixed'] as const;
export type PhaseGroup = (typeof PHASE_GROUPS)[number];
export const PhaseSeconds = z.object({ forward: z.number(), quantize: z.number(), train: z.number(), evaluate: z.number(), fixed: z.number() });
export type PhaseSeconds = z.infer<typeof PhaseSeconds>;
export const WorkUnits = z.object({ forward: z.number(), quantize: z.number(), train: z.number(), evaluate: z.number() });
export type WorkUnits = z.infer<typeof WorkUnits>;

/** One finished job: what the unscaled model predicted per phase group, what it took. */
export const RateObservation = z.object({
  at: z.string(),
  source: z.enum(['probe', 'run']),
  /** What ran ("stories260k 2-bit"), for people reading the file. */
  label: z.string(),
  /** Source parameters (the nearest observations in size count most). */
  params: z.number(),
  threads: z.number().int(),
  predicted: PhaseSeconds,
  actual: PhaseSeconds,
  /** The per-item work of each phase group (estimate.ts Estimate.units); absent in older files. */
  units: WorkUnits.optional(),
});
export type RateObservation = z.infer<typeof RateObservation>;

export const MACHINE_RATES_FILE = 'machine-rates.json';
/** Observations kept (the newest). */
export const MAX_OBSERVATIONS = 40;
export const MachineRates = z.object({ version: z.literal(1), observations: z.array(RateObservation) });
export type MachineRates = z.infer<typeof MachineRates>;

/** Fixed costs before anything is measured: node and the addon start, the model maps, the text is
 * tokenized, the folder is written (a second or two on stories260k, more for big folders). */
const DEFAULT_FIXED_SECONDS = 2;
/** Source bytes mapped and written per second, for the size-dependent part of the fixed costs. */
const IO_BYTES_PER_SECOND = 300e6;

/** The unscaled prediction by phase group (fixed: the default, grown with the model's bytes). */
export function predictedGroups(e: Estimate, sourceBytes: number): PhaseSeconds {
  return {
    // (a --target-bpw sensitivity pass is calibration and quantization again: counted as forward work)
    forward: e.seconds.calibration + e.seconds.hessians + (e.seconds.allocation ?? 0),
    quantize: e.seconds.quantization,
    train: e.seconds.finetune,
    evaluate: e.seconds.evaluation,
    fixed: DEFAULT_FIXED_SECONDS + sourceBytes / IO_BYTES_PER_SECOND,
  };
}

/**
 * What a finished single-session job took per phase group, from its run record: forward = the
 * calibration passes (Hessians with their forward, advancing, sampling, resuming), train = the
 * fine-tuning record's seconds, quantize = the quantize lap without the in-block tuning inside it,
 * evaluate, and fixed = the rest of the session (start, load, save). null for a resumed run.
 */
export function actualGroups(record: Pick<RunRecord, 'timings' | 'resumedFromBlock' | 'finetune'> & { sessions?: RunRecord['sessions'] }): PhaseSeconds | null {
  if (record.resumedFromBlock > 0 || (record.sessions && record.sessions.length !== 1)) return null;
  const t = record.timings;
  const train = record.finetune?.seconds ?? 0;
  const e2e = record.finetune?.endToEnd?.seconds ?? 0;
  const forward = (t.hessians ?? 0) + (t.advance ?? 0) + (t.calibrate ?? 0) + (t.sample ?? 0);
  const quantize = Math.max(0, (t.quantize ?? 0) - (train - e2e));
  const evaluate = t.evaluate ?? 0;
  const total = runSeconds(record);
  return { forward, quantize, train, evaluate, fixed: Math.max(0, total - forward - quantize - train - evaluate) };
}

/** How far two model sizes are apart: |ln(a / b)|. */
const sizeDistance = (a: number, b: number) => Math.abs(Math.log(Math.max(1, a)) - Math.log(Math.max(1, b)));

/** The observations that speak for a model of `params` parameters: the 6 nearest in log size. */
function nearest(observations: readonly RateObservation[], params: number): RateObservation[] {
  return [...observations].sort((a, b) => sizeDistance(a.params, params) - sizeDistance(b.params, params)).slice(0, 6);
}

/** Weight of an observation for a model of `params` parameters: small models run below their FLOP
 * rate (per-token overheads dominate 64-wide layers), so the nearest sizes count most. */
const weightOf = (o: RateObservation, params: number) => 1 / (1 + sizeDistance(o.params, params) ** 2);

/** Weighted geometric mean (ratios multiply). */
function geoMean(xs: Array<{ value: number; weight: number }>): number {
  const w = xs.reduce((a, x) => a + x.weight, 0);
  return Math.exp(xs.reduce((a, x) => a + x.weight * Math.log(x.value), 0) / w);
}

export interface CalibratedEstimate {
  /** Seconds per phase group, scaled by this machine's observations. */
  groups: PhaseSeconds;
  /** The best guess, and a range the actual time should fall in. */
  seconds: number;
  low: number;
  high: number;
  /** Where the rates come from: the built-in ones, a probe job, or finished runs (with the probe). */
  basis: 'default' | 'probe' | 'runs';
  observations: number;
}

type Group = Exclude<PhaseGroup, 'fixed'>;

/**
 * One phase group on this machine: seconds = a x predicted + b x units, a the size-weighted ratio of
 * what this machine took to what the built-in FLOP rates predicted. A cost per item (b: per token and
 * block, per Adam step) fitted beside it by least squares is kept for when observations span enough
 * shapes (FIT_UNITS); with the probe's two shapes it mistook tiny models' slow training per token for
 * a cost per step and predicted stories260k's fine-tuning 10x short (docs/estimates.md), so the ratio
 * alone is used.
 */
const FIT_UNITS = false;
function fitGroup(obs: RateObservation[], g: Group, params: number): { a: number; b: number } {
  const rows = obs.filter((o) => o.actual[g] > 0 && (o.predicted[g] > 0.005 || (o.units?.[g] ?? 0) > 0));
  if (!rows.length) return { a: 1, b: 0 };
  const ratio = () => {
    const r = rows.filter((o) => o.predicted[g] > 0.005).map((o) => ({ value: o.actual[g] / o.predicted[g], weight: weightOf(o, params) }));
    return { a: r.length ? geoMean(r) : 1, b: 0 };
  };
  if (!FIT_UNITS || rows.length < 2 || rows.some((o) => !o.units)) return ratio();
  let s11 = 0, s12 = 0, s22 = 0, t1 = 0, t2 = 0;
  for (const o of rows) {
    const w = weightOf(o, params);
    const x1 = o.predicted[g] / o.actual[g], x2 = o.units![g] / o.actual[g];
    s11 += w * x1 * x1; s12 += w * x1 * x2; s22 += w * x2 * x2; t1 += w * x1; t2 += w * x2;
  }
  const det = s11 * s22 - s12 * s12;
  if (!(Math.abs(det) > 1e-12 * Math.max(1e-300, s11 * s22))) return ratio();
  let a = (t1 * s22 - t2 * s12) / det, b = (t2 * s11 - t1 * s12) / det;
  if (b < 0) [a, b] = [t1 / s11, 0];
  if (a < 0) [a, b] = [0, s22 > 0 ? t2 / s22 : 0];
  return { a, b };
}

/** The fixed costs: the observations' (less their size-dependent part), plus this model's. */
function fixedOf(obs: RateObservation[], predicted: PhaseSeconds, params: number): number {
  if (!obs.length) return predicted.fixed;
  const sizePart = (o: RateObservation) => o.predicted.fixed - DEFAULT_FIXED_SECONDS;
  const base = geoMean(obs.map((o) => ({ value: Math.max(0.2, o.actual.fixed - sizePart(o)), weight: weightOf(o, params) })));
  return base + (predicted.fixed - DEFAULT_FIXED_SECONDS);
}

function scaled(obs: RateObservation[], p: PhaseSeconds, params: number, units: WorkUnits | undefined): PhaseSeconds {
  const at = (g: Group) => {
    const { a, b } = fitGroup(obs, g, params);
    return a * p[g] + (units ? b * units[g] : 0);
  };
  return { forward: at('forward'), quantize: at('quantize'), train: at('train'), evaluate: at('evaluate'), fixed: fixedOf(obs, p, params) };
}

const total = (g: PhaseSeconds) => g.forward + g.quantize + g.train + g.evaluate + g.fixed;

/**
 * The estimate on this machine: each phase group scaled by the nearest observations, the fixed costs
 * added, and a range. The range's half-width is the largest miss of the same rule on the observations
 * themselves (each predicted from the others), at least 20%; with fewer than three observations it is
 * 40% (a probe alone) or 60% (the built-in rates, never measured here).
 */
export function calibrateEstimate(predicted: PhaseSeconds, params: number, observations: readonly RateObservation[], units?: WorkUnits): CalibratedEstimate {
  const obs = nearest(observations, params);
  const groups = scaled(obs, predicted, params, units);
  const seconds = total(groups);
  let width: number;
  if (obs.length >= 3) {
    let worst = 0;
    for (const o of obs) {
      const others = obs.filter((x) => x !== o);
      const guess = total(scaled(others, o.predicted, o.params, o.units));
      worst = Math.max(worst, Math.abs(total(o.actual) / guess - 1));
    }
    width = Math.min(0.6, Math.max(0.2, worst * 1.15));
  } else {
    width = obs.length ? 0.45 : 0.6;
  }
  const runs = observations.some((o) => o.source === 'run');
  return {
    groups,
    seconds,
    low: seconds * (1 - width),
    high: seconds * (1 + width),
    basis: !observations.length ? 'default' : runs ? 'runs' : 'probe',
    observations: obs.length,
  };
}

/** Keeps the newest MAX_OBSERVATIONS. */
export function addObservation(rates: MachineRates | null, o: RateObservation): MachineRates {
  const observations = [...(rates?.observations ?? []), o].slice(-MAX_OBSERVATIONS);
  return { version: 1, observations };
}
