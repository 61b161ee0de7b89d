// Test helpers: a small GGUF writer (every value type, nested arrays, any alignment) written from the
// format description, and tiny models built with it. Used by the GGUF tests and the fuzz bench. Also
// random-weight Hugging Face folders of the Llama family for the writer and llama.cpp comparisons.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { ggmlTypeByName } from '../engine/gguf/ggml-types.js';
import type { GgufValueType } from '../engine/gguf/reader.js';
import { storiesCopy, writeSafetensors, type RawTensor } from './model-files.js';

export interface WValue {
  type: GgufValueType;
  value: unknown;
  /** For arrays: the item type (nested arrays give their items as WValue-free plain values). */
  itemType?: GgufValueType;
  /** For arrays of arrays: the item type of the inner arrays. */
  innerType?: GgufValueType;
}
export const u8 = (v: number): WValue => ({ type: 'uint8', value: v });
export const i8 = (v: number): WValue => ({ type: 'int8', value: v });
export const u16 = (v: number): WValue => ({ type: 'uint16', value: v });
export const i16 = (v: number): WValue => ({ type: 'int16', value: v });
export const u32 = (v: number): WValue => ({ type: 'uint32', value: v });
export const i32 = (v: number): WValue => ({ type: 'int32', value: v });
export const u64 = (v: number | bigint): WValue => ({ type: 'uint64', value: v });
export const i64 = (v: number | bigint): WValue => ({ type: 'int64', value: v });
export const f32 = (v: number): WValue => ({ type: 'float32', value: v });
export const f64 = (v: number): WValue => ({ type: 'float64', value: v });
export const bool = (v: boolean): WValue => ({ type: 'bool', value: v });
export const str = (v: string): WValue => ({ type: 'string', value: v });
export const arr = (itemType: GgufValueType, value: unknown[], innerType?: GgufValueType): WValue => ({ type: 'array', itemType, value, innerType });

export interface WTensor {
  name: string;
  /** ggml type name, e.g. 'F32', 'Q8_0'. */
  type: string;
  /** ggml order (dims[0] = row length). */
  dims: number[];
  data: Uint8Array;
}

export interface GgufBuild {
  version?: number;
  /** Written as general.alignment when given; 32 otherwise. */
  alignment?: number;
  metadata: Array<[string, WValue]>;
  tensors: WTensor[];
}

export interface BuiltGguf {
  bytes: Buffer;
  /** Byte offset where the tensor infos start, and where tensor data starts. */
  tensorInfoOffset: number;
  dataOffset: number;
}

const TYPE_IDS: Record<GgufValueType, number> = {
  uint8: 0, int8: 1, uint16: 2, int16: 3, uint32: 4, int32: 5, float32: 6, bool: 7, string: 8, array: 9, uint64: 10, int64: 11, float64: 12,
};

