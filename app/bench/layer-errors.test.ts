// `quip bench layer-errors` on stories260k's first block: real Hessians from a forward pass, every
// linear layer quantized, each loss set against the Gaussian floor of its layer.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { renderLayerErrors, runLayerErrors, storedTypes, summarize, type LayerError } from './layer-errors.js';

const STORIES = path.join(__dirname, '../../../shared/data/models/stories260k');

describe('bench layer-errors', () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'quip-layer-errors-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const run = (peers: Array<{ name: string; gguf: string }> = []) =>
    runLayerErrors({ modelDir: STORIES, work, codebooks: ['e8p', 'rvq4'], peers, llamaCpp: null, calibSamples: 8, calibCtx: 128, sigma: 0.01, blocks: 1, threads: 1 });

  it('puts every layer above the floor of its rate', async () => {
    const layers = await run();
    expect(layers.map((l) => l.kind)).toEqual(['q', 'k', 'v', 'o', 'gate', 'up', 'down']);
    for (const l of layers) {
      expect(l.floor).toBeGreaterThan(0);
      const e8p = l.by.e8p, rvq4 = l.by.rvq4;
      // Bits as stored: codes (over padded rows of 8) plus sign vectors, row scales and scales.
      expect(e8p.bits).toBeGreaterThan(2);
      expect(rvq4.bits - e8p.bits).toBeGreaterThanOrEqual(2);
      expect(rvq4.bits - e8p.bits).toBeLessThan(2.1);
      // No code beats the floor: an ideal one needs fewer bits than each spends for the same loss.
      // (Far fewer on q/k here: row scales give their uneven rows equal relative error, which the
      // floor's water-filling over rows does not.) Two more bits buy rvq4 over one ideal bit.
      for (const c of [e8p, rvq4]) {
        expect(c.idealBits, l.layer).toBeLessThan(c.bits);
        expect(c.idealBits, l.layer).toBeGreaterThan(0);
      }
      expect(rvq4.idealBits - e8p.idealBits, l.layer).toBeGreaterThan(1);
    }
    const [se8p, srvq4] = summarize(layers, ['e8p', 'rvq4']);
    expect(srvq4.idealBits).toBeGreaterThan(se8p.idealBits + 1);
    expect(srvq4.belowFloor).toBe(0);
    const md = renderLayerErrors(layers, ['e8p', 'rvq4'], { calib: '2 x 64', sigma: 0.01 });
    expect(md).toMatch(/^\| rvq4 \| 4\.\d\d \| \d\.\d{3}% \| \d\.\d\d \| \d\.\d\d \| 0 of 7 \|$/m);
    expect(md).toMatch(/^\| down \| \d\.\d{3}% \| \d\.\d{3}% \| \d\.\d{3}% \|$/m);
  });

  it("groups a llama.cpp file's layers by stored type and flags losses below the floor of their own rate", () => {
    const layer = (kind: string, weights: number, type: string, bits: number, idealBits: number, proxyLoss: number): LayerError => ({
      layer: `model.layers.0.${kind}`, kind, weights, floor: 0.001,
      by: { rvq4: { bits: 4.06, proxyLoss: 0.003, idealBits: 3.2 }, Q4_K_M: { bits, proxyLoss, idealBits, type } },
    });
    const layers = [
      layer('v', 100, 'Q8_0', 8.5, 6.0, 0.0001),
      layer('down', 300, 'Q4_K', 4.5, 5.5, 0.0002), // below the floor of its own 4.5 bits
      layer('gate', 100, 'Q5_0', 5.5, 4.1, 0.001),
      layer('down', 100, 'Q4_K', 4.5, 3.5, 0.0004),
    ];
    const t = storedTypes(layers, ['rvq4', 'Q4_K_M']);
    expect(t.map((x) => x.type)).toEqual(['Q8_0', 'Q4_K', 'Q5_0']); // our codebooks have no stored type
    const q4k = t[1];
    expect(q4k).toMatchObject({ name: 'Q4_K_M', layers: 2, kinds: ['down'], bitsPerWeight: 4.5, belowOwnFloor: 1 });
    expect(q4k.idealBits).toBeCloseTo((300 * 5.5 + 100 * 3.5) / 400, 12); // weighted by each layer's weights
    expect(q4k.meanProxyLoss).toBeCloseTo(0.0003, 12);
    const md = renderLayerErrors(layers, ['rvq4', 'Q4_K_M'], { calib: '2 x 64', sigma: 0.01 });
    expect(md).toContain('| Q4_K_M | Q4_K | 2 | down | 4.50 | 0.030% | 5.00 | -0.50 | 1 of 2 |');
    expect(md).toContain('| Q4_K_M | Q5_0 | 1 | gate | 5.50 | 0.100% | 4.10 | 1.40 | 0 of 1 |');
    // Without llama.cpp's files the table is left out.
    expect(renderLayerErrors(layers.map((l) => ({ ...l, by: { rvq4: l.by.rvq4 } })), ['rvq4'], { calib: '2 x 64', sigma: 0.01 })).not.toContain('stored in');
  });

  it("says llama.cpp is needed to read a peer's file before any work", async () => {
    await expect(run([{ name: 'Q4_K_M', gguf: '/nowhere/stories-Q4_K_M.gguf' }])).rejects.toThrow(/build-llama-cpp\.sh.*\/nowhere\/stories-Q4_K_M\.gguf.*--peer-types ''/s);
  });
});
