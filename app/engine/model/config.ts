// config.json of the Llama family (llama, mistral, qwen2, qwen3, smollm3) -> Architecture. Repositories may ship their
// own Python model code (auto_map, trust_remote_code); the studio never runs it: it reads the standard
// layout and says so.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import { Architecture, SUPPORTED_MODEL_TYPES } from '../../contract/model.js';
import { UserError } from '../../util/errors.js';
import { jsonBrief } from '../../util/json-brief.js';
import { assertRegularFile } from '../regular-file.js';
import { QUANT_METHOD } from './quantized-format.js';

const FAMILY: Record<Architecture['modelType'], string> = { llama: 'Llama', mistral: 'Mistral', qwen2: 'Qwen2', qwen3: 'Qwen3', smollm3: 'SmolLM3' };
const SUPPORTED_ROPE_SCALING = ['linear', 'llama3', 'dynamic'];
const LAYER_TYPES = ['full_attention', 'sliding_attention'];

export type RawConfig = Record<string, unknown>;

export function readJsonFile(dir: string, name: string): unknown {
  const file = path.join(dir, name);
  assertRegularFile(file, name, 'NOT_A_MODEL');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`${name}: cannot read it from ${dir} (${(err as Error).message}).`, 'NOT_A_MODEL');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`${name} in ${dir} is not valid JSON (${(err as Error).message}).`, 'NOT_A_MODEL');
  }
}

/** Reads config.json of a model folder; a folder without one is not a Hugging Face model. */
export function readConfig(dir: string): RawConfig {
  if (!existsSync(dir)) throw new UserError(`No folder at ${dir}.`, 'NOT_A_MODEL');
  if (!existsSync(path.join(dir, 'config.json'))) {
    const gguf = statSync(dir).isDirectory() ? readdirSync(dir).filter((f) => f.toLowerCase().endsWith('.gguf')) : [];
    throw new UserError(
      `${dir} has no config.json, so it is not a Hugging Face model folder. ` +
        (gguf.length
          ? `It holds a GGUF file (${gguf.join(', ')}); import it as a Hugging Face folder first (quip import <file.gguf>, or the Models page), then open that folder.`
          : 'Choose the folder that holds config.json, model.safetensors and tokenizer.json.'),
      'NOT_A_MODEL',
    );
  }
  const cfg = readJsonFile(dir, 'config.json');
  if (!cfg || typeof cfg !== 'object' || Array.isArray(cfg)) throw new UserError(`config.json in ${dir} is not a JSON object.`, 'NOT_A_MODEL');
  return cfg as RawConfig;
}

/** A warning when the repository ships its own model code, which the studio never executes. */
export function remoteCodeWarning(file: string, json: unknown): string | null {
  const autoMap = (json as { auto_map?: unknown })?.auto_map;
  if (!autoMap || typeof autoMap !== 'object') return null;
  const classes = Object.values(autoMap as Record<string, unknown>).flat().filter((v) => typeof v === 'string');
  return `${file} names custom model code (${classes.join(', ') || 'auto_map'}); the studio never runs code from a model repository and reads the standard layout instead.`;
}

function problem(message: string): never {
  throw new UserError(`config.json: ${message}`, 'BAD_CONFIG');
}

function int(cfg: RawConfig, key: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  if (v === undefined || v === null) problem(`${key} is missing.`);
  if (!Number.isSafeInteger(v) || (v as number) <= 0) problem(`${key} must be a positive integer (found ${jsonBrief(v)}).`);
  return v as number;
}

/** A field written as null where the studio has no default: JSON writers store NaN and infinity so. */
function refuseNull(cfg: RawConfig, key: string): void {
  if (cfg[key] === null) problem(`${key} is null, which is not a number (JSON writers store NaN and infinity as null); give a positive number or leave the field out.`);
}

function num(cfg: RawConfig, key: string, fallback: number): number {
  refuseNull(cfg, key);
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) problem(`${key} must be a positive number (found ${jsonBrief(v)}).`);
  return v;
}

