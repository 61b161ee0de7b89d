// Importing GGUF files: the real SmolLM2 Q4_1 file (config, tokenizer, provenance, and its Q8_0 and
// Q4_1 tensors against a float64 decoder written here from the block layouts) and tiny hand-made
// llama and qwen2 files whose Hugging Face weights are known, so the RoPE row order is checked.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../model/index.js';
import { native } from '../native.js';
import { createEngine } from '../runtime/native-model.js';
import { generate } from '../runtime/generation.js';
import { importGguf, type ImportResult } from './import.js';
import { openGguf } from './reader.js';
import { f16BitsToNumber, f32ToF16Bits, llamaCppPermuteRows, readSafetensors } from '../../testing/gguf.js';

const SMOLLM = path.resolve('../shared/data/models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf');
const SMOLLM_SHA256 = 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53';

const half = (b: Buffer, at: number) => f16BitsToNumber(b.readUInt16LE(at));
/** Float64 decoders of value i: Q8_0 (d, int8 q[32]: x = d q) and Q4_1 (d, m, 16 bytes of nibbles,
 *  low nibbles = values 0..15, high = 16..31: x = d q + m). */
function q8_0At(raw: Buffer, i: number): number {
  const block = Math.floor(i / 32) * 34;
  return half(raw, block) * raw.readInt8(block + 2 + (i % 32));
}
function q4_1At(raw: Buffer, i: number): number {
  const block = Math.floor(i / 32) * 20, j = i % 32;
  const byte = raw[block + 4 + (j % 16)];
  return half(raw, block) * (j < 16 ? byte & 15 : byte >> 4) + half(raw, block + 2);
}
/** The float16 value nearest to x (rounded through float32, the precision the weights are computed in). */
const toF16 = (x: number) => f16BitsToNumber(f32ToF16Bits(x));
/** Interleaved (GGUF) row of rotate-half row r, by llama.cpp's permutation applied to row indices. */
function ggufRowOf(rows: number, heads: number): Int32Array {
  const ids = llamaCppPermuteRows(Float32Array.from({ length: rows }, (_, r) => r), rows, 1, heads);
  const out = new Int32Array(rows);
  ids.forEach((hfRow, ggufRow) => (out[hfRow] = ggufRow));
  return out;
}

