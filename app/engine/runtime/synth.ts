// `quip synth`: a random-weight Llama model in Hugging Face layout, for benchmarks at realistic layer
// sizes. Linear and embedding weights are uniform (65536 levels) with standard deviation 0.02 (the
// usual initializer_range), norms are 1. Tokenizer: the stories260k tokenizer (BPE with byte fallback,
// 512 tokens) with placeholder tokens "<synth_512>" ... filling the vocabulary up to --vocab, so the
// folder loads and runs end to end; text in and out is real but the weights say nothing.
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import { writeJsonAtomic } from '../../util/atomic-file.js';
import { UserError } from '../../util/errors.js';
import { sampleModelDir } from '../../util/paths.js';
import { f32ToF16Bits } from '../model/half.js';
import { writeSafetensors, type TensorToWrite } from '../model/safetensors-writer.js';
import type { TensorDType } from '../native.js';

export interface SynthOptions {
  hidden: number;
  intermediate: number;
  layers: number;
  heads?: number; // default hidden / 64
  kvHeads?: number; // default heads
  vocab?: number; // default 32000
  context?: number; // default 2048
  dtype?: 'f16' | 'bf16' | 'f32'; // default f16
  seed?: number; // default 0
  tied?: boolean; // default false
  out: string;
}

export interface SynthResult {
  dir: string;
  parameters: number;
  bytes: number;
  config: Record<string, unknown>;
}

const STD = 0.02;
const BASE_VOCAB = 512;

function positiveInt(v: number | undefined, what: string): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new UserError(`${what} must be a whole number >= 1, got ${v}`, 'BAD_SETTING');
}

/**
 * Uniform values on [-a, a] (a = std * sqrt(3), so the standard deviation is std) quantized to 65536
 * evenly spaced levels, as bit patterns of the dtype: one xorshift32 draw picks two levels, which
 * keeps writing a billion weights fast in JS.
 */
function levelTable(dtype: TensorDType, std: number): Uint16Array | Float32Array {
  const a = std * Math.sqrt(3);
  const f32 = new Float32Array(65536);
  for (let k = 0; k < 65536; k++) f32[k] = -a + ((k + 0.5) * 2 * a) / 65536;
  if (dtype === 'F32') return f32;
  const out = new Uint16Array(65536);
  const u32 = new Uint32Array(f32.buffer);
  for (let k = 0; k < 65536; k++) {
    if (dtype === 'F16') out[k] = f32ToF16Bits(f32[k]);
    else out[k] = ((u32[k] + 0x7fff + ((u32[k] >>> 16) & 1)) >>> 16) & 0xffff; // bf16, round to nearest even
  }
  return out;
}

/** A tensor filled from a per-tensor seeded xorshift32 stream over the level table, or a constant. */
function randomTensor(name: string, dtype: TensorDType, shape: number[], seed: number, table: Uint16Array | Float32Array, constant?: number): TensorToWrite {
  let state = seed >>> 0 || 0x9e3779b9;
  let produced = 0; // fill is called with consecutive starts
  const constBits = constant === undefined ? 0 : dtype === 'F16' ? f32ToF16Bits(constant) : new Uint16Array(new Float32Array([constant]).buffer)[1];
  return {
    name,
    dtype,
    shape,
    source: {
      fill(out, start) {
        if (start !== produced) throw new Error(`synth: tensor ${name} filled out of order`);
        const size = dtype === 'F32' ? 4 : 2;
        const v = dtype === 'F32' ? new Float32Array(out.buffer, out.byteOffset, out.byteLength / 4) : new Uint16Array(out.buffer, out.byteOffset, out.byteLength / 2);
        if (constant !== undefined) v.fill(dtype === 'F32' ? constant : constBits);
        else {
          for (let i = 0; i < v.length; i += 2) {
            state ^= state << 13;
            state ^= state >>> 17;
            state ^= state << 5;
            state >>>= 0;
            v[i] = table[state & 0xffff];
            if (i + 1 < v.length) v[i + 1] = table[state >>> 16];
          }
        }
        produced += out.byteLength / size;
      },
    },
  };
}

