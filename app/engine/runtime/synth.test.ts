// quip synth writes a folder that the model loader accepts and the engine runs; its tensors have
// the requested shapes, dtype and statistics, and the same seed gives the same bytes.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadModel } from '../model/index.js';
import { native } from '../native.js';
import { createEngine } from './native-model.js';
import { generate } from './generation.js';
import { synthModel } from './synth.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-synth-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('synth', () => {
  it('writes a loadable random model that generates', async () => {
    const r = await synthModel({ hidden: 128, intermediate: 344, layers: 2, heads: 4, kvHeads: 2, vocab: 600, dtype: 'bf16', seed: 3, out: path.join(tmp, 'a') });
    expect(r.parameters).toBe(600 * 128 * 2 + 2 * (128 * 2 + 128 * 128 * 2 + 64 * 128 * 2 + 3 * 128 * 344) + 128);
    const m = await loadModel(r.dir);
    try {
      expect(m.architecture.numKeyValueHeads).toBe(2);
      expect(m.tensorInfo('model.layers.1.mlp.down_proj.weight')).toMatchObject({ dtype: 'BF16', shape: [128, 344] });
      expect(m.tokenizer.vocabSize).toBe(600);
      expect(m.tokenizer.encode('Once upon a time')[0]).toBe(1);
      const stats = await native().tensorStats(m.tensor('model.layers.0.mlp.up_proj.weight'));
      expect(stats.rms).toBeGreaterThan(0.018);
      expect(stats.rms).toBeLessThan(0.022);
      expect(stats.absMax).toBeLessThanOrEqual(0.02 * Math.sqrt(3) * 1.01);
      const norm = await native().tensorStats(m.tensor('model.norm.weight'));
      expect([norm.min, norm.max]).toEqual([1, 1]);
      const g = await generate(createEngine(m), m.tokenizer, m.tokenizer.encode('Once'), 2048, { maxTokens: 5, temperature: 0, topP: 1, seed: 0 });
      expect(g.ids.length + (g.stopReason === 'eos' ? 1 : 0)).toBeGreaterThan(0);
    } finally {
      m.close();
    }
    const again = await synthModel({ hidden: 128, intermediate: 344, layers: 2, heads: 4, kvHeads: 2, vocab: 600, dtype: 'bf16', seed: 3, out: path.join(tmp, 'b') });
    expect(readFileSync(path.join(again.dir, 'model.safetensors')).equals(readFileSync(path.join(r.dir, 'model.safetensors')))).toBe(true);
  });

  it('refuses inconsistent shapes with a clear message', async () => {
    await expect(synthModel({ hidden: 100, intermediate: 64, layers: 1, heads: 3, out: path.join(tmp, 'c') })).rejects.toThrow(/multiple of --heads/);
    await expect(synthModel({ hidden: 64, intermediate: 64, layers: 1, vocab: 100, out: path.join(tmp, 'c') })).rejects.toThrow(/--vocab must be at least 512/);
  });
});
