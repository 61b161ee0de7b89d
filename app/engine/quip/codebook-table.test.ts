// The domain's codebook table (app/domain/quantize/codebooks.ts), which every TypeScript caller reads,
// against the native core's own (native/src/quip/e8p.cc kInfo through the addon's codebookInfo): one
// row each, the same bits, default rho, stages and residual scale. A quantized layer shows the same
// facts: as many code planes as stages, the residual scale it used, the default rho.
import { describe, expect, it } from 'vitest';

import { CODEBOOK_TABLE, CODEBOOKS, codebookFor, hasResidual } from '../../domain/quantize/index.js';
import { native } from '../native.js';
import { quantizeLinear } from './index.js';

describe('codebook table', () => {
  it.each(CODEBOOKS)('%s: the TypeScript row is the native row', (name) => {
    const row = CODEBOOK_TABLE[name];
    const c = native().codebookInfo(name);
    expect(row.name).toBe(name);
    expect({ name: c.name, bits: c.bits, stages: c.stages }).toEqual({ name: row.name, bits: row.bits, stages: row.stages });
    // The same decimals, so the same doubles: the TypeScript side may pass its own and change nothing.
    expect(c.defaultRho).toBe(row.defaultRho);
    expect(c.s2).toBe(row.s2);
    // Codes alone: E8P spends 16 bits per 8 weights, the RVQ residual 8 (rvq3) or 16 (rvq4), RTN b per weight.
    expect(row.codeBitsPerWeight).toBe(row.family === 'rtn' ? row.bits : 2 + (row.stages === 2 ? row.bits - 2 : 0));
    expect(hasResidual(name)).toBe(row.family === 'rvq');
  });

  it('the native core knows no codebook the table lacks', () => {
    expect(() => native().codebookInfo('rvq2' as never)).toThrow();
  });

  it('each family and width names one row', () => {
    for (const row of Object.values(CODEBOOK_TABLE)) {
      expect(codebookFor(row.bits, row.family)).toBe(row.name);
      if (row.family !== 'rtn') expect(codebookFor(row.bits, 'e8p')).toBe(row.name);
    }
  });

  it.each(CODEBOOKS)('%s: a quantized layer has the row\'s stages, residual scale and default rho', async (name) => {
    const m = 16, n = 32;
    const W = Float32Array.from({ length: m * n }, (_, i) => Math.sin(i * 0.37) + 0.1 * Math.cos(i * 1.3));
    const H = new Float64Array(n * n);
    for (let i = 0; i < n; i++) H[i * n + i] = 1 + i / n;
    const r = await quantizeLinear(W, H, { m, n, codebook: name });
    const row = CODEBOOK_TABLE[name];
    expect(r.codes).toHaveLength(row.stages);
    expect(r.s2).toBeCloseTo(row.s2, 12);
    expect(r.rho).toBeCloseTo(row.defaultRho, 12);
  });
});