function parseRopeScaling(raw: unknown, field = 'rope_scaling'): Architecture['ropeScaling'] {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'object') problem(`${field} must be an object or null (found ${jsonBrief(raw)}).`);
  const r = raw as Record<string, unknown>;
  const type = (r.rope_type ?? r.type ?? (field === 'rope_scaling' ? undefined : 'default')) as unknown;
  if (type === 'default') return null;
  if (typeof type !== 'string' || !SUPPORTED_ROPE_SCALING.includes(type)) {
    problem(`${field} type ${jsonBrief(type)} is not supported; the studio supports ${SUPPORTED_ROPE_SCALING.join(', ')}.`);
  }
  const factor = r.factor;
  if (typeof factor !== 'number' || !(factor > 0)) problem(`${field}.factor must be a positive number (found ${jsonBrief(factor)}).`);
  const opt = (key: string) => {
    const v = r[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number') problem(`${field}.${key} must be a number (found ${jsonBrief(v)}).`);
    return v;
  };
  const scaling = {
    type,
    factor,
    lowFreqFactor: opt('low_freq_factor'),
    highFreqFactor: opt('high_freq_factor'),
    originalMaxPositionEmbeddings: opt('original_max_position_embeddings'),
  };
  if (type === 'llama3' && (scaling.lowFreqFactor === undefined || scaling.highFreqFactor === undefined || scaling.originalMaxPositionEmbeddings === undefined)) {
    problem(`${field} of type llama3 needs low_freq_factor, high_freq_factor and original_max_position_embeddings.`);
  }
  return scaling;
}

/**
 * RoPE base and scaling. Newer configs (transformers 5) write one `rope_parameters` object
 * ({rope_type, rope_theta, factor, ...}), or one per layer type ({full_attention: {...},
 * sliding_attention: {...}}); older ones `rope_theta` and `rope_scaling`. rope_parameters wins.
 */
function parseRope(cfg: RawConfig, defaultTheta: number): { ropeTheta: number; ropeScaling: Architecture['ropeScaling'] } {
  const raw = cfg.rope_parameters;
  if (raw === undefined || raw === null) return { ropeTheta: num(cfg, 'rope_theta', defaultTheta), ropeScaling: parseRopeScaling(cfg.rope_scaling) };
  if (typeof raw !== 'object' || Array.isArray(raw)) problem(`rope_parameters must be an object (found ${jsonBrief(raw)}).`);
  let params = raw as Record<string, unknown>;
  let field = 'rope_parameters';
  const byType = Object.keys(params).filter((k) => k.endsWith('_attention'));
  if (byType.length > 0) {
    // One set per layer type: the studio runs them when they agree.
    const sets = byType.map((k) => params[k]);
    if (sets.some((v) => !v || typeof v !== 'object')) problem(`rope_parameters.${byType.join('/')} must each be an object.`);
    const first = JSON.stringify(sets[0]);
    if (sets.some((v) => JSON.stringify(v) !== first)) {
      problem(`rope_parameters differ by layer type (${byType.map((k) => `${k}: ${jsonBrief(params[k])}`).join('; ')}); a RoPE per layer type is not supported.`);
    }
    field = `rope_parameters.${byType[0]}`;
    params = sets[0] as Record<string, unknown>;
  }
  const prf = params.partial_rotary_factor;
  if (prf !== undefined && prf !== null && prf !== 1) problem(`${field}.partial_rotary_factor is ${jsonBrief(prf)}; partial rotary embeddings are not supported.`);
  const theta = params.rope_theta ?? cfg.rope_theta ?? defaultTheta;
  if (typeof theta !== 'number' || !Number.isFinite(theta) || theta <= 0) problem(`${field}.rope_theta must be a positive number (found ${jsonBrief(theta)}).`);
  return { ropeTheta: theta, ropeScaling: parseRopeScaling(params, field) };
}

/** A positive number (not 0, null, false or an empty list): the config switches the option on. */
function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/**
 * Options that change the forward pass and that the studio does not implement: refused by name, never
 * silently ignored.
 */
function refuseUnimplemented(cfg: RawConfig, type: Architecture['modelType']): void {
  for (const key of ['num_experts', 'num_local_experts', 'n_routed_experts', 'moe_num_experts']) {
    const v = cfg[key];
    if (typeof v === 'number' && v > 1) problem(`${key} is ${v}: a mixture of experts, which the studio does not run (it runs dense models).`);
  }
  if (cfg.alibi === true || cfg.use_alibi === true || cfg.position_embedding_type === 'alibi') {
    problem('the config asks for ALiBi position biases (alibi), which the studio does not implement; it runs rotary position embeddings.');
  }
  for (const key of Object.keys(cfg)) {
    if (/sink/i.test(key) && isSet(cfg[key])) problem(`${key} is ${jsonBrief(cfg[key])}: attention sinks are not supported.`);
  }
  for (const key of ['attn_logit_softcapping', 'final_logit_softcapping', 'query_pre_attn_scalar', 'attention_chunk_size', 'logit_scale', 'logits_scaling', 'embedding_multiplier', 'residual_multiplier', 'attention_multiplier']) {
    if (isSet(cfg[key])) problem(`${key} is ${jsonBrief(cfg[key])}, which ${FAMILY[type]} models as the studio runs them do not have; it is not supported.`);
  }
  if (type !== 'qwen3') {
    for (const key of ['use_qk_norm', 'qk_layernorm', 'qk_norm']) if (isSet(cfg[key])) problem(`${key} is ${jsonBrief(cfg[key])}; q/k normalization is supported for qwen3 only.`);
  }
  if ((type === 'qwen3' || type === 'smollm3') && cfg.attention_bias === true) {
    problem(`attention_bias is true; ${FAMILY[type]} attention layers with bias (q/k/v and o_proj) are not supported.`);
  }
}

