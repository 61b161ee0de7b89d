// Estimates calibrated on this machine, against figures worked out by hand.
import { describe, expect, it } from 'vitest';

import { actualGroups, addObservation, calibrateEstimate, MAX_OBSERVATIONS, type PhaseSeconds, type RateObservation } from './index.js';

const p = (forward: number, quantize: number, train: number, evaluate: number, fixed: number): PhaseSeconds => ({ forward, quantize, train, evaluate, fixed });
const obs = (params: number, predicted: PhaseSeconds, actual: PhaseSeconds, source: RateObservation['source'] = 'run'): RateObservation => ({ at: '', source, label: '', params, threads: 2, predicted, actual });

describe('machine rates', () => {
  it('without observations: the built-in prediction, a wide range', () => {
    const e = calibrateEstimate(p(10, 5, 0, 2, 2), 1e6, []);
    expect(e.seconds).toBeCloseTo(19, 12);
    expect(e.basis).toBe('default');
    expect([e.low, e.high]).toEqual([19 * 0.4, 19 * 1.6]);
  });

  it('scales each phase group by what this machine took, the fixed costs by what they were', () => {
    // A machine twice as slow in the forward passes, as fast as predicted elsewhere, with 1 s fixed costs.
    const seen = [obs(1e6, p(4, 2, 1, 1, 2), p(8, 2, 1, 1, 1), 'probe')];
    const e = calibrateEstimate(p(10, 5, 3, 2, 2), 1e6, seen);
    expect(e.groups).toEqual(p(20, 5, 3, 2, 1));
    expect(e.seconds).toBeCloseTo(31, 12);
    expect(e.basis).toBe('probe');
    expect(e.high / e.seconds).toBeCloseTo(1.45, 12);
  });

  it('the nearest model sizes count most (small models run far below their FLOP rate)', () => {
    const seen = [obs(2.6e5, p(1, 1, 1, 1, 2), p(4, 1, 1, 1, 1)), obs(1.5e8, p(1, 1, 1, 1, 2), p(1, 1, 1, 1, 1))];
    const small = calibrateEstimate(p(10, 0, 0, 0, 2), 2.6e5, seen).groups.forward;
    const big = calibrateEstimate(p(10, 0, 0, 0, 2), 1.5e8, seen).groups.forward;
    expect(small).toBeGreaterThan(35);
    expect(big).toBeLessThan(11);
  });

  it('with three or more observations the range is the largest miss on them, each predicted from the others', () => {
    const seen = [obs(1e6, p(1, 1, 1, 1, 2), p(1, 1, 1, 1, 2)), obs(1e6, p(1, 1, 1, 1, 2), p(1.5, 1.5, 1.5, 1.5, 2)), obs(1e6, p(1, 1, 1, 1, 2), p(1.2, 1.2, 1.2, 1.2, 2))];
    const e = calibrateEstimate(p(1, 1, 1, 1, 2), 1e6, seen);
    expect(e.basis).toBe('runs');
    expect(e.high / e.seconds - 1).toBeGreaterThanOrEqual(0.2);
    // Every observation's own total lies in the range its peers give it.
    for (const o of seen) {
      const r = calibrateEstimate(o.predicted, o.params, seen);
      const actual = Object.values(o.actual).reduce((a, x) => a + x, 0);
      expect(actual).toBeGreaterThanOrEqual(r.low);
      expect(actual).toBeLessThanOrEqual(r.high);
    }
  });

  it('reads a run record into phase groups; a resumed run is not an observation; the file keeps the newest', () => {
    const record = {
      timings: { load: 0.1, calibrate: 0.2, hessians: 3, advance: 2, quantize: 10, save: 0.3, evaluate: 4 },
      resumedFromBlock: 0,
      sessions: [{ startedAt: '', seconds: 21 }],
      finetune: { mode: 'block+e2e' as const, blocks: [], endToEnd: { initialHeldoutLoss: 1, bestHeldoutLoss: 1, bestEpoch: 1, seconds: 1, tokensPerSecond: 1, epochs: [] }, seconds: 7 },
    };
    // forward 3 + 2 + 0.2; train 7, of it 6 in-block inside the quantize lap; fixed = the rest.
    expect(actualGroups(record)).toEqual({ forward: 5.2, quantize: 4, train: 7, evaluate: 4, fixed: 21 - 5.2 - 4 - 7 - 4 });
    expect(actualGroups({ ...record, resumedFromBlock: 2 })).toBeNull();
    let rates = null;
    for (let i = 0; i < MAX_OBSERVATIONS + 3; i++) rates = addObservation(rates, obs(i, p(1, 1, 1, 1, 1), p(1, 1, 1, 1, 1)));
    expect(rates!.observations).toHaveLength(MAX_OBSERVATIONS);
    expect(rates!.observations[0]!.params).toBe(3);
  });
});
