// Hugging Face Llama-family folder -> GGUF v3 (F16 or F32) that llama.cpp reads, so its tools run on
// exactly the weights our engine runs (benchmarks side by side, perplexity parity, reference logits).
// llama.cpp architecture by model:
//   llama, mistral (no sliding window) -> llama;  qwen2 -> qwen2;  qwen3 -> qwen3 (attn_q_norm /
//   attn_k_norm);  smollm3 -> smollm3 (llama.cpp fixes its NoPE layers at every 4th: others are refused);
//   mistral, qwen2 with sliding-window layers -> granite_swa: llama.cpp's llama and qwen2 ignore sliding
//   windows, and granite_swa is its Llama block with per-layer standard sliding windows
//   (sliding_window_pattern, n_swa = the window), given a logit scale of 1 and attention sinks of -1e30
//   (exp(sink) = 0: no sink), so it computes exactly the Hugging Face model.
// Layout written:
//   "GGUF" | u32 3 | u64 tensor count | u64 metadata count | metadata | tensor infos | pad to 32 | data
// Each tensor's data starts at a multiple of 32 from the data start. Linear weights (2-D) take the
// chosen type; norms stay F32 as llama.cpp's converter keeps them. q/k rows go from Hugging Face's
// rotate-half order to llama.cpp's interleaved order (the exact inverse of the importer's gather).
// Tensors are streamed one at a time from the memory map; only one is ever held in memory.
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';

import { describeWriteError } from '../../util/atomic-file.js';
import { UserError } from '../../util/errors.js';
import type { Architecture } from '../../contract/model.js';
import { openModel, type OpenedModel } from '../model/index.js';
import { f16BitsToF32, f32ToF16Bits } from '../model/half.js';
import { IMPORT_RECORD_FILE } from './import.js';
import type { GgufValueType } from './reader.js';
import { gatherRows, rotateHalfRowSources } from './rope.js';

export type GgufOutType = 'F16' | 'F32';
const ALIGN = 32;
const GGML_TYPE_ID: Record<GgufOutType, number> = { F32: 0, F16: 1 };
const TYPE_IDS: Record<GgufValueType, number> = {
  uint8: 0, int8: 1, uint16: 2, int16: 3, uint32: 4, int32: 5, float32: 6, bool: 7, string: 8, array: 9, uint64: 10, int64: 11, float64: 12,
};
// llama.cpp token types.
const TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_BYTE = 6;

export type GgufWriteValue =
  | { type: Exclude<GgufValueType, 'array'>; value: number | bigint | boolean | string }
  | { type: 'array'; itemType: 'string' | 'int32' | 'float32'; value: Array<string | number> }
  | { type: 'array'; itemType: 'bool'; value: boolean[] };

/** Serializes metadata key/values (little-endian, strings as u64 length + UTF-8). */
export function encodeMetadata(entries: Array<[string, GgufWriteValue]>): Buffer {
  const parts: Buffer[] = [];
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const n = Buffer.alloc(8);
    n.writeBigUInt64LE(BigInt(b.length));
    parts.push(n, b);
  };
  const scalar = (type: GgufValueType, v: number | bigint | boolean | string) => {
    let b: Buffer;
    switch (type) {
      case 'string': return str(v as string);
      case 'uint8': b = Buffer.alloc(1); b.writeUInt8(v as number); break;
      case 'int8': b = Buffer.alloc(1); b.writeInt8(v as number); break;
      case 'bool': b = Buffer.alloc(1); b.writeUInt8(v ? 1 : 0); break;
      case 'uint16': b = Buffer.alloc(2); b.writeUInt16LE(v as number); break;
      case 'int16': b = Buffer.alloc(2); b.writeInt16LE(v as number); break;
      case 'uint32': b = Buffer.alloc(4); b.writeUInt32LE(v as number); break;
      case 'int32': b = Buffer.alloc(4); b.writeInt32LE(v as number); break;
      case 'float32': b = Buffer.alloc(4); b.writeFloatLE(v as number); break;
      case 'uint64': b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v as number)); break;
      case 'int64': b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(v as number)); break;
      case 'float64': b = Buffer.alloc(8); b.writeDoubleLE(v as number); break;
      default: throw new Error(`encodeMetadata: ${type}`);
    }
    parts.push(b);
  };
  for (const [key, v] of entries) {
    str(key);
    scalar('uint32', TYPE_IDS[v.type]);
    if (v.type === 'array') {
      scalar('uint32', TYPE_IDS[v.itemType]);
      scalar('uint64', v.value.length);
      if (v.itemType === 'string') for (const s of v.value) str(s as string);
      else if (v.itemType === 'bool') parts.push(Buffer.from(v.value.map((b) => (b ? 1 : 0))));
      else {
        const b = Buffer.alloc(4 * v.value.length);
        v.value.forEach((x, i) => (v.itemType === 'int32' ? b.writeInt32LE(x as number, 4 * i) : b.writeFloatLE(x as number, 4 * i)));
        parts.push(b);
      }
    } else scalar(v.type, v.value);
  }
  return Buffer.concat(parts);
}