/** layer_types: one "full_attention" or "sliding_attention" per layer, or null when absent. */
function parseLayerTypes(cfg: RawConfig, numLayers: number): string[] | null {
  const v = cfg.layer_types;
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.length !== numLayers) problem(`layer_types must list one type per layer (${numLayers}); found ${jsonBrief(v)}.`);
  const bad = (v as unknown[]).find((t) => typeof t !== 'string' || !LAYER_TYPES.includes(t));
  if (bad !== undefined) problem(`layer_types holds ${jsonBrief(bad)}; the studio runs ${LAYER_TYPES.join(' and ')} layers only.`);
  return v as string[];
}

/** SmolLM3: layers without RoPE, from no_rope_layers (1 = RoPE, 0 = none) or every no_rope_layer_interval-th. */
function parseNoRope(cfg: RawConfig, numLayers: number): number[] {
  const v = cfg.no_rope_layers;
  if (v === undefined || v === null) {
    const every = int(cfg, 'no_rope_layer_interval', 4);
    return Array.from({ length: numLayers }, (_, i) => i).filter((i) => (i + 1) % every === 0);
  }
  if (!Array.isArray(v) || v.length < numLayers || v.some((x) => x !== 0 && x !== 1)) {
    problem(`no_rope_layers must list 1 (RoPE) or 0 (no RoPE) for each of the ${numLayers} layers; found ${jsonBrief(v)}.`);
  }
  return (v as number[]).slice(0, numLayers).flatMap((x, i) => (x === 0 ? [i] : []));
}

/**
 * The sliding window and the layers it applies to, as Hugging Face transformers reads them:
 *  - mistral: sliding_window (4096 when absent, none when null) on every layer (layer_types unused);
 *  - qwen2, qwen3: only with use_sliding_window; layer_types, else the layers from max_window_layers
 *    (default 28) on;
 *  - smollm3: only with use_sliding_window; layer_types, else the layers without RoPE;
 *  - llama: none (Llama attends over the whole context).
 */
function parseSliding(cfg: RawConfig, type: Architecture['modelType'], numLayers: number, noRope: number[], warnings: string[]): { slidingWindow?: number; slidingLayers?: number[] } {
  const layerTypes = parseLayerTypes(cfg, numLayers);
  let window: unknown = null;
  if (type === 'mistral') window = cfg.sliding_window === undefined ? 4096 : cfg.sliding_window;
  else if (type !== 'llama' && cfg.use_sliding_window === true) window = cfg.sliding_window === undefined && type !== 'smollm3' ? 4096 : cfg.sliding_window;
  if (type === 'llama' && typeof cfg.sliding_window === 'number') {
    warnings.push(`config.json sets sliding_window ${cfg.sliding_window}, which Llama models do not use (as in Hugging Face transformers): every layer attends over the whole context.`);
  }
  if (window === null || window === undefined) return {};
  if (!Number.isSafeInteger(window) || (window as number) <= 0) problem(`sliding_window must be a positive integer or null (found ${jsonBrief(window)}).`);
  let layers: number[];
  const all = Array.from({ length: numLayers }, (_, i) => i);
  if (type === 'mistral') {
    layers = all;
    if (layerTypes) warnings.push('config.json has layer_types, which Mistral models do not read (as in Hugging Face transformers): every layer uses the sliding window.');
  } else if (layerTypes) layers = all.filter((i) => layerTypes[i] === 'sliding_attention');
  else if (type === 'smollm3') layers = noRope;
  else {
    const from = cfg.max_window_layers ?? 28;
    if (!Number.isSafeInteger(from) || (from as number) < 0) problem(`max_window_layers must be a whole number of layers (found ${jsonBrief(from)}).`);
    layers = all.filter((i) => i >= (from as number));
  }
  if (layers.length === 0) return {};
  const w = window as number;
  const which = layers.length === numLayers ? `all ${numLayers} layers` : `${layers.length} of ${numLayers} layers (${layers.join(', ')})`;
  warnings.push(`config.json sets a sliding attention window of ${w} tokens on ${which}: there a token attends to itself and the ${w - 1} before it.`);
  return { slidingWindow: w, slidingLayers: layers };
}

