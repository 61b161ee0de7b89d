// The GGUF writer and importer for the newer families: qwen3 (attn_q_norm / attn_k_norm, rotate-half
// q/k rows as llama.cpp's NEOX rope keeps them), smollm3 (interleaved q/k rows, NoPE on every 4th
// layer), qwen2, and sliding-window models written as llama.cpp's granite_swa (window, per-layer
// pattern, logit scale 1, attention sinks of -1e30). Each written file reads back through our importer
// to the same weights and architecture; what llama.cpp cannot run as we do is refused by name.
// (llamacpp-reference.test.ts runs these files in llama.cpp.)
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadModel } from '../model/index.js';
import { f16BitsToNumber, f32ToF16Bits, llamaCppPermuteRows, randomFamilyFolder } from '../../testing/gguf.js';
import { readSafetensorsPlain } from '../../testing/model-files.js';
import { importGguf } from './import.js';
import { openGguf } from './reader.js';
import { exportGguf } from './writer.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-gguf-families-'));
const dirs: string[] = [];
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function folder(config: Record<string, unknown>, seed: number): string {
  const d = randomFamilyFolder(config, seed);
  dirs.push(d);
  return d;
}

/** The GGUF's header, and a tensor's F32 values. */
function readGguf(file: string) {
  const g = openGguf(file);
  const tensor = (name: string) => {
    const t = g.header.tensors.find((x) => x.name === name);
    if (!t) return undefined;
    const b = Buffer.from(g.file.read(t.offset, t.bytes));
    return { dims: t.dims, values: new Float32Array(b.buffer, b.byteOffset, t.numel) };
  };
  return { header: g.header, tensor, close: () => g.file.close() };
}

/** A folder's tensor as float32 values (F32 or F16 storage). */
function hfTensor(dir: string, name: string): Float32Array {
  const t = readSafetensorsPlain(path.join(dir, 'model.safetensors')).find((x) => x.name === name);
  if (!t) throw new Error(`${dir} has no ${name}`);
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.dtype === 'F32') return Float32Array.from({ length: n }, (_, i) => t.data.readFloatLE(4 * i));
  if (t.dtype === 'F16') return Float32Array.from({ length: n }, (_, i) => f16BitsToNumber(t.data.readUInt16LE(2 * i)));
  throw new Error(`${name} is ${t.dtype}`);
}

/** The imported tensor equals the original, or its float16 rounding where the import stored F16. */
function expectImported(back: string, dir: string, name: string): void {
  const dtype = readSafetensorsPlain(path.join(back, 'model.safetensors')).find((x) => x.name === name)!.dtype;
  const want = Array.from(hfTensor(dir, name), (x) => (dtype === 'F16' ? f16BitsToNumber(f32ToF16Bits(x)) : x));
  expect(Array.from(hfTensor(back, name)), name).toEqual(want);
}