describe('importing SmolLM2-135M-Instruct Q4_1', () => {
  let dir: string;
  let result: ImportResult;
  const phases = new Set<string>();
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'quip-gguf-'));
    const t0 = performance.now();
    result = await importGguf(SMOLLM, path.join(dir, 'smollm2'), { onProgress: (p) => phases.add(p.phase) });
    console.log(`SmolLM2 Q4_1 import: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a llama config with SmolLM2 hyperparameters, tied embeddings', () => {
    const config = JSON.parse(readFileSync(path.join(dir, 'smollm2', 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30,
      num_attention_heads: 9, num_key_value_heads: 3, head_dim: 64, vocab_size: 49152, rope_theta: 100000, tie_word_embeddings: true,
      max_position_embeddings: 8192, rope_scaling: null, bos_token_id: 1, eos_token_id: 2, pad_token_id: 2, torch_dtype: 'float16',
    });
    expect(config.rms_norm_eps).toBeCloseTo(1e-5, 10);
    expect(JSON.parse(readFileSync(path.join(dir, 'smollm2', 'generation_config.json'), 'utf8'))).toMatchObject({ bos_token_id: 1, eos_token_id: 2 });
  });

  it('records its source, hash and the original tensor types', () => {
    expect(result.sourceSha256).toBe(SMOLLM_SHA256);
    expect(result.originalTypes).toEqual({ Q8_0: 1, Q4_1: 210, F32: 61 });
    expect(result.lossy).toBe(true);
    expect(result.parameters).toBe(134_515_008);
    expect([...phases]).toEqual(['checking', 'tensors', 'hashing', 'finishing', 'done']);
    const record = JSON.parse(readFileSync(path.join(dir, 'smollm2', 'gguf-import.json'), 'utf8'));
    expect(record.source).toMatchObject({ sha256: SMOLLM_SHA256, bytes: 98_362_432, file: 'SmolLM2-135M-Instruct.Q4_1.gguf' });
    expect(record.tensors).toHaveLength(272);
    expect(record.tensors.find((t: { gguf: string }) => t.gguf === 'blk.7.attn_k.weight')).toMatchObject({ name: 'model.layers.7.self_attn.k_proj.weight', type: 'Q4_1', shape: [192, 576] });
  });

  it('writes a tokenizer that @huggingface/tokenizers loads, with the chat template', () => {
    const json = JSON.parse(readFileSync(path.join(dir, 'smollm2', 'tokenizer.json'), 'utf8'));
    const config = JSON.parse(readFileSync(path.join(dir, 'smollm2', 'tokenizer_config.json'), 'utf8'));
    const tok = new Tokenizer(json, config);
    const text = '<|im_start|>user\nHi 2024<|im_end|>';
    const ids = tok.encode(text).ids;
    // Control tokens by id, newline 198, each digit alone ("2" = 34, "0" = 32, "4" = 36), as in the reference ids.
    expect([ids[0], ids[1], ids[2]]).toEqual([1, 4093, 198]);
    expect(ids.slice(-5)).toEqual([34, 32, 34, 36, 2]);
    expect(tok.decode(ids)).toBe(text);
    expect(config.chat_template).toContain('<|im_start|>');
    expect(config.add_bos_token).toBe(false);
  });

  it('stores the Q8_0 embedding and Q4_1 layers as the float16 rounding of their float64 decoding', () => {
    const st = readSafetensors(path.join(dir, 'smollm2', 'model.safetensors'));
    expect(Object.keys(st.header)).toHaveLength(272);
    const { header, file } = openGguf(SMOLLM);
    try {
      const check = (ggufName: string, hfName: string, ropeHeads?: number) => {
        const info = header.tensors.find((t) => t.name === ggufName)!;
        const raw = file.read(info.offset, info.bytes);
        const decode = info.type.name === 'Q8_0' ? q8_0At : q4_1At;
        const got = st.f16(hfName);
        expect(st.header[hfName]).toMatchObject({ dtype: 'F16', shape: info.shape });
        const [rows, cols] = info.shape;
        // q/k: written row r holds llama.cpp's row ggufRow[r] (its converter's permutation, inverted).
        const ggufRow = ropeHeads ? ggufRowOf(rows, ropeHeads) : Int32Array.from({ length: rows }, (_, r) => r);
        // Every value of a layer; a spread sample of the 28M-value embedding.
        const step = info.numel > 2_000_000 ? 97 : 1;
        let wrong = 0;
        for (let i = 0; i < info.numel; i += step) {
          const r = Math.floor(i / cols), c = i % cols;
          if (got(i) !== toF16(decode(raw, ggufRow[r] * cols + c))) wrong++;
        }
        expect(wrong, `${ggufName}: values differing from the float64 reference`).toBe(0);
      };
      check('token_embd.weight', 'model.embed_tokens.weight');
      check('blk.0.ffn_down.weight', 'model.layers.0.mlp.down_proj.weight');
      check('blk.29.attn_v.weight', 'model.layers.29.self_attn.v_proj.weight');
      check('blk.3.attn_q.weight', 'model.layers.3.self_attn.q_proj.weight', 9);
      check('blk.3.attn_k.weight', 'model.layers.3.self_attn.k_proj.weight', 3);
    } finally {
      file.close();
    }
  });

  it('chats exactly like the reference: every case of reference-chat-greedy.json, through the chat template and the engine', async () => {
    const ref = JSON.parse(readFileSync(path.join(path.dirname(SMOLLM), 'reference-chat-greedy.json'), 'utf8')) as {
      cases: Array<{ messages: Array<{ role: string; content: string }>; prompt_ids: number[]; greedy_ids: number[] }>;
    };
    const model = await loadModel(path.join(dir, 'smollm2'));
    try {
      const engine = createEngine(model);
      for (const c of ref.cases) {
        const prompt = model.chatTemplate!(c.messages, { addGenerationPrompt: true });
        const promptIds = model.tokenizer.encode(prompt, { addBos: false });
        expect(promptIds).toEqual(c.prompt_ids);
        const r = await generate(engine, model.tokenizer, promptIds, model.architecture.contextLength, { maxTokens: c.greedy_ids.length, temperature: 0, topP: 1, seed: 0 });
        expect(r.stopReason).toBe('eos');
        expect([...r.ids, 2]).toEqual(c.greedy_ids);
      }
    } finally {
      model.close();
    }
  });

  it('refuses to write over the imported model unless forced', async () => {
    await expect(importGguf(SMOLLM, path.join(dir, 'smollm2'))).rejects.toThrow(/already holds a model/);
    expect(native().ggufSupportedTypes()).toContain('Q4_1');
  });
});
