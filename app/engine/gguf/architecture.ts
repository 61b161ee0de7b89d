// From GGUF hyperparameters and tensor names to a Hugging Face model: config.json,
// generation_config.json and the name, shape and RoPE treatment of every tensor.
//   llama (also Mistral-family files): LlamaForCausalLM; q/k rows go back to rotate-half order.
//   qwen2: Qwen2ForCausalLM; q/k/v biases; llama.cpp keeps its rotate-half ("NEOX") order as is.
//   qwen3: Qwen3ForCausalLM; attn_q_norm / attn_k_norm (head_dim each); NEOX order as is.
//   smollm3: SmolLM3ForCausalLM; q/k rows as for llama; RoPE skipped on every 4th layer (llama.cpp's
//     fixed n_no_rope_layer_step), written as no_rope_layers.
import type { ConvertedTokenizer } from './tokenizer.js';
import { GgufError, type GgufHeader, type GgufTensorInfo } from './reader.js';

export const SUPPORTED_ARCHITECTURES = ['llama', 'qwen2', 'qwen3', 'smollm3'] as const;
/** llama.cpp writes q/k rows in interleaved RoPE order for these (its "NORM" rope type). */
const INTERLEAVED: readonly string[] = ['llama', 'smollm3'];
const HF_CLASS: Record<Architecture, string> = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM', smollm3: 'SmolLM3ForCausalLM' };
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

export interface TensorPlan {
  gguf: GgufTensorInfo;
  hfName: string;
  /** Row-major shape of the written tensor. */
  shape: number[];
  /** Heads to undo llama.cpp's interleaved RoPE row order over (q/k of llama), if any. */
  ropeHeads?: number;
}

export interface ModelPlan {
  architecture: Architecture;
  config: Record<string, unknown>;
  generationConfig: Record<string, unknown>;
  tensors: TensorPlan[];
  warnings: string[];
}

type Json = Record<string, unknown>;

// GGUF per-layer tensor -> Hugging Face name inside model.layers.N.
const LAYER_TENSORS: Record<string, string> = {
  'attn_norm.weight': 'input_layernorm.weight',
  'attn_q.weight': 'self_attn.q_proj.weight',
  'attn_k.weight': 'self_attn.k_proj.weight',
  'attn_v.weight': 'self_attn.v_proj.weight',
  'attn_output.weight': 'self_attn.o_proj.weight',
  'attn_q.bias': 'self_attn.q_proj.bias',
  'attn_k.bias': 'self_attn.k_proj.bias',
  'attn_v.bias': 'self_attn.v_proj.bias',
  'attn_output.bias': 'self_attn.o_proj.bias',
  'attn_q_norm.weight': 'self_attn.q_norm.weight',
  'attn_k_norm.weight': 'self_attn.k_norm.weight',
  'ffn_norm.weight': 'post_attention_layernorm.weight',
  'ffn_gate.weight': 'mlp.gate_proj.weight',
  'ffn_up.weight': 'mlp.up_proj.weight',
  'ffn_down.weight': 'mlp.down_proj.weight',
};
const GLOBAL_TENSORS: Record<string, string> = {
  'token_embd.weight': 'model.embed_tokens.weight',
  'output_norm.weight': 'model.norm.weight',
  'output.weight': 'lm_head.weight',
};

/**
 * Llama 3.1-style RoPE scaling from llama.cpp's rope_freqs tensor (one factor per frequency pair,
 * dividing the frequency). The converter computes, for frequency f = base^(-2i/d) with wavelength
 * w = 2 pi / f: 1 when w < ctx / high, `factor` when w > ctx / low, otherwise
 * 1 / ((1 - s) / factor + s) with s = (ctx / w - low) / (high - low). The parameters are found by
 * trying the published settings and keeping the one that reproduces every factor.
 */
export function llama3RopeScaling(factors: ArrayLike<number>, base: number, headDim: number): Record<string, unknown> | undefined {
  const factor = Math.max(...Array.from(factors));
  for (const [low, high, ctx] of [[1, 4, 8192], [1, 4, 4096], [1, 4, 16384], [1, 4, 32768], [1, 4, 65536], [1, 4, 131072]]) {
    let ok = factors.length === headDim / 2;
    for (let i = 0; ok && i < factors.length; i++) {
      const w = (2 * Math.PI) / base ** ((-2 * i) / headDim);
      let want: number;
      if (w < ctx / high) want = 1;
      else if (w > ctx / low) want = factor;
      else {
        const s = (ctx / w - low) / (high - low);
        want = 1 / ((1 - s) / factor + s);
      }
      ok = Math.abs(factors[i] - want) <= 1e-4 * want;
    }
    if (ok) return { rope_type: 'llama3', type: 'llama3', factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: ctx };
  }
  return undefined;
}