/**
 * Reads the architecture from a config.json object. `warnings` collects what the studio ignores or
 * assumes (custom code, sliding windows, defaults).
 */
export function parseArchitecture(outer: RawConfig, warnings: string[] = []): Architecture {
  const remote = remoteCodeWarning('config.json', outer);
  const cfg = textConfig(outer, warnings);
  const modelType = cfg.model_type;
  if (typeof modelType !== 'string' || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    const nested = cfg !== outer ? ` (the text_config of model_type ${jsonBrief(outer.model_type)})` : '';
    const what = typeof modelType === 'string' ? `model_type "${modelType}"${nested} is not supported` : `model_type is missing${nested}`;
    problem(
      `${what}; the studio supports ${SUPPORTED_MODEL_TYPES.join(', ')} (the Llama family).` +
        (remote ? ' The repository ships custom model code, which is ignored: the studio never runs code from a model repository.' : ''),
    );
  }
  if (remote) warnings.push(remote);
  const type = modelType as Architecture['modelType'];
  refuseUnimplemented(cfg, type);

  const act = cfg.hidden_act ?? cfg.hidden_activation ?? 'silu';
  if (act !== 'silu') problem(`hidden_act ${jsonBrief(act)} is not supported; the Llama family uses silu.`);
  if (cfg.mlp_bias === true) problem('mlp_bias is true; MLP layers with bias are not supported.');

  const hiddenSize = int(cfg, 'hidden_size');
  const numHeads = int(cfg, 'num_attention_heads');
  const numKeyValueHeads = int(cfg, 'num_key_value_heads', numHeads);
  if (numHeads % numKeyValueHeads !== 0) {
    problem(`num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads}).`);
  }
  let headDim: number;
  if (cfg.head_dim !== undefined && cfg.head_dim !== null) headDim = int(cfg, 'head_dim');
  else if (type === 'qwen3') {
    // Qwen3's head size does not follow from hidden_size; transformers' default is 128.
    headDim = 128;
    warnings.push('config.json has no head_dim; 128 (the Qwen3 default) is assumed.');
  } else {
    if (hiddenSize % numHeads !== 0) problem(`hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numHeads}) and head_dim is not given.`);
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) problem(`head_dim ${headDim} must be even for rotary position embeddings.`);

  if (cfg.max_position_embeddings === undefined) warnings.push('config.json has no max_position_embeddings; assuming a context of 2048 tokens.');
  refuseNull(cfg, 'max_position_embeddings');
  const contextLength = int(cfg, 'max_position_embeddings', 2048);
  const numLayers = int(cfg, 'num_hidden_layers');
  const noRope = type === 'smollm3' ? parseNoRope(cfg, numLayers) : [];
  const sliding = parseSliding(cfg, type, numLayers, noRope, warnings);
  // The studio's own quantized folders are read (loader.ts checks their record); others are not.
  const method = (cfg.quantization_config as { quant_method?: unknown } | undefined)?.quant_method;
  if (cfg.quantization_config && method !== QUANT_METHOD) {
    problem(`this model is already quantized (quant_method ${jsonBrief(method ?? 'unknown')}); open its full-precision original instead.`);
  }

  const torchDtype = cfg.torch_dtype ?? cfg.dtype ?? null;
  const rope = parseRope(cfg, type === 'smollm3' ? 2_000_000 : 10000);
  return Architecture.parse({
    modelType: type,
    family: FAMILY[type],
    hiddenSize,
    intermediateSize: int(cfg, 'intermediate_size'),
    numLayers,
    numHeads,
    numKeyValueHeads,
    headDim,
    vocabSize: int(cfg, 'vocab_size'),
    contextLength,
    ropeTheta: rope.ropeTheta,
    ropeScaling: rope.ropeScaling,
    rmsNormEps: num(cfg, 'rms_norm_eps', 1e-6),
    // transformers' defaults: tied for SmolLM3, untied for the others.
    tiedEmbeddings: cfg.tie_word_embeddings === undefined ? type === 'smollm3' : cfg.tie_word_embeddings === true,
    // Qwen2 always has q/k/v bias; Llama has it when attention_bias is set; the others never.
    attentionBias: type === 'qwen2' ? true : type === 'llama' ? cfg.attention_bias === true : false,
    torchDtype: typeof torchDtype === 'string' ? torchDtype : null,
    ...(type === 'qwen3' ? { qkNorm: true } : {}),
    ...sliding,
    ...(noRope.length > 0 ? { noRopeLayers: noRope } : {}),
  });
}