class Bytes {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  num(kind: GgufValueType, v: unknown): void {
    const sizes: Partial<Record<GgufValueType, number>> = { uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, bool: 1, uint64: 8, int64: 8, float64: 8 };
    const b = Buffer.alloc(sizes[kind]!);
    switch (kind) {
      case 'uint8': b.writeUInt8(v as number); break;
      case 'int8': b.writeInt8(v as number); break;
      case 'uint16': b.writeUInt16LE(v as number); break;
      case 'int16': b.writeInt16LE(v as number); break;
      case 'uint32': b.writeUInt32LE(v as number); break;
      case 'int32': b.writeInt32LE(v as number); break;
      case 'float32': b.writeFloatLE(v as number); break;
      case 'float64': b.writeDoubleLE(v as number); break;
      case 'bool': b.writeUInt8(v ? 1 : 0); break;
      case 'uint64': b.writeBigUInt64LE(BigInt(v as number)); break;
      case 'int64': b.writeBigInt64LE(BigInt(v as number)); break;
      default: throw new Error(kind);
    }
    this.push(b);
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.num('uint64', b.length);
    this.push(b);
  }
  value(type: GgufValueType, v: unknown, itemType?: GgufValueType, innerType?: GgufValueType): void {
    if (type === 'string') this.string(v as string);
    else if (type === 'array') {
      const items = v as unknown[];
      this.num('uint32', TYPE_IDS[itemType!]);
      this.num('uint64', items.length);
      for (const item of items) this.value(itemType!, item, innerType);
    } else this.num(type, v);
  }
  concat(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Builds a GGUF file; tensor data are placed in order, each at the next aligned offset. */
export function buildGguf(spec: GgufBuild): BuiltGguf {
  const alignment = spec.alignment ?? 32;
  const metadata: Array<[string, WValue]> = spec.alignment !== undefined ? [['general.alignment', u32(spec.alignment)], ...spec.metadata] : spec.metadata;
  const w = new Bytes();
  w.push(Buffer.from('GGUF', 'latin1'));
  w.num('uint32', spec.version ?? 3);
  w.num('uint64', spec.tensors.length);
  w.num('uint64', metadata.length);
  for (const [key, v] of metadata) {
    w.string(key);
    w.num('uint32', TYPE_IDS[v.type]);
    w.value(v.type, v.value, v.itemType, v.innerType);
  }
  const tensorInfoOffset = w.length;
  let rel = 0;
  for (const t of spec.tensors) {
    const type = ggmlTypeByName(t.type);
    if (!type) throw new Error(`unknown type ${t.type}`);
    w.string(t.name);
    w.num('uint32', t.dims.length);
    for (const d of t.dims) w.num('uint64', d);
    w.num('uint32', type.id);
    w.num('uint64', rel);
    rel += Math.ceil(t.data.length / alignment) * alignment;
  }
  const dataOffset = Math.ceil(w.length / alignment) * alignment;
  w.push(Buffer.alloc(dataOffset - w.length));
  for (const t of spec.tensors) {
    w.push(Buffer.from(t.data));
    w.push(Buffer.alloc(Math.ceil(t.data.length / alignment) * alignment - t.data.length));
  }
  return { bytes: w.concat(), tensorInfoOffset, dataOffset };
}

export function f32Data(values: ArrayLike<number>): Uint8Array {
  const a = Float32Array.from(values);
  return new Uint8Array(a.buffer);
}

/** A deterministic pseudo-random sequence in [-1, 1). */
export function randomValues(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = (s / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** Byte-level alphabet (GPT-2): printable Latin-1 bytes map to themselves, the rest to U+0100 onwards. */
export function byteLevelAlphabet(): string[] {
  const keep = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out.push(String.fromCharCode(keep(b) ? b : next++));
  return out;
}

export interface TinyModel {
  arch?: 'llama' | 'qwen2' | string;
  hidden?: number;
  intermediate?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  tied?: boolean;
  /** Tensor type of the linear layers. */
  linearType?: 'F32' | 'F16';
  /** Replaces or removes (value undefined) metadata entries. */
  metadata?: Record<string, WValue | undefined>;
  /** Extra tensors. */
  extraTensors?: WTensor[];
}

/**
 * A tiny model with a byte-level tokenizer (256 byte tokens, a few merges, two control tokens) and
 * random weights; returns the GGUF and the weights in Hugging Face layout (rotate-half q/k rows) so a
 * test can compare an import with them.
 */
export function tinyModelGguf(opts: TinyModel = {}): { gguf: BuiltGguf; hf: Map<string, { shape: number[]; values: Float32Array }> } {
  const arch = opts.arch ?? 'llama';
  const hidden = opts.hidden ?? 32, inter = opts.intermediate ?? 64, layers = opts.layers ?? 2;
  const heads = opts.heads ?? 4, kvHeads = opts.kvHeads ?? 2, headDim = hidden / heads;
  const alphabet = byteLevelAlphabet();
  const tokens = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', ...alphabet, 'Ġt', 'he', 'Ġthe'];
  const types = tokens.map((_, i) => (i < 3 ? 3 : 1));
  const merges = ['Ġ t', 'h e', 'Ġt he'];
  const vocab = tokens.length;
  const hf = new Map<string, { shape: number[]; values: Float32Array }>();
  const tensors: WTensor[] = [];
  let seed = 1;
  const linearType = opts.linearType ?? 'F32';
  const add = (ggufName: string, hfName: string, shape: number[], permuteHeads?: number, type = 'F32') => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = randomValues(n, seed++);
    hf.set(hfName, { shape, values });
    const stored = permuteHeads && arch === 'llama' ? llamaCppPermuteRows(values, shape[0], shape.length > 1 ? shape[1] : 1, permuteHeads) : values;
    let data: Uint8Array;
    if (type === 'F16') {
      const b = Buffer.alloc(n * 2);
      for (let i = 0; i < n; i++) b.writeUInt16LE(f32ToF16Bits(stored[i]), 2 * i);
      data = b;
    } else data = f32Data(stored);
    tensors.push({ name: ggufName, type, dims: [...shape].reverse(), data });
  };
  add('token_embd.weight', 'model.embed_tokens.weight', [vocab, hidden]);
  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`, q = `model.layers.${l}.`;
    add(p + 'attn_norm.weight', q + 'input_layernorm.weight', [hidden]);
    add(p + 'attn_q.weight', q + 'self_attn.q_proj.weight', [hidden, hidden], heads, linearType);
    add(p + 'attn_k.weight', q + 'self_attn.k_proj.weight', [kvHeads * headDim, hidden], kvHeads, linearType);
    add(p + 'attn_v.weight', q + 'self_attn.v_proj.weight', [kvHeads * headDim, hidden], undefined, linearType);
    if (arch === 'qwen2') {
      add(p + 'attn_q.bias', q + 'self_attn.q_proj.bias', [hidden]);
      add(p + 'attn_k.bias', q + 'self_attn.k_proj.bias', [kvHeads * headDim]);
      add(p + 'attn_v.bias', q + 'self_attn.v_proj.bias', [kvHeads * headDim]);
    }
    add(p + 'attn_output.weight', q + 'self_attn.o_proj.weight', [hidden, hidden], undefined, linearType);
    add(p + 'ffn_norm.weight', q + 'post_attention_layernorm.weight', [hidden]);
    add(p + 'ffn_gate.weight', q + 'mlp.gate_proj.weight', [inter, hidden], undefined, linearType);
    add(p + 'ffn_up.weight', q + 'mlp.up_proj.weight', [inter, hidden], undefined, linearType);
    add(p + 'ffn_down.weight', q + 'mlp.down_proj.weight', [hidden, inter], undefined, linearType);
  }
  add('output_norm.weight', 'model.norm.weight', [hidden]);
  if (opts.tied === false) add('output.weight', 'lm_head.weight', [vocab, hidden]);
  tensors.push(...(opts.extraTensors ?? []));

  const meta = new Map<string, WValue>([
    ['general.architecture', str(arch)],
    ['general.name', str('tiny test model')],
    [`${arch}.block_count`, u32(layers)],
    [`${arch}.context_length`, u32(256)],
    [`${arch}.embedding_length`, u32(hidden)],
    [`${arch}.feed_forward_length`, u32(inter)],
    [`${arch}.attention.head_count`, u32(heads)],
    [`${arch}.attention.head_count_kv`, u32(kvHeads)],
    [`${arch}.rope.freq_base`, f32(10000)],
    [`${arch}.attention.layer_norm_rms_epsilon`, f32(1e-6)],
    ['tokenizer.ggml.model', str('gpt2')],
    ['tokenizer.ggml.pre', str('smollm')],
    ['tokenizer.ggml.tokens', arr('string', tokens)],
    ['tokenizer.ggml.token_type', arr('int32', types)],
    ['tokenizer.ggml.merges', arr('string', merges)],
    ['tokenizer.ggml.bos_token_id', u32(1)],
    ['tokenizer.ggml.eos_token_id', u32(2)],
    ['tokenizer.ggml.add_bos_token', bool(false)],
    ['tokenizer.chat_template', str("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}")],
  ]);
  for (const [k, v] of Object.entries(opts.metadata ?? {})) {
    if (v === undefined) meta.delete(k);
    else meta.set(k, v);
  }
  return { gguf: buildGguf({ metadata: [...meta.entries()], tensors }), hf };
}

/**
 * llama.cpp's conversion of Hugging Face q/k weights (convert_hf_to_gguf's permute): view the rows
 * as [heads, 2, headDim / 2] and swap the last two axes, so row (h, half, i) moves to (h, i, half).
 */
export function llamaCppPermuteRows(values: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const half = rows / heads / 2;
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++)
    for (let p = 0; p < 2; p++)
      for (let i = 0; i < half; i++) {
        const from = (h * 2 + p) * half + i; // index in [heads, 2, half]
        const to = (h * half + i) * 2 + p; // index in [heads, half, 2]
        out.set(values.subarray(from * cols, (from + 1) * cols), to * cols);
      }
  return out;
}

/** float32 -> float16 bits, round to nearest even (test-side reference, written from IEEE 754). */
const scratch32 = new Float32Array(1);
const scratchBits = new Uint32Array(scratch32.buffer);
export function f32ToF16Bits(x: number): number {
  scratch32[0] = x;
  const sign = (scratchBits[0] >>> 16) & 0x8000;
  const a = Math.abs(scratch32[0]);
  if (Number.isNaN(a)) return sign | 0x7e00;
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundEven(a / 2 ** -24);
  let exp = Math.floor(Math.log2(a));
  if (2 ** exp > a) exp--;
  if (2 ** (exp + 1) <= a) exp++;
  let m = roundEven((a / 2 ** exp - 1) * 1024);
  let ee = exp;
  if (m === 1024) { m = 0; ee++; }
  return sign | ((ee + 15) << 10) | m;
}
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 ? 2 * Math.round(x / 2) : r;
}

/** float16 bits -> number. */
export function f16BitsToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Reads a safetensors file's header and float16 values of one tensor (independent of the writer). */
export function readSafetensors(file: string): {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  f16: (name: string) => (i: number) => number;
} {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  delete header.__metadata__;
  return { header, f16: (name) => (i) => f16BitsToNumber(bytes.readUInt16LE(8 + n + header[name].data_offsets[0] + 2 * i)) };
}


/** Deterministic standard normal samples (mulberry32 + Box-Muller). */
export function normalRng(seed: number): () => number {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
}

/**
 * A random-weight Hugging Face folder of a small Llama-family model (F32 safetensors) with
 * stories260k's tokenizer (512 tokens): hidden 64, intermediate 96, 4 layers, 4 heads, 2 key/value
 * heads, untied; `config` overrides or adds fields (model_type, head_dim, sliding windows ...). Biases
 * for qwen2, q/k norms for qwen3. Weights are scaled so that attention is sharp and the logits spread
 * over several nats (what a reference comparison needs to see differences).
 */
export function randomFamilyFolder(config: Record<string, unknown>, seed: number): string {
  const H = 64, I = 96, LAYERS = 4, HEADS = 4, KV = 2, VOCAB = 512;
  const dir = storiesCopy((cfg) => {
    for (const k of Object.keys(cfg)) delete cfg[k];
    Object.assign(cfg, {
      hidden_size: H, intermediate_size: I, num_hidden_layers: LAYERS, num_attention_heads: HEADS, num_key_value_heads: KV,
      vocab_size: VOCAB, max_position_embeddings: 256, rms_norm_eps: 1e-6, rope_theta: 10000, hidden_act: 'silu',
      tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'float32', ...config,
    });
  });
  const arch = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const d = (arch.head_dim as number | undefined) ?? H / HEADS;
  const nq = HEADS * d, nkv = KV * d;
  const g = normalRng(seed);
  const tensors: RawTensor[] = [];
  const add = (n: string, shape: number[], scale: number, offset = 0) => {
    const count = shape.reduce((x, y) => x * y, 1);
    const f = new Float32Array(count);
    for (let i = 0; i < count; i++) f[i] = offset + scale * g();
    tensors.push({ name: n, dtype: 'F32', shape, data: Buffer.from(f.buffer) });
  };
  add('model.embed_tokens.weight', [VOCAB, H], 1);
  add('model.norm.weight', [H], 0.1, 1);
  if (arch.tie_word_embeddings !== true) add('lm_head.weight', [VOCAB, H], 2.5 / Math.sqrt(H));
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [H], 0.1, 1);
    add(`${p}post_attention_layernorm.weight`, [H], 0.1, 1);
    add(`${p}self_attn.q_proj.weight`, [nq, H], 2 / Math.sqrt(H));
    add(`${p}self_attn.k_proj.weight`, [nkv, H], 2 / Math.sqrt(H));
    add(`${p}self_attn.v_proj.weight`, [nkv, H], 1 / Math.sqrt(H));
    add(`${p}self_attn.o_proj.weight`, [H, nq], 1 / Math.sqrt(nq));
    add(`${p}mlp.gate_proj.weight`, [I, H], 1 / Math.sqrt(H));
    add(`${p}mlp.up_proj.weight`, [I, H], 1 / Math.sqrt(H));
    add(`${p}mlp.down_proj.weight`, [H, I], 1 / Math.sqrt(I));
    if (arch.model_type === 'qwen2') {
      add(`${p}self_attn.q_proj.bias`, [nq], 0.5);
      add(`${p}self_attn.k_proj.bias`, [nkv], 0.5);
      add(`${p}self_attn.v_proj.bias`, [nkv], 0.2);
    }
    if (arch.model_type === 'qwen3') {
      // Qwen3's norms carry the scale of q and k after normalization: wide enough to make attention sharp.
      add(`${p}self_attn.q_norm.weight`, [d], 0.5, 2);
      add(`${p}self_attn.k_norm.weight`, [d], 0.5, 2);
    }
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}
