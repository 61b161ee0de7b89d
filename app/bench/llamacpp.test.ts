// llama.cpp as the peer: reading its figures, bits per weight from a GGUF's tensor table, and (opt-in,
// when ../shared/tools/build-llama-cpp.sh has built llama.cpp) our llama.cpp-convention perplexity
// beside llama-perplexity's on the very same F16 weights.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { exportGguf } from '../engine/gguf/writer.js';
import { loadModel } from '../engine/model/index.js';
import { createEngine } from '../engine/runtime/engine.js';
import { evaluatePerplexityLlamaCpp, llamaCppWindows, readLlamaCppText } from '../engine/runtime/perplexity-llamacpp.js';
import { ggufLinearBits, llamaPerplexity, locateLlamaCpp, parsePerplexity } from './llamacpp.js';

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
});