/**
 * A multimodal config.json nests the language model's settings in text_config: the studio reads those
 * (and runs the text model only), taking dtype, quantization and tying from the outer config when
 * the inner one does not set them.
 */
function textConfig(cfg: RawConfig, warnings: string[]): RawConfig {
  const inner = cfg.text_config;
  if (!inner || typeof inner !== 'object' || Array.isArray(inner)) return cfg;
  if (typeof cfg.model_type === 'string' && (SUPPORTED_MODEL_TYPES as readonly string[]).includes(cfg.model_type)) return cfg;
  const t = { ...(inner as RawConfig) };
  for (const key of ['torch_dtype', 'dtype', 'quantization_config', 'tie_word_embeddings']) if (t[key] === undefined && cfg[key] !== undefined) t[key] = cfg[key];
  warnings.push(`config.json (model_type ${jsonBrief(cfg.model_type)}) nests the language model in text_config; the studio reads that and runs the text model only.`);
  return t;
}

/** The tensors a Llama-family checkpoint must hold, with the shapes its config implies. */
export function expectedTensorShapes(a: Architecture): Map<string, { shape: number[]; why: string }> {
  const m = new Map<string, { shape: number[]; why: string }>();
  const q = a.numHeads * a.headDim, kv = a.numKeyValueHeads * a.headDim, h = a.hiddenSize, f = a.intermediateSize;
  const qWhy = `num_attention_heads ${a.numHeads} x head_dim ${a.headDim} by hidden_size ${h}`;
  const kvWhy = `num_key_value_heads ${a.numKeyValueHeads} x head_dim ${a.headDim} by hidden_size ${h}`;
  m.set('model.embed_tokens.weight', { shape: [a.vocabSize, h], why: `vocab_size ${a.vocabSize} by hidden_size ${h}` });
  for (let i = 0; i < a.numLayers; i++) {
    const p = `model.layers.${i}.`;
    m.set(`${p}input_layernorm.weight`, { shape: [h], why: `hidden_size ${h}` });
    m.set(`${p}post_attention_layernorm.weight`, { shape: [h], why: `hidden_size ${h}` });
    m.set(`${p}self_attn.q_proj.weight`, { shape: [q, h], why: qWhy });
    m.set(`${p}self_attn.k_proj.weight`, { shape: [kv, h], why: kvWhy });
    m.set(`${p}self_attn.v_proj.weight`, { shape: [kv, h], why: kvWhy });
    m.set(`${p}self_attn.o_proj.weight`, { shape: [h, q], why: `hidden_size ${h} by num_attention_heads ${a.numHeads} x head_dim ${a.headDim}` });
    if (a.attentionBias) {
      m.set(`${p}self_attn.q_proj.bias`, { shape: [q], why: qWhy });
      m.set(`${p}self_attn.k_proj.bias`, { shape: [kv], why: kvWhy });
      m.set(`${p}self_attn.v_proj.bias`, { shape: [kv], why: kvWhy });
    }
    if (a.qkNorm) {
      m.set(`${p}self_attn.q_norm.weight`, { shape: [a.headDim], why: `head_dim ${a.headDim}` });
      m.set(`${p}self_attn.k_norm.weight`, { shape: [a.headDim], why: `head_dim ${a.headDim}` });
    }
    m.set(`${p}mlp.gate_proj.weight`, { shape: [f, h], why: `intermediate_size ${f} by hidden_size ${h}` });
    m.set(`${p}mlp.up_proj.weight`, { shape: [f, h], why: `intermediate_size ${f} by hidden_size ${h}` });
    m.set(`${p}mlp.down_proj.weight`, { shape: [h, f], why: `hidden_size ${h} by intermediate_size ${f}` });
  }
  m.set('model.norm.weight', { shape: [h], why: `hidden_size ${h}` });
  if (!a.tiedEmbeddings) m.set('lm_head.weight', { shape: [a.vocabSize, h], why: `vocab_size ${a.vocabSize} by hidden_size ${h}` });
  return m;
}
