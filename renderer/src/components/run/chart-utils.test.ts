// Axis ticks and their one-format-per-axis labels, and block ticks that never run together.
import { describe, expect, it } from 'vitest';
import { axisFormatter, blockTicks, linearTicks, logTicks } from './chart-utils';

describe('chart axes', () => {
  it('formats every tick of an axis the same way, chosen by the range', () => {
    const small = axisFormatter([1e-3, 3e-3, 1e-2, 3e-2]);
    // Never "0.0100" beside "7.00e-3": below 0.01 the whole axis uses powers of ten.
    expect([1e-3, 3e-3, 1e-2, 3e-2].map(small)).toEqual(['1e-3', '3e-3', '1e-2', '3e-2']);
    expect(axisFormatter([7e-3, 1e-2, 1.5e-2])(1.5e-2)).toBe('1.5e-2');
    const mid = axisFormatter([10, 30, 100]);
    expect([10, 30, 100].map(mid)).toEqual(['10', '30', '100']);
    const frac = axisFormatter([0.05, 0.1, 0.2, 0.5]);
    expect([0.05, 0.1, 0.2, 0.5].map(frac)).toEqual(['0.05', '0.10', '0.20', '0.50']);
    expect(axisFormatter([1e5, 1e6])(1e6)).toBe('1e6');
  });

  it('puts at least three ticks on a log axis, powers of ten where they fit', () => {
    expect(logTicks(1e-4, 2e-1)).toEqual([1e-4, 1e-3, 1e-2, 1e-1]);
    expect(logTicks(4e-4, 8e-2)).toEqual([1e-3, 3e-3, 1e-2, 3e-2]);
    expect(logTicks(9, 200)).toEqual([10, 30, 100]);
    expect(logTicks(15, 25).length).toBeGreaterThanOrEqual(3);
    expect(logTicks(1e-6, 1).length).toBeLessThanOrEqual(8);
    expect(linearTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
  });

  it('labels every block when there is room, else every 2nd, 5th, 10th block', () => {
    expect(blockTicks(5, 700)).toEqual([3, 10, 17, 24, 31]);
    const thirty = blockTicks(30, 900);
    expect(thirty.length).toBeLessThanOrEqual(900 / 58);
    expect(thirty.slice(0, 3)).toEqual([3, 17, 31]); // blocks 0, 2, 4
    expect(blockTicks(30, 400).map((x) => (x - 3) / 7)).toEqual([0, 5, 10, 15, 20, 25]);
    expect(blockTicks(80, 400).map((x) => (x - 3) / 7)).toEqual([0, 20, 40, 60]);
  });
});
