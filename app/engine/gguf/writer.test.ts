// The GGUF writer: the q/k row order is llama.cpp's converter permutation and the exact inverse of the
// importer's, and a written file reads back (our reader, then our importer) to the same weights and
// the same tokenization as the folder it came from.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadModel } from '../model/index.js';
import { importGguf } from './import.js';
import { openGguf } from './reader.js';
import { gatherRows, rotateHalfRowSources } from './rope.js';
import { f16BitsToNumber, f32ToF16Bits, llamaCppPermuteRows, readSafetensors } from '../../testing/gguf.js';
import { exportGguf, interleavedRowSources } from './writer.js';

const STORIES = path.resolve('../shared/data/models/stories260k');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-gguf-writer-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Float32 values of a plain safetensors file's tensor (stories260k is F32). */
function storiesTensor(name: string): { shape: number[]; values: Float32Array } {
  const bytes = readFileSync(path.join(STORIES, 'model.safetensors'));
  const n = Number(bytes.readBigUInt64LE(0));
  const h = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'))[name];
  const [a, b] = h.data_offsets as [number, number];
  const copy = Buffer.from(bytes.subarray(8 + n + a, 8 + n + b));
  return { shape: h.shape, values: new Float32Array(copy.buffer, copy.byteOffset, (b - a) / 4) };
}

describe('GGUF writer', () => {
  it('puts q/k rows in llama.cpp order, the exact inverse of the importer', () => {
    for (const [rows, heads] of [[8, 1], [64, 8], [32, 4], [576, 9], [192, 3]]) {
      const cols = 3;
      const values = Float32Array.from({ length: rows * cols }, (_, i) => i);
      const bytes = Buffer.from(values.buffer);
      const interleaved = gatherRows(bytes, cols * 4, interleavedRowSources(rows, heads));
      // Against llama.cpp's converter permutation, written independently from its definition.
      expect(new Float32Array(interleaved.buffer, interleaved.byteOffset, rows * cols)).toEqual(llamaCppPermuteRows(values, rows, cols, heads));
      const back = gatherRows(interleaved, cols * 4, rotateHalfRowSources(rows, heads));
      expect(back.equals(bytes)).toBe(true);
    }
  });

  it('writes stories260k as F32 GGUF v3 that our reader reads, with its tokenizer', async () => {
    const out = path.join(tmp, 'stories-f32.gguf');
    const r = await exportGguf(STORIES, out, { type: 'F32' });
    expect(r.tokenizer).toBe('llama');
    const g = openGguf(out);
    try {
      const { header } = g;
      expect(header.version).toBe(3);
      expect(header.metadata.string('general.architecture')).toBe('llama');
      expect(header.metadata.integer('llama.block_count')).toBe(5);
      expect(header.metadata.integer('llama.attention.head_count_kv')).toBe(4);
      expect(header.metadata.stringArray('tokenizer.ggml.tokens')?.length).toBe(512);
      // Tied embeddings: no output.weight; 5 blocks x 9 tensors + embedding + final norm.
      expect(header.tensors.length).toBe(5 * 9 + 2);
      expect(header.tensors.find((t) => t.name === 'output.weight')).toBeUndefined();
      for (const t of header.tensors) expect(t.offset % 32).toBe(0);
      // Exact F32 data: attn_k of block 2 is the HF tensor with rows permuted, attn_v is as it is.
      const read = (name: string) => {
        const t = header.tensors.find((x) => x.name === name)!;
        const b = g.file.read(t.offset, t.bytes);
        return { t, values: new Float32Array(Buffer.from(b).buffer, 0, t.numel) };
      };
      const k = storiesTensor('model.layers.2.self_attn.k_proj.weight');
      const gk = read('blk.2.attn_k.weight');
      expect(gk.t.dims).toEqual([k.shape[1], k.shape[0]]);
      expect(gk.values).toEqual(llamaCppPermuteRows(k.values, k.shape[0], k.shape[1], 4));
      expect(read('blk.2.attn_v.weight').values).toEqual(storiesTensor('model.layers.2.self_attn.v_proj.weight').values);
      expect(read('output_norm.weight').t.type.name).toBe('F32');
    } finally {
      g.file.close();
    }
  });

  it('round-trips stories260k through F16 GGUF and our importer: same weights (to f16), same tokens', async () => {
    const out = path.join(tmp, 'stories-f16.gguf');
    await exportGguf(STORIES, out);
    const dir = path.join(tmp, 'stories-back');
    await importGguf(out, dir);
    const st = readSafetensors(path.join(dir, 'model.safetensors'));
    for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.4.self_attn.k_proj.weight', 'model.layers.1.mlp.down_proj.weight', 'model.embed_tokens.weight']) {
      const want = storiesTensor(name);
      expect(st.header[name].shape).toEqual(want.shape);
      const got = st.f16(name);
      for (let i = 0; i < want.values.length; i++) {
        if (got(i) !== f16BitsToNumber(f32ToF16Bits(want.values[i]))) throw new Error(`${name}[${i}]: ${got(i)} vs ${want.values[i]}`);
      }
    }
    const a = await loadModel(STORIES);
    const b = await loadModel(dir);
    try {
      const text = 'Once upon a time, a little girl named Lily found a shiny red ball. 123 caf\u00e9!\n\nThe end.';
      expect(b.tokenizer.encode(text)).toEqual(a.tokenizer.encode(text));
      expect(b.tokenizer.addBos).toBe(true);
      expect(b.architecture.headDim).toBe(a.architecture.headDim);
      expect(b.architecture.tiedEmbeddings).toBe(true);
    } finally {
      a.close();
      b.close();
    }
  });

  it('refuses a folder without a model, naming it', async () => {
    await expect(exportGguf(path.join(tmp, 'nothing-here'), path.join(tmp, 'x.gguf'))).rejects.toThrow(/nothing-here/);
  });
});
