// Importing hand-made GGUF files: tiny llama and qwen2 models whose Hugging Face weights are known
// (so the RoPE row order and biases are checked value by value), and every kind of bad input, each
// refused with a message naming the file and the problem, leaving nothing in the output location.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { importGguf } from './import.js';
import { rotateHalfRowSources } from './rope.js';
import { f16BitsToNumber, f32, f32ToF16Bits, llamaCppPermuteRows, readSafetensors, str, tinyModelGguf, u32, type TinyModel } from '../../testing/gguf.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'quip-gguf-cases-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A fresh parent folder with the GGUF written into it; the output goes beside it. */
function setup(bytes: Buffer, name = 'model.gguf'): { file: string; out: string; parent: string } {
  const parent = path.join(root, `case-${counter++}`);
  mkdirSync(parent);
  const file = path.join(parent, name);
  writeFileSync(file, bytes);
  return { file, out: path.join(parent, 'out'), parent };
}

/** The import fails with `pattern`, the message names the file, and nothing but the GGUF is left. */
async function expectRefused(bytes: Buffer, pattern: RegExp): Promise<void> {
  const { file, out, parent } = setup(bytes, 'broken.gguf');
  const err = await importGguf(file, out).then(() => null, (e: Error) => e);
  expect(err, 'import should fail').not.toBeNull();
  expect(err!.message).toMatch(pattern);
  expect(err!.message).toContain('broken.gguf');
  expect(readdirSync(parent)).toEqual(['broken.gguf']);
}

const f16 = (x: number) => f16BitsToNumber(f32ToF16Bits(x));

async function importTiny(opts: TinyModel) {
  const { gguf, hf } = tinyModelGguf(opts);
  const { file, out } = setup(gguf.bytes);
  const result = await importGguf(file, out);
  return { result, hf, out, st: readSafetensors(path.join(out, 'model.safetensors')), config: JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) };
}

describe('RoPE row order', () => {
  it('undoing it is the inverse of llama.cpp conversion permutation on a known matrix', () => {
    for (const [rows, heads] of [[8, 1], [24, 3], [576, 9], [192, 3]]) {
      const cols = 5;
      const hf = Float32Array.from({ length: rows * cols }, (_, i) => i);
      const gguf = llamaCppPermuteRows(hf, rows, cols, heads);
      const src = rotateHalfRowSources(rows, heads);
      const back = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) back.set(gguf.subarray(src[r] * cols, (src[r] + 1) * cols), r * cols);
      expect(back).toEqual(hf);
      expect(gguf).not.toEqual(hf);
    }
    // Head of 4 rows: rotate-half rows (0, 1 | 2, 3) pair as 0-2 and 1-3; llama.cpp stores 0, 2, 1, 3.
    expect([...rotateHalfRowSources(4, 1)]).toEqual([0, 2, 1, 3]);
    expect(() => rotateHalfRowSources(6, 4)).toThrow(/heads of even size/);
  });
});

