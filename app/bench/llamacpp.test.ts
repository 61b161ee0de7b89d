// llama.cpp as the peer: reading its figures, bits per weight from a GGUF's tensor table, and (opt-in,
// when ../shared/tools/build-llama-cpp.sh has built llama.cpp) our llama.cpp-convention perplexity
// beside llama-perplexity's on the very same F16 weights.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { exportGguf } from '../engine/gguf/writer.js';
import { loadModel } from '../engine/model/index.js';
import { createEngine } from '../engine/runtime/native-model.js';
import { evaluatePerplexityLlamaCpp, llamaCppWindows, readLlamaCppText } from '../engine/runtime/perplexity-llamacpp.js';
import { importGguf } from '../engine/gguf/import.js';
import { evaluateKlDivergenceLlamaCpp } from '../engine/runtime/kl-divergence.js';
import { ggufLinearBits, llamaKlBase, llamaKlDivergence, llamaPerplexity, llamaQuantize, locateLlamaCpp, parseKlDivergence, parsePerplexity } from './llamacpp.js';

const DATA = path.resolve('../shared/data');
const STORIES = path.join(DATA, 'models', 'stories260k');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-llamacpp-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const bin = locateLlamaCpp();

describe('llama.cpp peer', () => {
  it("reads llama-perplexity's final estimate and chunk count", () => {
    const out = 'perplexity: calculating perplexity over 4 chunks, n_ctx=512, batch_size=2048, n_seq=4\n[1]18.1,[2]20.4,\nFinal estimate: PPL = 22.7431 +/- 1.94220\n';
    expect(parsePerplexity(out)).toEqual({ ppl: 22.7431, plusMinus: 1.9422, chunks: 4 });
    expect(() => parsePerplexity('llama_model_load: error loading model')).toThrow(/no final estimate/);
  });

  it("reads llama-perplexity --kl-divergence's summary", () => {
    const out = [
      'Mean PPL(Q)                   :  24.561234 ±   0.812345',
      'Mean PPL(base)                :  24.498000 ±   0.801000',
      '====== KL divergence statistics ======',
      'Mean    KLD:   0.012345 ±   0.000321',
      'Maximum KLD:   1.234567',
      'RMS Δp    :  2.345 ± 0.123 %',
      'Same top p: 95.123 ± 0.456 %',
    ].join('\n');
    expect(parseKlDivergence(out)).toEqual({ ppl: 24.561234, basePpl: 24.498, kld: 0.012345, kldPlusMinus: 0.000321, sameTop: 0.95123, sameTopPlusMinus: 0.00456 });
    expect(() => parseKlDivergence('Mean PPL(Q) : 1 ± 2')).toThrow(/no Mean PPL\(base\)/);
  });

  it('counts the bits per weight of the linear layers of a GGUF', async () => {
    const f16 = path.join(tmp, 'stories-f16.gguf');
    await exportGguf(STORIES, f16);
    expect(ggufLinearBits(f16)).toEqual({ bitsPerWeight: 16, types: { F16: 35 } });
    const f32 = path.join(tmp, 'stories-f32.gguf');
    await exportGguf(STORIES, f32, { type: 'F32' });
    expect(ggufLinearBits(f32).bitsPerWeight).toBe(32);
  });

  it.skipIf(!bin)(`matches llama-perplexity on the same F16 weights within 0.5% (opt-in: ${bin ? 'llama.cpp found' : 'SKIPPED, llama.cpp not built; run ../shared/tools/build-llama-cpp.sh'})`, async () => {
    const gguf = path.join(tmp, 'stories-peer.gguf');
    await exportGguf(STORIES, gguf);
    const text = path.join(DATA, 'wikitext-2-raw', 'wiki.test.raw');
    const ctx = 128, windows = 4;
    const peer = await llamaPerplexity(bin!, gguf, text, { ctx, windows, threads: 2 });
    expect(peer.chunks).toBe(windows);
    const model = await loadModel(STORIES);
    try {
      const w = llamaCppWindows(model.tokenizer, readLlamaCppText(text), ctx, windows);
      const ours = await evaluatePerplexityLlamaCpp(createEngine(model), w, model.architecture.vocabSize, { ctx });
      expect(Math.abs(ours.ppl / peer.ppl - 1)).toBeLessThan(0.005);
    } finally {
      model.close();
    }
  });

  it.skipIf(!bin)(`matches llama-perplexity --kl-divergence on a Q4_0 file of the same weights (opt-in: ${bin ? 'llama.cpp found' : 'SKIPPED, llama.cpp not built'})`, async () => {
    const f16 = path.join(tmp, 'stories-kl-f16.gguf');
    await exportGguf(STORIES, f16);
    const q4 = path.join(tmp, 'stories-kl-q4_0.gguf');
    await llamaQuantize(bin!, f16, q4, 'Q4_0', { threads: 2 });
    const text = path.join(DATA, 'wikitext-2-raw', 'wiki.test.raw');
    const ctx = 128, windows = 4;
    const logits = path.join(tmp, 'stories-kl-base.dat');
    const basePeer = await llamaKlBase(bin!, f16, text, logits, { ctx, windows, threads: 2 });
    const peer = await llamaKlDivergence(bin!, q4, logits, { ctx, windows, threads: 2 });
    // Ours on the same files: the Q4_0 file imported (dequantized by our GGUF reader) against the 16-bit model.
    const qdir = path.join(tmp, 'stories-q4_0');
    await importGguf(q4, qdir);
    const base = await loadModel(STORIES), quant = await loadModel(qdir);
    try {
      const w = llamaCppWindows(base.tokenizer, readLlamaCppText(text), ctx, windows);
      const ours = await evaluateKlDivergenceLlamaCpp(createEngine(quant), createEngine(base), w, base.architecture.vocabSize, { ctx });
      expect(ours.tokensScored).toBe(windows * (ctx / 2 - 1));
      expect(peer.kld).toBeGreaterThan(0);
      // Measured: 0.16337 against 0.16219 (0.7%), same top 75.4% against 75.0% (one token of 252).
      expect(Math.abs(ours.kld / peer.kld - 1)).toBeLessThan(0.03);
      expect(Math.abs(ours.sameTop - peer.sameTop)).toBeLessThan(0.02);
      expect(Math.abs(ours.ppl / peer.ppl - 1)).toBeLessThan(0.005);
      // The base's perplexity: ours from its exact logits, as the --kl-divergence-base run prints it
      // ("Final estimate"); the --kl-divergence run's "PPL(base)" reads the uint16 copy, whose 16-nat
      // range clips the least likely targets (a few % on this tiny model, far less on SmolLM2).
      expect(Math.abs(ours.basePpl / basePeer.ppl - 1)).toBeLessThan(0.005);
    } finally {
      base.close();
      quant.close();
    }
  });
});