describe('GGUF writer and importer: qwen3, smollm3, qwen2, sliding windows', () => {
  it('qwen3: attn_q_norm / attn_k_norm, q/k rows unpermuted, back through the importer to the same model', async () => {
    const dir = folder({ model_type: 'qwen3', head_dim: 32 }, 1);
    const out = path.join(tmp, 'qwen3.gguf');
    await exportGguf(dir, out, { type: 'F32' });
    const g = readGguf(out);
    try {
      expect(g.header.metadata.string('general.architecture')).toBe('qwen3');
      expect(g.header.metadata.integer('qwen3.attention.key_length')).toBe(32);
      expect(g.tensor('blk.2.attn_k_norm.weight')!.values).toEqual(hfTensor(dir, 'model.layers.2.self_attn.k_norm.weight'));
      expect(g.tensor('blk.1.attn_q.weight')!.values).toEqual(hfTensor(dir, 'model.layers.1.self_attn.q_proj.weight'));
    } finally {
      g.close();
    }
    const back = path.join(tmp, 'qwen3-back');
    await importGguf(out, back);
    const a = await loadModel(dir), b = await loadModel(back);
    try {
      expect(b.architecture).toMatchObject({ modelType: 'qwen3', qkNorm: true, headDim: 32, numLayers: 4 });
      expect(b.architecture.slidingLayers).toBeUndefined();
      expect(b.architecture.ropeTheta).toBe(a.architecture.ropeTheta);
      for (const name of ['model.layers.3.self_attn.q_norm.weight', 'model.layers.0.self_attn.k_proj.weight']) {
        expectImported(back, dir, name);
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('smollm3: interleaved q/k rows, no RoPE on layer 3 of 4 after the round trip', async () => {
    const dir = folder({ model_type: 'smollm3', rope_theta: 5e6 }, 2);
    const out = path.join(tmp, 'smollm3.gguf');
    await exportGguf(dir, out, { type: 'F32' });
    const g = readGguf(out);
    try {
      expect(g.header.metadata.string('general.architecture')).toBe('smollm3');
      const k = hfTensor(dir, 'model.layers.0.self_attn.k_proj.weight');
      expect(g.tensor('blk.0.attn_k.weight')!.values).toEqual(llamaCppPermuteRows(k, 32, 64, 2));
    } finally {
      g.close();
    }
    const back = path.join(tmp, 'smollm3-back');
    await importGguf(out, back);
    const b = await loadModel(back);
    try {
      expect(b.architecture).toMatchObject({ modelType: 'smollm3', noRopeLayers: [3], ropeTheta: 5e6 });
      expectImported(back, dir, 'model.layers.0.self_attn.k_proj.weight');
    } finally {
      b.close();
    }
  });

  it('qwen2 without a window: qwen2 with biases, rows unpermuted', async () => {
    const dir = folder({ model_type: 'qwen2' }, 3);
    const out = path.join(tmp, 'qwen2.gguf');
    await exportGguf(dir, out, { type: 'F32' });
    const g = readGguf(out);
    try {
      expect(g.header.metadata.string('general.architecture')).toBe('qwen2');
      expect(g.tensor('blk.3.attn_k.bias')!.values).toEqual(hfTensor(dir, 'model.layers.3.self_attn.k_proj.bias'));
    } finally {
      g.close();
    }
  });

  it('sliding windows: granite_swa with the window, the per-layer pattern, logit scale 1 and neutral sinks; q/k rows and biases interleaved', async () => {
    const dir = folder({ model_type: 'qwen2', use_sliding_window: true, sliding_window: 8, max_window_layers: 2 }, 4);
    const out = path.join(tmp, 'qwen2-swa.gguf');
    await exportGguf(dir, out, { type: 'F32' });
    const g = readGguf(out);
    try {
      const m = g.header.metadata;
      expect(m.string('general.architecture')).toBe('granite_swa');
      expect(m.integer('granite_swa.attention.sliding_window')).toBe(8);
      const pattern = m.entries.get('granite_swa.attention.sliding_window_pattern')!;
      expect(pattern.type).toBe('array');
      expect(pattern.itemType).toBe('bool');
      expect((pattern.value as { toJSON(): unknown[] }).toJSON()).toEqual([false, false, true, true]);
      expect(m.number('granite_swa.logit_scale')).toBe(1);
      const sinks = g.tensor('blk.1.attn_sinks.weight')!;
      expect(sinks.dims).toEqual([4]);
      expect(Array.from(sinks.values)).toEqual([-1e30, -1e30, -1e30, -1e30].map(Math.fround));
      const qb = hfTensor(dir, 'model.layers.1.self_attn.q_proj.bias');
      expect(g.tensor('blk.1.attn_q.bias')!.values).toEqual(llamaCppPermuteRows(qb, 64, 1, 4));
    } finally {
      g.close();
    }
    const mistral = folder({ model_type: 'mistral', sliding_window: 8 }, 5);
    await exportGguf(mistral, path.join(tmp, 'mistral-swa.gguf'), { type: 'F32' });
    const h = readGguf(path.join(tmp, 'mistral-swa.gguf'));
    try {
      expect((h.header.metadata.entries.get('granite_swa.attention.sliding_window_pattern')!.value as { toJSON(): unknown[] }).toJSON()).toEqual([true, true, true, true]);
    } finally {
      h.close();
    }
    // Mistral with sliding_window null: plain llama, as before.
    await exportGguf(folder({ model_type: 'mistral', sliding_window: null }, 6), path.join(tmp, 'mistral.gguf'));
    const p = readGguf(path.join(tmp, 'mistral.gguf'));
    try {
      expect(p.header.metadata.string('general.architecture')).toBe('llama');
    } finally {
      p.close();
    }
  });

  it('refuses what llama.cpp would run differently, naming it', async () => {
    await expect(exportGguf(folder({ model_type: 'smollm3', no_rope_layers: [1, 0, 1, 1] }, 7), path.join(tmp, 'x.gguf'))).rejects.toThrow(
      /layers without RoPE \(1\) are not every 4th layer \(3\), the only pattern llama\.cpp's smollm3 runs/,
    );
    await expect(exportGguf(folder({ model_type: 'qwen3', head_dim: 16, use_sliding_window: true, sliding_window: 8, max_window_layers: 2 }, 8), path.join(tmp, 'y.gguf'))).rejects.toThrow(
      /llama\.cpp's qwen3 architecture has no sliding-window attention/,
    );
  });
});