/** For each interleaved (GGUF) row, the rotate-half row that goes there: the importer's gather, inverted. */
export function interleavedRowSources(rows: number, heads: number): Int32Array {
  const toRotateHalf = rotateHalfRowSources(rows, heads);
  const inv = new Int32Array(rows);
  for (let r = 0; r < rows; r++) inv[toRotateHalf[r]] = r;
  return inv;
}

// Hugging Face tensor name -> GGUF name (the same in every architecture written).
const LAYER_NAMES: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.q_norm.weight': 'attn_q_norm.weight',
  'self_attn.k_norm.weight': 'attn_k_norm.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};

function ggufTensorName(hf: string): string | null {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (m && LAYER_NAMES[m[2]]) return `blk.${m[1]}.${LAYER_NAMES[m[2]]}`;
  return null;
}

type Json = Record<string, unknown>;

function readJson(dir: string, name: string): Json | null {
  try {
    return JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as Json;
  } catch {
    return null;
  }
}

/** tokenizer.ggml.pre for a byte-level BPE tokenizer.json: what the GGUF import recorded, else read from its pre-tokenizer. */
function preTokenizerName(dir: string, tok: Json): string {
  const record = readJson(dir, IMPORT_RECORD_FILE) as { tokenizer?: { preTokenizer?: string } } | null;
  if (record?.tokenizer?.preTokenizer) return record.tokenizer.preTokenizer;
  const pre = tok.pre_tokenizer as Json | null;
  if (pre?.type === 'ByteLevel') return 'gpt2';
  const seq = (pre?.type === 'Sequence' ? (pre.pretokenizers as Json[]) : []) ?? [];
  const regex = (seq[0]?.pattern as Json | undefined)?.Regex as string | undefined;
  if (regex === '\\p{N}' || regex === '\\d') return 'smollm';
  if (regex?.includes('\\p{N}{1,3}')) return 'llama-bpe';
  if (regex?.includes('\\p{N}|')) return 'qwen2';
  throw new UserError(
    `${path.join(dir, 'tokenizer.json')}: its byte-level pre-tokenizer is not one the GGUF writer knows (gpt2, smollm, llama-bpe, qwen2); llama.cpp would split text differently.`,
    'UNSUPPORTED_TOKENIZER',
  );
}

