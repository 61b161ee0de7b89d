// `quip bench decode` end to end on a tiny synth model (figures are not asserted: speed belongs to
// the benchmark run, not to tests): every row, the per-token profile of the quantized models, the
// goals read from the rows, and the llama.cpp columns reported as skipped when switched off.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { native } from '../engine/native.js';
import { decodeGoals, formatDecodeBench, runDecodeBench } from './decode.js';

describe('quip bench decode', () => {
  it('measures 16/2/3/4-bit rows and profiles the quantized ones on a tiny synth model', async () => {
    const r = await runDecodeBench({
      threads: 2,
      shape: { hidden: 128, intermediate: 344, layers: 2, heads: 4, kvHeads: 2, vocab: 600 },
      prompt: 8,
      gen: 4,
      peer: false,
      smollm2: false,
      bandwidthBytes: 8 << 20,
      kernelReps: 1,
    });
    expect(r.synth.rows.map((x) => x.model)).toEqual(['ours 16-bit', 'ours 2-bit e8p', 'ours 3-bit rvq3', 'ours 4-bit rvq4']);
    for (const x of r.synth.rows) {
      expect(x.decodeTokensPerSecond).toBeGreaterThan(0);
      expect(x.prefillTokensPerSecond).toBeGreaterThan(0);
      expect(x.bytesPerToken).toBeGreaterThan(0);
    }
    // 344 = 43 x 8 (no power-of-two part beyond 8): codes + signs + lm_head at 16 bits.
    expect(r.synth.rows[1].bitsPerWeight).toBeGreaterThan(2);
    expect(r.synth.rows[1].bitsPerWeight).toBeLessThan(2.2);
    for (const x of r.synth.rows.slice(1)) {
      const p = x.profile!;
      expect(p.matvec).toBeGreaterThan(0);
      expect(p.transforms).toBeGreaterThan(0);
      expect(p.matvec + p.transforms).toBeLessThanOrEqual(p.total);
    }
    expect(r.synth.rows[0].profile).toBeUndefined();
    expect(r.synth.peer).toEqual({ llamaCpp: null, skipped: expect.stringMatching(/--no-peer/), rows: [] });
    expect(r.smollm2).toBeNull();
    // every codebook timed with the scalar reference and this CPU's SIMD kernels
    const cpu = native().cpuInfo();
    const kernels = ['scalar', ...(cpu.avx2 ? ['avx2'] : []), ...(cpu.avx512 ? ['avx512'] : []), ...(cpu.neon ? ['neon'] : [])];
    expect(r.kernels.map((k) => `${k.codebook} ${k.kernel}`)).toEqual(['e8p', 'rvq3', 'rvq4'].flatMap((cb) => kernels.map((k) => `${cb} ${k}`)));
    for (const k of r.kernels) expect(k.nsPerGroup).toBeGreaterThan(0);
    expect(formatDecodeBench(r)).toContain('ns per group of 8 weights');
    expect(r.goals.map((g) => g.met)).toEqual([r.synth.rows[1].speedupVsF16 >= 2, null, null]);
    expect(formatDecodeBench(r)).toMatch(/llama\.cpp columns skipped/);
  }, 120_000);

  it('keeps the synth model in --work and reuses it in the next run', async () => {
    const work = mkdtempSync(path.join(os.tmpdir(), 'quip-decode-work-'));
    try {
      const o = { threads: 1, shape: { hidden: 64, intermediate: 128, layers: 1, heads: 2, kvHeads: 2, vocab: 600 }, prompt: 4, gen: 2, peer: false, smollm2: false, work, bandwidthBytes: 8 << 20 };
      await runDecodeBench(o);
      const config = path.join(work, 'synth-64-128-1-2-2-600', 'hf', 'config.json');
      const written = statSync(config).mtimeMs;
      await runDecodeBench(o);
      expect(statSync(config).mtimeMs).toBe(written);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 120_000);

  it('reads the goals against llama.cpp from the peer rows', () => {
    const row = (model: string, decode: number) => ({
      model, bitsPerWeight: 2, bytesPerToken: 1, decodeTokensPerSecond: decode, prefillTokensPerSecond: 1,
      rooflineTokensPerSecond: 1, fractionOfRoofline: 1, speedupVsF16: decode / 10,
    });
    const peer = (type: string, decode: number) => ({
      type, file: type, linearBitsPerWeight: 2, bytesPerToken: 1, outputType: 'F16', embeddingType: 'F16', decodeTokensPerSecond: decode, prefillTokensPerSecond: 1,
    });
    const goals = decodeGoals({
      label: 't',
      rows: [row('ours 16-bit', 10), row('ours 2-bit e8p', 25), row('ours 3-bit rvq3', 18), row('ours 4-bit rvq4', 14)],
      peer: { llamaCpp: 'bin', skipped: null, rows: [peer('F16', 15), peer('Q4_K_M', 30), peer('IQ2_XXS', 20), peer('IQ2_XXS+f16-head', 26)] },
    });
    expect(goals.map((g) => g.met)).toEqual([true, true, false, false]);
    expect(goals.map((g) => g.ratio)).toEqual([2.5, 1.25, 14 / 15, 25 / 26]);
    expect(goals[3].goal).toMatch(/like for like/);
  });
});