describe('importing tiny hand-made models', () => {
  it('llama: every tensor equals the float16 rounding of the known Hugging Face weights', async () => {
    const { hf, st, config, result } = await importTiny({ arch: 'llama' });
    expect(config).toMatchObject({ model_type: 'llama', hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, tie_word_embeddings: true, attention_bias: false, vocab_size: 262 });
    expect(result.lossy).toBe(false);
    expect(Object.keys(st.header).sort()).toEqual([...hf.keys()].sort());
    for (const [name, { shape, values }] of hf) {
      expect(st.header[name].shape).toEqual(shape);
      const got = st.f16(name);
      let wrong = 0;
      for (let i = 0; i < values.length; i++) if (got(i) !== f16(values[i])) wrong++;
      expect(wrong, name).toBe(0);
    }
  });

  it('llama with float16 linear layers and an untied output', async () => {
    const { hf, st, config } = await importTiny({ arch: 'llama', linearType: 'F16', tied: false, heads: 2, kvHeads: 1 });
    expect(config.tie_word_embeddings).toBe(false);
    for (const name of ['lm_head.weight', 'model.layers.1.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight']) {
      const { values } = hf.get(name)!;
      const got = st.f16(name);
      for (let i = 0; i < values.length; i++) expect(got(i)).toBe(f16(values[i]));
    }
  });

  it('qwen2: q/k/v biases, rows kept in their order', async () => {
    const { hf, st, config } = await importTiny({ arch: 'qwen2' });
    expect(config).toMatchObject({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', num_key_value_heads: 2 });
    expect(st.header['model.layers.0.self_attn.k_proj.bias'].shape).toEqual([16]);
    for (const [name, { values }] of hf) {
      const got = st.f16(name);
      for (let i = 0; i < values.length; i += 7) expect(got(i)).toBe(f16(values[i]));
    }
  });

  it('llama 3.1-style rope_freqs becomes rope_scaling (and is not written as a weight)', async () => {
    // Factors as llama.cpp's converter computes them for factor 8, low 1, high 4, context 8192.
    const base = 500000, headDim = 8;
    const factors = Array.from({ length: headDim / 2 }, (_, i) => {
      const wavelength = 2 * Math.PI * base ** ((2 * i) / headDim);
      if (wavelength < 8192 / 4) return 1;
      if (wavelength > 8192 / 1) return 8;
      const smooth = (8192 / wavelength - 1) / (4 - 1);
      return 1 / ((1 - smooth) / 8 + smooth);
    });
    expect(new Set(factors.map((f) => f.toFixed(3))).size).toBe(3); // 1, a blend, 8
    const extra = [{ name: 'rope_freqs.weight', type: 'F32', dims: [headDim / 2], data: new Uint8Array(Float32Array.from(factors).buffer) }];
    const { config, st } = await importTiny({ extraTensors: extra, metadata: { 'llama.rope.freq_base': f32(base) } });
    expect(config.rope_scaling).toEqual({ rope_type: 'llama3', type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    expect(Object.keys(st.header).some((n) => n.includes('rope'))).toBe(false);
    const odd = [{ ...extra[0], data: new Uint8Array(Float32Array.from([1, 2, 3, 5]).buffer) }];
    await expectRefused(tinyModelGguf({ extraTensors: odd, metadata: { 'llama.rope.freq_base': f32(base) } }).gguf.bytes, /rope_freqs\.weight holds RoPE frequency factors that match no Llama 3 rope_scaling/);
  });

  it('replaces an existing model only when forced, and fills an empty folder', async () => {
    const { gguf } = tinyModelGguf();
    const { file, out, parent } = setup(gguf.bytes);
    mkdirSync(out);
    await importGguf(file, out);
    await expect(importGguf(file, out)).rejects.toThrow(/out already holds a model/);
    writeFileSync(path.join(out, 'marker'), 'old');
    await importGguf(file, out, { force: true });
    expect(existsSync(path.join(out, 'marker'))).toBe(false);
    expect(existsSync(path.join(out, 'model.safetensors'))).toBe(true);
    expect(readdirSync(parent).sort()).toEqual(['model.gguf', 'out']);
  });

  it('a cancel leaves nothing behind', async () => {
    const { gguf } = tinyModelGguf({ layers: 4 });
    const { file, out, parent } = setup(gguf.bytes);
    const controller = new AbortController();
    const err = await importGguf(file, out, {
      signal: controller.signal,
      onProgress: (p) => { if (p.phase === 'tensors' && p.done === 3) controller.abort(); },
    }).then(() => null, (e: Error & { code?: string }) => e);
    expect(err?.code).toBe('CANCELLED');
    expect(readdirSync(parent)).toEqual(['model.gguf']);
  });
});

// ---- bad input -----------------------------------------------------------------------------------
/** Byte position of the u64 length in front of the first occurrence of `text` in the file. */
function lengthFieldOf(bytes: Buffer, text: string): number {
  const at = bytes.indexOf(Buffer.from(text, 'utf8'));
  if (at < 8) throw new Error(`"${text}" not found`);
  return at - 8;
}
/** Byte position of the data offset field of tensor `name` in its tensor info. */
function tensorOffsetField(bytes: Buffer, name: string, nDims: number): number {
  const at = bytes.indexOf(Buffer.from(name, 'utf8'));
  return at + name.length + 4 + 8 * nDims + 4;
}

describe('bad input is refused with a clear message and nothing written', () => {
  const good = () => Buffer.from(tinyModelGguf().gguf.bytes);

  it('wrong magic', async () => {
    const b = good();
    b.write('GGUX', 0, 'latin1');
    await expectRefused(b, /not a GGUF file: a GGUF model starts with the 4 bytes "GGUF"/);
    await expectRefused(Buffer.from('PK\x03\x04 a zip file', 'latin1'), /not a GGUF file/);
  });

  it('unknown version', async () => {
    const b = good();
    b.writeUInt32LE(4, 4);
    await expectRefused(b, /GGUF version 4 is unknown; the importer reads versions 2 and 3/);
    b.writeUInt32LE(1, 4);
    await expectRefused(b, /GGUF version 1 .* is not supported/);
  });

  it('truncated header', async () => {
    const b = good();
    await expectRefused(b.subarray(0, 2000), /claims an array of 262 string items, past the end of the file \(2000 bytes\); the file is damaged or truncated/);
    const inInfos = b.indexOf(Buffer.from('blk.1.ffn_up.weight')) + 'blk.1.ffn_up.weight'.length + 2;
    await expectRefused(b.subarray(0, inInfos), new RegExp(`the file ends at byte ${inInfos} while reading the dimension count of tensor blk\\.1\\.ffn_up\\.weight .*truncated`));
    await expectRefused(b.subarray(0, 10), /the file ends at byte 10 while reading the tensor count/);
  });

  it('truncated data', async () => {
    const b = good();
    await expectRefused(b.subarray(0, b.length - 100), /tensor output_norm\.weight's data \(bytes \d+ to \d+\) lies past the end of the file/);
  });

  it('a string length past the end', async () => {
    const b = good();
    b.writeBigUInt64LE(10n ** 12n, lengthFieldOf(b, 'tiny test model'));
    await expectRefused(b, /the value of metadata general\.name at byte \d+ claims a string of 1000000000000 bytes, past the end of the file/);
  });

  it('an array length past the end', async () => {
    const b = good();
    // The token list: item type (uint32) and count (uint64) precede the first token's length.
    const count = lengthFieldOf(b, '<|endoftext|>') - 8;
    b.writeBigUInt64LE(2n ** 40n, count);
    await expectRefused(b, /the value of metadata tokenizer\.ggml\.tokens at byte \d+ claims an array of 1099511627776 string items, past the end of the file/);
  });

  it('tensor data out of bounds', async () => {
    const b = good();
    b.writeBigUInt64LE(BigInt(32 * 1_000_000), tensorOffsetField(b, 'blk.1.ffn_up.weight', 2));
    await expectRefused(b, /tensor blk\.1\.ffn_up\.weight's data \(bytes \d+ to \d+\) lies past the end of the file/);
  });

  it('misaligned tensor data', async () => {
    const b = good();
    const at = tensorOffsetField(b, 'blk.0.attn_norm.weight', 1);
    b.writeBigUInt64LE(b.readBigUInt64LE(at) + 4n, at);
    await expectRefused(b, /tensor blk\.0\.attn_norm\.weight's data offset \d+ is not a multiple of the alignment 32/);
  });

  it('an unsupported tensor type, by name', async () => {
    const { gguf } = tinyModelGguf({ extraTensors: [{ name: 'blk.0.extra.weight', type: 'F32', dims: [8], data: new Uint8Array(32) }] });
    await expectRefused(gguf.bytes, /tensor blk\.0\.extra\.weight is not part of a llama model/);
    // Re-type a linear layer in place as IQ2_XXS (256 x 256 values = 256 blocks of 66 bytes, which
    // fit inside its float32 data): the file is valid, the type is not one we read.
    const b = Buffer.from(tinyModelGguf({ hidden: 256, intermediate: 256, layers: 1 }).gguf.bytes);
    const name = 'blk.0.attn_q.weight';
    b.writeUInt32LE(16, b.indexOf(Buffer.from(name)) + name.length + 4 + 16);
    await expectRefused(b, /tensor blk\.0\.attn_q\.weight has type IQ2_XXS, which the importer does not read; supported: F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16/);
  });

  it('an unsupported architecture, by name', async () => {
    await expectRefused(tinyModelGguf({ arch: 'gemma2' }).gguf.bytes, /its architecture is "gemma2", which the studio does not run; supported: llama .* and qwen2/);
  });

  it('a missing tokenizer', async () => {
    await expectRefused(tinyModelGguf({ metadata: { 'tokenizer.ggml.tokens': undefined } }).gguf.bytes, /has no tokenizer \(tokenizer\.ggml\.tokens is missing\)/);
    await expectRefused(tinyModelGguf({ metadata: { 'tokenizer.ggml.model': undefined } }).gguf.bytes, /has no tokenizer \(tokenizer\.ggml\.model is missing\)/);
    await expectRefused(tinyModelGguf({ metadata: { 'tokenizer.ggml.pre': str('tekken-9') } }).gguf.bytes, /pre-tokenizer "tekken-9", which the importer does not convert/);
  });

  // Files whose import used to succeed but whose folder then could not be opened.
  it('NaN metadata (JSON would store it as null), by the field and the metadata behind it', async () => {
    await expectRefused(tinyModelGguf({ metadata: { 'llama.rope.freq_base': f32(NaN) } }).gguf.bytes, /config\.json\.rope_theta would be NaN \(from the file's metadata llama\.rope\.freq_base\), which is not a usable number/);
    await expectRefused(tinyModelGguf({ metadata: { 'llama.attention.layer_norm_rms_epsilon': f32(Infinity) } }).gguf.bytes, /config\.json\.rms_norm_eps would be Infinity/);
  });

  it('a context length of 0', async () => {
    await expectRefused(
      tinyModelGguf({ metadata: { 'llama.context_length': u32(0) } }).gguf.bytes,
      /the imported model would not open, so nothing was written: config\.json: max_position_embeddings must be a positive integer \(found 0\)\. \(config\.json max_position_embeddings comes from the file's metadata llama\.context_length\)/,
    );
  });

  it('a fractional block count', async () => {
    await expectRefused(tinyModelGguf({ metadata: { 'llama.block_count': f32(1.5) } }).gguf.bytes, /num_hidden_layers must be a positive integer \(found 1\.5\).*llama\.block_count/);
  });

  it('a RoPE scaling type the studio does not run', async () => {
    await expectRefused(
      tinyModelGguf({ metadata: { 'llama.rope.scaling.type': str('yarn'), 'llama.rope.scaling.factor': f32(4), 'llama.rope.scaling.original_context_length': u32(64) } }).gguf.bytes,
      /would not open.*rope_scaling type "yarn" is not supported; the studio supports linear, llama3, dynamic/,
    );
  });

  it('a chat template that does not parse, or that cannot finish', async () => {
    await expectRefused(tinyModelGguf({ metadata: { 'tokenizer.chat_template': str('{% for m in messages %}{{ m }') } }).gguf.bytes, /would not open.*The chat template of .*out \(tokenizer_config\.json\) cannot be parsed/);
    await expectRefused(tinyModelGguf({ metadata: { 'tokenizer.chat_template': str('{% for i in range(1000000000) %}x{% endfor %}') } }).gguf.bytes, /would not open.*asked for range\(\) of 1,000,000,000 numbers/);
  });

  it('a chat template that raises on a plain conversation is imported with a warning', async () => {
    const { gguf } = tinyModelGguf({ metadata: { 'tokenizer.chat_template': str("{{ raise_exception('a system message is required') }}") } });
    const { file, out } = setup(gguf.bytes);
    const r = await importGguf(file, out);
    expect(r.warnings.join('\n')).toMatch(/The chat template fails on a one-message conversation \(.*a system message is required.*\); chats with this model may fail/);
  });

  it('temporary files and imports killed half-way are never published and are cleaned up', async () => {
    const { file, out, parent } = setup(good());
    // What a killed import of the same output leaves beside it (its process is gone).
    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    const leftover = path.join(parent, `.out.importing-${gone}-${Date.now()}`);
    mkdirSync(leftover);
    writeFileSync(path.join(leftover, `.model.safetensors.${gone}.tmp`), Buffer.alloc(80_000));
    await importGguf(file, out);
    expect(readdirSync(parent).sort()).toEqual(['model.gguf', 'out']);
    expect(readdirSync(out).filter((f) => f.startsWith('.') || f.endsWith('.tmp'))).toEqual([]);
  });

  it('an output folder that holds something else', async () => {
    const { file, out } = setup(good());
    mkdirSync(out);
    writeFileSync(path.join(out, 'notes.txt'), 'mine');
    await expect(importGguf(file, out)).rejects.toThrow(/out exists and is not an empty folder or a model folder/);
    expect(readdirSync(out)).toEqual(['notes.txt']);
  });
});
