// The cost model against the run records of real jobs: time grows with calibration, memory holds the
// source model and one block of work, fine-tuning counts in both.
import { describe, expect, it } from 'vitest';

import { estimateRun, estimateWeightBytes, resolveSettings } from './index.js';

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
  it('weight files: the estimate predicts the bytes of the .safetensors files the job writes', () => {
    // Measured: model.safetensors of `quip quantize` outputs (stories260k 2-bit e8p: 150,060 bytes;
    // SmolLM2 4-bit rvq4: 110,646,280) and of the imported SmolLM2 in 16 bits (269,060,296).
    const s260 = { hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKeyValueHeads: 4, headDim: 8, vocabSize: 512, tiedEmbeddings: true };
    const near = (est: number, actual: number, rel: number) => expect(Math.abs(est / actual - 1)).toBeLessThan(rel);
    near(estimateWeightBytes(s260, resolveSettings({ bits: 2 })), 150_060, 0.01);
    near(estimateWeightBytes(smollm2, resolveSettings({ bits: 4 })), 110_646_280, 0.001);
    near(estimateWeightBytes(smollm2, null), 269_060_296, 0.001);
    // Fine-tuned sign vectors are float32; end to end unties the head (a second V x h table).
    const plain = estimateWeightBytes(smollm2, resolveSettings({ bits: 2 }));
    const block = estimateWeightBytes(smollm2, resolveSettings({ bits: 2, finetune: { mode: 'block' } }));
    const e2e = estimateWeightBytes(smollm2, resolveSettings({ bits: 2, finetune: { mode: 'block+e2e' } }));
    expect(block - plain).toBe(3 * 30 * (576 + 576 + 576 + 576 + 576 + 576 + 1536)); // su: 3 more bytes per input
    expect(e2e - block).toBeGreaterThan(2 * 49152 * 576);
  });
  it('a target bits per weight counts its allocation pass and sizes the output at the target', () => {
    const uniform = (bits: number) => estimateRun(smollm2, resolveSettings({ bits, calibSamples: 32, calibCtx: 512 }), 2, 8192);
    const mixed = estimateRun(smollm2, resolveSettings({ targetBpw: 3, calibSamples: 32, calibCtx: 512 }), 2, 8192);
    expect(uniform(2).seconds.allocation).toBe(0);
    // One calibration pass through the 16-bit model (as a uniform run's), three quantizations per
    // layer (each width once), one forward of the model with its head per layer and one of the 16-bit
    // model, over 2 x 256 tokens.
    const blockFwd = 2 * (576 * 576 * 2 + 192 * 576 * 2 + 1536 * 576 * 3) + 4 * 512 * 576;
    const forwards = (30 * 7 + 1) * 2 * 256 * (30 * blockFwd + 2 * 49152 * 576) / (30e9 * 2);
    const threeWidths = uniform(2).seconds.quantization + uniform(3).seconds.quantization + uniform(4).seconds.quantization;
    const expected = uniform(2).seconds.calibration + uniform(2).seconds.hessians + threeWidths + forwards;
    expect(mixed.seconds.allocation / expected).toBeCloseTo(1, 6);
    expect(mixed.seconds.total).toBeCloseTo(uniform(3).seconds.total + mixed.seconds.allocation, 6);
    // The size: the linear layers at 3 bits per weight (signs and scales included), the rest as uniform.
    const linear = 30 * (576 * 576 * 2 + 192 * 576 * 2 + 1536 * 576 * 3);
    const at3 = estimateWeightBytes(smollm2, resolveSettings({ targetBpw: 3 }));
    const at45 = estimateWeightBytes(smollm2, resolveSettings({ targetBpw: 4.5 }));
    expect(at45 - at3).toBeCloseTo((1.5 * linear) / 8, -1);
    expect(at3).toBeGreaterThan(estimateWeightBytes(smollm2, resolveSettings({ bits: 2 })));
    expect(at3).toBeLessThan(estimateWeightBytes(smollm2, resolveSettings({ bits: 4 })));
  });
});
