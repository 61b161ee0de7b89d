// The cost model against the run records of real jobs: time grows with calibration, memory holds the
// source model and one block of work, fine-tuning counts in both.
import { describe, expect, it } from 'vitest';

import { estimateRun, estimateTensorBytes, resolveSettings } from './index.js';

describe('estimates', () => {
  // SmolLM2-135M's shapes; the measured figures are from the run records of real jobs on 2 threads
  // (estimate.ts, rates): 773 MiB peak without fine-tuning, 3,372 MiB with block+e2e (32 x 512 tokens).
  const smollm2 = { hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKeyValueHeads: 3, headDim: 64, vocabSize: 49152, tiedEmbeddings: true };
  const MiB = 2 ** 20;
  it('estimates grow with calibration size; memory holds the source model and one block of work', () => {
    const small = estimateRun(smollm2, resolveSettings({ calibSamples: 16 }), 2, 8192);
    const big = estimateRun(smollm2, resolveSettings({ calibSamples: 128 }), 2, 8192);
    expect(big.seconds.calibration).toBeCloseTo(small.seconds.calibration * 8, 6);
    expect(big.parts.activations).toBe(128 * 512 * 576 * 4);
    expect(big.peakBytes - small.peakBytes).toBe(big.parts.activations - small.parts.activations);
    // The mapped 16-bit source: embeddings once (tied) and every block.
    expect(big.parts.model).toBe(2 * (30 * (576 * 576 * 2 + 192 * 576 * 2 + 1536 * 576 * 3 + 2 * 576) + 49152 * 576 + 576));
    const e = estimateRun(smollm2, resolveSettings({ bits: 2, calibSamples: 32, calibCtx: 512 }), 2, 8192);
    expect(e.peakBytes / MiB).toBeGreaterThan(773 * 0.85);
    expect(e.peakBytes / MiB).toBeLessThan(773 * 1.15);
    expect(e.seconds.finetune).toBe(0);
  });
  it('fine-tuning counts in time and memory: in-block per epoch, end to end with its lm_head and logits', () => {
    const at = (finetune: { mode: 'block' | 'block+e2e'; epochs: number }) =>
      estimateRun(smollm2, resolveSettings({ bits: 2, calibSamples: 32, calibCtx: 512, finetune: { ...finetune, batch: 1 } }), 2, 8192);
    const plain = estimateRun(smollm2, resolveSettings({ bits: 2, calibSamples: 32, calibCtx: 512 }), 2, 8192);
    const block = at({ mode: 'block', epochs: 1 });
    const both = at({ mode: 'block+e2e', epochs: 1 });
    expect(block.finetuneSeconds.endToEnd).toBe(0);
    expect(both.finetuneSeconds.block).toBe(block.finetuneSeconds.block);
    expect(both.seconds.finetune).toBe(both.finetuneSeconds.block + both.finetuneSeconds.endToEnd);
    expect(at({ mode: 'block+e2e', epochs: 3 }).seconds.finetune).toBeGreaterThan(both.seconds.finetune * 2);
    // Measured: fine-tuning took 7-9x the rest of the job (1,394-1,673 s against 190 s).
    const rest = plain.seconds.total;
    expect(both.seconds.finetune / rest).toBeGreaterThan(5);
    expect(both.seconds.finetune / rest).toBeLessThan(12);
    // In-block tuning fits beside the block's Hessians; end to end needs the whole model in float32.
    expect(block.peakBytes).toBeGreaterThan(plain.peakBytes);
    expect(both.peakBytes / MiB).toBeGreaterThan(3372 * 0.8);
    expect(both.peakBytes / MiB).toBeLessThan(3372 * 1.2);
  });
  it('output tensors: codes at the code rate, 16-bit signs and a scale per linear, the rest in 16 bits', () => {
    const h = 576, f = 1536, kv = 192, V = 49152;
    const linears: Array<[number, number]> = [[h, h], [kv, h], [kv, h], [h, h], [f, h], [f, h], [h, f]];
    for (const [codebook, bits] of [['e8p', 2], ['rvq3', 3], ['rtn4', 4]] as const) {
      const perBlock = linears.reduce((a, [m, n]) => a + (m * n * bits) / 8 + 2 * (m + n) + 4, 0) + 2 * 2 * h;
      expect(estimateTensorBytes(smollm2, codebook)).toBe(30 * perBlock + 2 * V * h + 2 * h);
    }
    expect(estimateTensorBytes({ ...smollm2, tiedEmbeddings: false }, 'e8p') - estimateTensorBytes(smollm2, 'e8p')).toBe(2 * V * h);
  });
});