/** GGUF tokenizer metadata from a folder's tokenizer.json (byte-level BPE -> "gpt2", SentencePiece-style BPE -> "llama"). */
export function tokenizerMetadata(dir: string, model: Pick<OpenedModel, 'tokenizer' | 'architecture'>): Array<[string, GgufWriteValue]> {
  const file = path.join(dir, 'tokenizer.json');
  const tok = readJson(dir, 'tokenizer.json');
  if (!tok || !model.tokenizer) throw new UserError(`${file}: missing or unreadable; the GGUF writer needs the model's tokenizer.json.`, 'MISSING_TOKENIZER');
  const m = tok.model as Json;
  if (m?.type !== 'BPE') throw new UserError(`${file}: a ${String(m?.type)} tokenizer; the GGUF writer writes BPE tokenizers only.`, 'UNSUPPORTED_TOKENIZER');
  const vocab = m.vocab as Record<string, number>;
  const added = (tok.added_tokens as Array<{ id: number; content: string; special: boolean }>) ?? [];
  const size = Math.max(model.architecture.vocabSize, ...Object.values(vocab).map((id) => id + 1), ...added.map((a) => a.id + 1));
  const tokens: string[] = new Array<string>(size);
  const types = new Array<number>(size).fill(TOKEN_NORMAL);
  for (const [t, id] of Object.entries(vocab)) tokens[id] = t;
  for (const a of added) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? TOKEN_CONTROL : TOKEN_USER_DEFINED;
  }
  // Ids the tokenizer never produces (the embedding is larger than the vocabulary): unused placeholders.
  for (let id = 0; id < size; id++) if (tokens[id] === undefined) { tokens[id] = `[PAD${id}]`; types[id] = 5; }
  const merges = (m.merges as Array<string | [string, string]>).map((x) => (typeof x === 'string' ? x : `${x[0]} ${x[1]}`));
  const byteLevel = JSON.stringify(tok.pre_tokenizer ?? null).includes('ByteLevel') || JSON.stringify(tok.decoder ?? null).includes('ByteLevel');
  const t = model.tokenizer;
  const out: Array<[string, GgufWriteValue]> = [];
  if (byteLevel) {
    out.push(['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }], ['tokenizer.ggml.pre', { type: 'string', value: preTokenizerName(dir, tok) }]);
    out.push(['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }]);
    out.push(['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: types }]);
    out.push(['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: merges }]);
  } else {
    // SentencePiece BPE: llama.cpp merges the adjacent pair whose joined token scores highest, so a
    // token's score is minus the rank of the merge that makes it (earlier merges win).
    const scores = new Array<number>(size).fill(0);
    merges.forEach((mg, rank) => {
      const id = vocab[mg.replace(' ', '')];
      if (id !== undefined && scores[id] === 0) scores[id] = -(rank + 1);
    });
    for (let id = 0; id < size; id++) {
      if (/^<0x[0-9A-F]{2}>$/.test(tokens[id])) types[id] = TOKEN_BYTE;
    }
    const unk = m.unk_token as string | null;
    if (unk && vocab[unk] !== undefined) types[vocab[unk]] = TOKEN_UNKNOWN;
    const normalizer = JSON.stringify(tok.normalizer ?? null);
    out.push(['tokenizer.ggml.model', { type: 'string', value: 'llama' }]);
    out.push(['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }]);
    out.push(['tokenizer.ggml.scores', { type: 'array', itemType: 'float32', value: scores }]);
    out.push(['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: types }]);
    out.push(['tokenizer.ggml.add_space_prefix', { type: 'bool', value: normalizer.includes('Prepend') }]);
  }
  const unk = m.unk_token as string | null;
  if (unk && vocab[unk] !== undefined) out.push(['tokenizer.ggml.unknown_token_id', { type: 'uint32', value: vocab[unk] }]);
  if (t.bosId !== null) out.push(['tokenizer.ggml.bos_token_id', { type: 'uint32', value: t.bosId }]);
  if (t.eosIds.length > 0) out.push(['tokenizer.ggml.eos_token_id', { type: 'uint32', value: t.eosIds[0] }]);
  const cfg = readJson(dir, 'tokenizer_config.json') ?? {};
  const pad = typeof cfg.pad_token === 'string' ? t.tokenToId(cfg.pad_token) : null;
  if (pad !== null) out.push(['tokenizer.ggml.padding_token_id', { type: 'uint32', value: pad }]);
  out.push(['tokenizer.ggml.add_bos_token', { type: 'bool', value: t.addBos }]);
  out.push(['tokenizer.ggml.add_eos_token', { type: 'bool', value: cfg.add_eos_token === true }]);
  if (typeof cfg.chat_template === 'string') out.push(['tokenizer.chat_template', { type: 'string', value: cfg.chat_template }]);
  return out;
}

export interface GgufExportOptions {
  /** Type of the 2-D weights (embedding, linears, lm_head); default F16. */
  type?: GgufOutType;
  name?: string;
  onProgress?: (p: { done: number; total: number; tensor: string }) => void;
}

export interface GgufExportResult {
  file: string;
  tensors: number;
  bytes: number;
  type: GgufOutType;
  tokenizer: 'gpt2' | 'llama';
}

interface PlannedTensor {
  hf: string;
  name: string;
  type: GgufOutType;
  shape: number[];
  bytes: number;
  offset: number;
  ropeHeads?: number;
  /** A tensor the folder does not hold (granite_swa's neutral attention sinks): its bytes. */
  data?: Buffer;
}

type GgufArchName = 'llama' | 'qwen2' | 'qwen3' | 'smollm3' | 'granite_swa';

/** llama.cpp's sink value that contributes exp(-1e30 - max) = 0 to every softmax. */
const NO_SINK = -1e30;

/**
 * The llama.cpp architecture a model is written as, whether its q/k rows go to llama.cpp's interleaved
 * RoPE order ("NORM" rope: llama, smollm3, granite_swa) or stay in rotate-half order ("NEOX": qwen2,
 * qwen3), and its architecture-specific metadata. Throws for what llama.cpp cannot run as we do.
 */
export function ggufArchitecture(dir: string, a: Architecture): { arch: GgufArchName; interleave: boolean; meta: Array<[string, GgufWriteValue]> } {
  const refuse = (why: string): never => {
    throw new UserError(`${dir}: ${why}`, 'UNSUPPORTED_ARCHITECTURE');
  };
  const sliding = a.slidingLayers ?? [];
  if (sliding.length > 0) {
    if (a.qkNorm || a.noRopeLayers?.length) refuse(`llama.cpp's ${a.modelType} architecture has no sliding-window attention, so the GGUF writer cannot export this ${a.family} model with sliding-window layers.`);
    const arch = 'granite_swa';
    const pattern = Array.from({ length: a.numLayers }, (_, i) => sliding.includes(i));
    return {
      arch,
      interleave: true,
      meta: [
        [`${arch}.attention.sliding_window`, { type: 'uint32', value: a.slidingWindow! }],
        [`${arch}.attention.sliding_window_pattern`, { type: 'array', itemType: 'bool', value: pattern }],
        [`${arch}.logit_scale`, { type: 'float32', value: 1 }],
      ],
    };
  }
  switch (a.modelType) {
    case 'qwen2':
      return { arch: 'qwen2', interleave: false, meta: [] };
    case 'qwen3':
      return { arch: 'qwen3', interleave: false, meta: [] };
    case 'smollm3': {
      // llama.cpp's smollm3 skips RoPE on layers 3, 7, 11, ... (n_no_rope_layer_step 4), with no key to say otherwise.
      const theirs = Array.from({ length: a.numLayers }, (_, i) => i).filter((i) => (i + 1) % 4 === 0);
      const ours = a.noRopeLayers ?? [];
      if (theirs.length !== ours.length || theirs.some((l, i) => l !== ours[i])) {
        refuse(`its layers without RoPE (${ours.join(', ') || 'none'}) are not every 4th layer (${theirs.join(', ')}), the only pattern llama.cpp's smollm3 runs.`);
      }
      return { arch: 'smollm3', interleave: true, meta: [] };
    }
    default:
      if (a.attentionBias) refuse(`the GGUF writer writes Llama-architecture models without attention bias only (this one is ${a.family} with q/k/v bias).`);
      return { arch: 'llama', interleave: true, meta: [] };
  }
}

/** Values of a stored tensor (F32, F16 or BF16) as the output type's bytes. */
function convert(raw: Buffer, from: string, to: GgufOutType): Buffer {
  if (from === to) return raw;
  const n = raw.length / (from === 'F32' ? 4 : 2);
  const out = Buffer.allocUnsafe(n * (to === 'F32' ? 4 : 2));
  for (let i = 0; i < n; i++) {
    let v: number;
    if (from === 'F32') v = raw.readFloatLE(4 * i);
    else if (from === 'F16') v = f16BitsToF32(raw.readUInt16LE(2 * i));
    else {
      const b = Buffer.alloc(4);
      b.writeUInt32LE((raw.readUInt16LE(2 * i) << 16) >>> 0);
      v = b.readFloatLE(0);
    }
    if (to === 'F32') out.writeFloatLE(v, 4 * i);
    else out.writeUInt16LE(f32ToF16Bits(v), 2 * i);
  }
  return out;
}

/** Writes a GGUF of the model folder `dir` to `outFile` (atomically: a temp file renamed at the end). */
export async function exportGguf(dir: string, outFile: string, o: GgufExportOptions = {}): Promise<GgufExportResult> {
  const type = o.type ?? 'F16';
  const model = await openModel(dir);
  try {
    const a = model.architecture;
    if (model.quantization) throw new UserError(`${dir} holds a QuIP#-quantized model; llama.cpp cannot read its codes. Export the 16-bit model instead.`, 'BAD_MODEL');
    const { arch, interleave, meta: archMeta } = ggufArchitecture(dir, a);
    const meta: Array<[string, GgufWriteValue]> = [
      ['general.architecture', { type: 'string', value: arch }],
      ['general.name', { type: 'string', value: o.name ?? path.basename(path.resolve(dir)) }],
      ['general.file_type', { type: 'uint32', value: type === 'F16' ? 1 : 0 }],
      [`${arch}.context_length`, { type: 'uint32', value: a.contextLength }],
      [`${arch}.embedding_length`, { type: 'uint32', value: a.hiddenSize }],
      [`${arch}.block_count`, { type: 'uint32', value: a.numLayers }],
      [`${arch}.feed_forward_length`, { type: 'uint32', value: a.intermediateSize }],
      [`${arch}.attention.head_count`, { type: 'uint32', value: a.numHeads }],
      [`${arch}.attention.head_count_kv`, { type: 'uint32', value: a.numKeyValueHeads }],
      [`${arch}.attention.key_length`, { type: 'uint32', value: a.headDim }],
      [`${arch}.attention.value_length`, { type: 'uint32', value: a.headDim }],
      [`${arch}.rope.dimension_count`, { type: 'uint32', value: a.headDim }],
      [`${arch}.rope.freq_base`, { type: 'float32', value: a.ropeTheta }],
      [`${arch}.attention.layer_norm_rms_epsilon`, { type: 'float32', value: a.rmsNormEps }],
      [`${arch}.vocab_size`, { type: 'uint32', value: a.vocabSize }],
      ...archMeta,
    ];
    if (a.ropeScaling) {
      if (a.ropeScaling.type !== 'linear') throw new UserError(`${dir}: RoPE scaling "${a.ropeScaling.type}" is not written by the GGUF writer (linear only).`, 'UNSUPPORTED_ARCHITECTURE');
      meta.push([`${arch}.rope.scaling.type`, { type: 'string', value: 'linear' }], [`${arch}.rope.scaling.factor`, { type: 'float32', value: a.ropeScaling.factor }]);
    }
    const tokMeta = tokenizerMetadata(dir, model);
    meta.push(...tokMeta);

    const planned: PlannedTensor[] = [];
    let offset = 0;
    for (const hf of model.tensorNames()) {
      const name = ggufTensorName(hf);
      if (name === null) {
        if (/rotary_emb\.inv_freq$/.test(hf)) continue;
        throw new UserError(`${dir}: tensor ${hf} has no place in a ${arch} GGUF; the GGUF writer cannot export this model.`, 'UNSUPPORTED_ARCHITECTURE');
      }
      if (name === 'output.weight' && a.tiedEmbeddings) continue;
      const info = model.tensorInfo(hf);
      const t: GgufOutType = info.shape.length === 1 ? 'F32' : type;
      const numel = info.shape.reduce((x, y) => x * y, 1);
      const bytes = numel * (t === 'F32' ? 4 : 2);
      const ropeHeads = !interleave ? undefined : /attn_q\.(weight|bias)$/.test(name) ? a.numHeads : /attn_k\.(weight|bias)$/.test(name) ? a.numKeyValueHeads : undefined;
      planned.push({ hf, name, type: t, shape: info.shape, bytes, offset, ropeHeads });
      offset += Math.ceil(bytes / ALIGN) * ALIGN;
    }
    if (arch === 'granite_swa') {
      // Required by llama.cpp's granite_swa; -1e30 adds nothing to any softmax.
      for (let l = 0; l < a.numLayers; l++) {
        const data = Buffer.alloc(4 * a.numHeads);
        for (let h = 0; h < a.numHeads; h++) data.writeFloatLE(NO_SINK, 4 * h);
        planned.push({ hf: '', name: `blk.${l}.attn_sinks.weight`, type: 'F32', shape: [a.numHeads], bytes: data.length, offset, data });
        offset += Math.ceil(data.length / ALIGN) * ALIGN;
      }
    }

    // Header: counts, metadata, tensor infos (dims in ggml order: the row length first).
    const infos: Buffer[] = [];
    for (const p of planned) {
      const nameBytes = Buffer.from(p.name, 'utf8');
      const b = Buffer.alloc(8 + nameBytes.length + 4 + 8 * p.shape.length + 4 + 8);
      let at = b.writeBigUInt64LE(BigInt(nameBytes.length), 0);
      at += nameBytes.copy(b, at);
      at = b.writeUInt32LE(p.shape.length, at);
      for (const d of [...p.shape].reverse()) at = b.writeBigUInt64LE(BigInt(d), at);
      at = b.writeUInt32LE(GGML_TYPE_ID[p.type], at);
      b.writeBigUInt64LE(BigInt(p.offset), at);
      infos.push(b);
    }
    const head = Buffer.alloc(24);
    head.write('GGUF', 0, 'latin1');
    head.writeUInt32LE(3, 4);
    head.writeBigUInt64LE(BigInt(planned.length), 8);
    head.writeBigUInt64LE(BigInt(meta.length), 16);
    const header = Buffer.concat([head, encodeMetadata(meta), ...infos]);
    const dataStart = Math.ceil(header.length / ALIGN) * ALIGN;

    const tmp = `${outFile}.partial-${process.pid}`;
    let fh: fs.FileHandle | undefined;
    try {
      await fs.mkdir(path.dirname(path.resolve(outFile)), { recursive: true });
      fh = await fs.open(tmp, 'w');
      await fh.write(header, 0, header.length, 0);
      for (let i = 0; i < planned.length; i++) {
        const p = planned[i];
        o.onProgress?.({ done: i, total: planned.length, tensor: p.name });
        if (p.data) {
          await fh.write(p.data, 0, p.data.length, dataStart + p.offset);
          continue;
        }
        const ref = model.tensor(p.hf);
        const stored = model.tensorInfo(p.hf).dtype;
        let data = convert(ref.file.read(ref.offset, (p.bytes / (p.type === 'F32' ? 4 : 2)) * (stored === 'F32' ? 4 : 2)), stored, p.type);
        if (p.ropeHeads) data = gatherRows(data, data.length / p.shape[0], interleavedRowSources(p.shape[0], p.ropeHeads));
        await fh.write(data, 0, data.length, dataStart + p.offset);
      }
      // The last tensor's padding: the file ends at a multiple of the alignment.
      if (offset > 0) await fh.truncate(dataStart + offset);
      await fh.close();
      fh = undefined;
      await fs.rename(tmp, outFile);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await fs.rm(tmp, { force: true });
      if (err instanceof UserError) throw err;
      throw new UserError(describeWriteError(err, outFile).message, 'WRITE_FAILED');
    }
    o.onProgress?.({ done: planned.length, total: planned.length, tensor: '' });
    return { file: outFile, tensors: planned.length, bytes: dataStart + offset, type, tokenizer: tokMeta[0][1].value === 'gpt2' ? 'gpt2' : 'llama' };
  } finally {
    model.close();
  }
}