export async function synthModel(o: SynthOptions): Promise<SynthResult> {
  for (const [v, what] of [
    [o.hidden, '--hidden'], [o.intermediate, '--intermediate'], [o.layers, '--layers'], [o.heads, '--heads'],
    [o.kvHeads, '--kv-heads'], [o.vocab, '--vocab'], [o.context, '--context'],
  ] as Array<[number | undefined, string]>) positiveInt(v, what);
  const heads = o.heads ?? Math.max(1, Math.floor(o.hidden / 64));
  const kvHeads = o.kvHeads ?? heads;
  const vocab = o.vocab ?? 32000;
  const context = o.context ?? 2048;
  const seed = o.seed ?? 0;
  if (o.hidden % heads !== 0) throw new UserError(`--hidden ${o.hidden} must be a multiple of --heads ${heads}`, 'BAD_SETTING');
  const headDim = o.hidden / heads;
  if (headDim % 2 !== 0) throw new UserError(`head size hidden / heads = ${headDim} must be even (rotary pairs)`, 'BAD_SETTING');
  if (heads % kvHeads !== 0) throw new UserError(`--heads ${heads} must be a multiple of --kv-heads ${kvHeads}`, 'BAD_SETTING');
  if (vocab < BASE_VOCAB) throw new UserError(`--vocab must be at least ${BASE_VOCAB} (the tokenizer's own tokens), got ${vocab}`, 'BAD_SETTING');
  const dtypeName = o.dtype ?? 'f16';
  const dtype = ({ f16: 'F16', bf16: 'BF16', f32: 'F32' } as const)[dtypeName];
  if (!dtype) throw new UserError(`--dtype must be f16, bf16 or f32, got ${o.dtype}`, 'BAD_SETTING');
  const dir = path.resolve(o.out);
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UserError(`--out ${dir} is a file; give a folder`, 'BAD_SETTING');
  mkdirSync(dir, { recursive: true });

  const H = o.hidden, I = o.intermediate, nq = heads * headDim, nkv = kvHeads * headDim;
  const tensors: TensorToWrite[] = [];
  const table = levelTable(dtype, STD);
  let k = 0;
  const add = (name: string, shape: number[], constant?: number) =>
    tensors.push(randomTensor(name, dtype, shape, (seed * 1000003 + ++k * 7919) >>> 0, table, constant));
  add('model.embed_tokens.weight', [vocab, H]);
  for (let b = 0; b < o.layers; b++) {
    const p = `model.layers.${b}.`;
    add(p + 'input_layernorm.weight', [H], 1);
    add(p + 'self_attn.q_proj.weight', [nq, H]);
    add(p + 'self_attn.k_proj.weight', [nkv, H]);
    add(p + 'self_attn.v_proj.weight', [nkv, H]);
    add(p + 'self_attn.o_proj.weight', [H, nq]);
    add(p + 'post_attention_layernorm.weight', [H], 1);
    add(p + 'mlp.gate_proj.weight', [I, H]);
    add(p + 'mlp.up_proj.weight', [I, H]);
    add(p + 'mlp.down_proj.weight', [H, I]);
  }
  add('model.norm.weight', [H], 1);
  if (!o.tied) add('lm_head.weight', [vocab, H]);
  const parameters = tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);

  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: H,
    intermediate_size: I,
    num_hidden_layers: o.layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    vocab_size: vocab,
    max_position_embeddings: context,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    rope_scaling: null,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: !!o.tied,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: { F16: 'float16', BF16: 'bfloat16', F32: 'float32' }[dtype],
    quip_synth: { seed, note: 'random weights (quip synth); for benchmarks only' },
  };
  const bytes = await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt', quip_synth_seed: String(seed) });
  await writeJsonAtomic(path.join(dir, 'config.json'), config);
  await writeSynthTokenizer(dir, vocab, context);
  return { dir, parameters, bytes, config };
}

/** The stories260k tokenizer, its vocabulary padded with "<synth_N>" placeholders up to `vocab`. */
async function writeSynthTokenizer(dir: string, vocab: number, context: number): Promise<void> {
  const src = sampleModelDir();
  const tok = JSON.parse(readFileSync(path.join(src, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  for (let id = BASE_VOCAB; id < vocab; id++) tok.model.vocab[`<synth_${id}>`] = id;
  await writeJsonAtomic(path.join(dir, 'tokenizer.json'), tok);
  const tc = JSON.parse(readFileSync(path.join(src, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  tc.model_max_length = context;
  await writeJsonAtomic(path.join(dir, 'tokenizer_config.json'), tc);
  for (const f of ['special_tokens_map.json', 'generation_config.json']) copyFileSync(path.join(src, f), path.join(dir, f));
}