/** `ropeFactors`: the values of a rope_freqs.weight tensor, when the file has one. */
export function planModel(header: GgufHeader, tok: ConvertedTokenizer, ropeFactors?: Float32Array): ModelPlan {
  const meta = header.metadata;
  const file = meta.file;
  const fail = (problem: string): never => {
    throw new GgufError(file, problem);
  };
  const arch = meta.string('general.architecture');
  if (arch === undefined) fail('general.architecture is missing, so the model type is unknown; the file is not a complete GGUF model.');
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch!))
    fail(`its architecture is "${arch}", which the studio does not run; supported: llama (Llama, Mistral and their fine-tunes), qwen3, smollm3 and qwen2.`);
  const architecture = arch as Architecture;
  const warnings: string[] = [];

  const required = (key: string): number => {
    const v = meta.number(`${arch}.${key}`);
    if (v === undefined) fail(`${arch}.${key} is missing; the file is not a complete ${arch} model.`);
    return v!;
  };
  const layers = required('block_count');
  const hidden = required('embedding_length');
  const intermediate = required('feed_forward_length');
  const heads = required('attention.head_count');
  if (meta.has(`${arch}.attention.head_count_kv`) && meta.entries.get(`${arch}.attention.head_count_kv`)!.type === 'array')
    fail(`${arch}.attention.head_count_kv varies by layer, which Hugging Face ${arch} models cannot express.`);
  const kvHeads = meta.number(`${arch}.attention.head_count_kv`) ?? heads;
  const headDim = meta.number(`${arch}.attention.key_length`) ?? hidden / heads;
  const valueDim = meta.number(`${arch}.attention.value_length`) ?? headDim;
  if (!Number.isInteger(headDim) || valueDim !== headDim) fail(`its attention head sizes (key ${headDim}, value ${valueDim}) are not one whole number.`);
  const ropeDims = meta.number(`${arch}.rope.dimension_count`) ?? headDim;
  if (ropeDims !== headDim) fail(`RoPE covers ${ropeDims} of ${headDim} dimensions per head (partial rotary), which Hugging Face ${arch} models do not do.`);
  const contextLength = meta.number(`${arch}.context_length`) ?? 2048;
  if (!meta.has(`${arch}.context_length`)) warnings.push(`${arch}.context_length is missing; 2048 is assumed.`);
  const eps = meta.number(`${arch}.attention.layer_norm_rms_epsilon`) ?? 1e-5;
  if (!meta.has(`${arch}.attention.layer_norm_rms_epsilon`)) warnings.push(`${arch}.attention.layer_norm_rms_epsilon is missing; 1e-5 is assumed.`);
  const ropeTheta = meta.number(`${arch}.rope.freq_base`) ?? 10000;

  let ropeScaling: Json | null = null;
  const scalingType = meta.string(`${arch}.rope.scaling.type`);
  const scalingFactor = meta.number(`${arch}.rope.scaling.factor`) ?? meta.number(`${arch}.rope.scale_linear`);
  if (scalingType === 'linear' || (scalingType === undefined && scalingFactor !== undefined && scalingFactor !== 1)) {
    ropeScaling = { rope_type: 'linear', type: 'linear', factor: scalingFactor };
  } else if (scalingType === 'yarn') {
    ropeScaling = { rope_type: 'yarn', type: 'yarn', factor: scalingFactor, original_max_position_embeddings: meta.number(`${arch}.rope.scaling.original_context_length`) };
  } else if (scalingType !== undefined && scalingType !== 'none') {
    fail(`its RoPE scaling "${scalingType}" cannot be written as a Hugging Face rope_scaling; supported: none, linear, yarn.`);
  }

  // Tensors: every name must be one we know, every expected one present, every shape consistent.
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const plans: TensorPlan[] = [];
  const claimed = new Set<string>();
  const take = (ggufName: string, hfName: string, shape: number[], ropeHeads?: number, optional = false): boolean => {
    const t = byName.get(ggufName);
    if (!t) {
      if (optional) return false;
      fail(`tensor ${ggufName} is missing; the file is not a complete ${arch} model.`);
    }
    if (t!.shape.length !== shape.length || t!.shape.some((d, i) => d !== shape[i]))
      fail(`tensor ${ggufName} has shape [${t!.shape.join(', ')}], but the hyperparameters call for [${shape.join(', ')}]; the file is inconsistent.`);
    plans.push({ gguf: t!, hfName, shape, ropeHeads: INTERLEAVED.includes(architecture) ? ropeHeads : undefined });
    claimed.add(ggufName);
    return true;
  };

  const embd = byName.get('token_embd.weight');
  if (!embd || embd.shape.length !== 2) fail('tensor token_embd.weight is missing or not a matrix; the file is not a complete model.');
  const vocab = embd!.shape[0];
  if (tok.tokenizerJson && vocab !== Object.keys((tok.tokenizerJson.model as Json).vocab as Json).length)
    warnings.push(`the embedding has ${vocab} rows but the tokenizer has ${Object.keys((tok.tokenizerJson.model as Json).vocab as Json).length} distinct tokens.`);
  take('token_embd.weight', GLOBAL_TENSORS['token_embd.weight'], [vocab, hidden]);
  const q = heads * headDim, kv = kvHeads * headDim;
  const qkvBias = architecture === 'qwen2' || byName.has('blk.0.attn_q.bias');
  const oBias = byName.has('blk.0.attn_output.bias');
  if ((architecture === 'qwen3' || architecture === 'smollm3') && (qkvBias || oBias)) fail(`its attention layers have biases, which Hugging Face ${arch} models as the studio runs them do not have.`);
  for (let l = 0; l < layers; l++) {
    const g = (s: string) => `blk.${l}.${s}`;
    const h = (s: string) => `model.layers.${l}.${LAYER_TENSORS[s]}`;
    take(g('attn_norm.weight'), h('attn_norm.weight'), [hidden]);
    take(g('attn_q.weight'), h('attn_q.weight'), [q, hidden], heads);
    take(g('attn_k.weight'), h('attn_k.weight'), [kv, hidden], kvHeads);
    take(g('attn_v.weight'), h('attn_v.weight'), [kv, hidden]);
    take(g('attn_output.weight'), h('attn_output.weight'), [hidden, q]);
    if (qkvBias) {
      take(g('attn_q.bias'), h('attn_q.bias'), [q], heads);
      take(g('attn_k.bias'), h('attn_k.bias'), [kv], kvHeads);
      take(g('attn_v.bias'), h('attn_v.bias'), [kv]);
    }
    if (oBias) take(g('attn_output.bias'), h('attn_output.bias'), [hidden]);
    if (architecture === 'qwen3') {
      take(g('attn_q_norm.weight'), h('attn_q_norm.weight'), [headDim]);
      take(g('attn_k_norm.weight'), h('attn_k_norm.weight'), [headDim]);
    }
    take(g('ffn_norm.weight'), h('ffn_norm.weight'), [hidden]);
    take(g('ffn_gate.weight'), h('ffn_gate.weight'), [intermediate, hidden]);
    take(g('ffn_up.weight'), h('ffn_up.weight'), [intermediate, hidden]);
    take(g('ffn_down.weight'), h('ffn_down.weight'), [hidden, intermediate]);
  }
  take('output_norm.weight', GLOBAL_TENSORS['output_norm.weight'], [hidden]);
  const tied = !take('output.weight', GLOBAL_TENSORS['output.weight'], [vocab, hidden], undefined, true);

  const eosIds = [tok.eosTokenId, ...tok.stopTokenIds].filter((x): x is number => x !== undefined);
  const config: Json = {
    architectures: [HF_CLASS[architecture]],
    model_type: architecture,
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    hidden_act: 'silu',
    max_position_embeddings: contextLength,
    rms_norm_eps: eps,
    rope_theta: ropeTheta,
    rope_scaling: ropeScaling,
    tie_word_embeddings: tied,
    ...(architecture === 'llama' ? { attention_bias: qkvBias, mlp_bias: false } : {}),
    ...(architecture === 'qwen2' || architecture === 'qwen3' ? { use_sliding_window: false, sliding_window: contextLength, max_window_layers: layers } : {}),
    ...(architecture === 'qwen3' || architecture === 'smollm3' ? { attention_bias: false } : {}),
    ...(architecture === 'smollm3' ? { no_rope_layers: Array.from({ length: layers }, (_, i) => ((i + 1) % 4 === 0 ? 0 : 1)), use_sliding_window: false, mlp_bias: false } : {}),
    attention_dropout: 0,
    initializer_range: 0.02,
    bos_token_id: tok.bosTokenId ?? null,
    eos_token_id: eosIds.length > 1 ? eosIds : (eosIds[0] ?? null),
    ...(tok.padTokenId !== undefined ? { pad_token_id: tok.padTokenId } : {}),
    torch_dtype: 'float16',
    use_cache: true,
  };
  const generationConfig: Json = {
    ...(tok.bosTokenId !== undefined ? { bos_token_id: tok.bosTokenId } : {}),
    eos_token_id: eosIds.length > 1 ? eosIds : (eosIds[0] ?? null),
    ...(tok.padTokenId !== undefined ? { pad_token_id: tok.padTokenId } : {}),
  };
  for (const t of header.tensors) {
    if (claimed.has(t.name)) continue;
    if (/_exps\.|ffn_gate_inp/.test(t.name)) fail(`tensor ${t.name} belongs to mixture-of-experts layers, which the studio does not run.`);
    if (t.name === 'rope_freqs.weight') {
      // Not a weight: its factors become config.rope_scaling.
      const scaling = ropeFactors && ropeScaling === null ? llama3RopeScaling(ropeFactors, ropeTheta, headDim) : undefined;
      if (!scaling) fail('tensor rope_freqs.weight holds RoPE frequency factors that match no Llama 3 rope_scaling setting, so they cannot be written to config.json.');
      config.rope_scaling = scaling;
      continue;
    }
    fail(`tensor ${t.name} is not part of a ${arch} model as the importer knows it (expected token_embd, output_norm, output and blk.N.{attn,ffn}_* tensors).`);
  }

  return { architecture, config, generationConfig, tensors: plans, warnings };
}
