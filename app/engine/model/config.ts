// config.json of the Llama family (llama, mistral, qwen2) -> Architecture. Repositories may ship their
// own Python model code (auto_map, trust_remote_code); the studio never runs it: it reads the standard
// layout and says so.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import { Architecture, SUPPORTED_MODEL_TYPES } from '../../contract/model.js';
import { UserError } from '../../util/errors.js';
import { jsonBrief } from '../../util/json-brief.js';
import { assertRegularFile } from '../regular-file.js';
import { QUANT_METHOD } from './quantized-format.js';

const FAMILY: Record<Architecture['modelType'], string> = { llama: 'Llama', mistral: 'Mistral', qwen2: 'Qwen2' };
const SUPPORTED_ROPE_SCALING = ['linear', 'llama3', 'dynamic'];

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

function parseRopeScaling(raw: unknown): Architecture['ropeScaling'] {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'object') problem(`rope_scaling must be an object or null (found ${jsonBrief(raw)}).`);
  const r = raw as Record<string, unknown>;
  const type = (r.rope_type ?? r.type) as unknown;
  if (type === 'default') return null;
  if (typeof type !== 'string' || !SUPPORTED_ROPE_SCALING.includes(type)) {
    problem(`rope_scaling type ${jsonBrief(type)} is not supported; the studio supports ${SUPPORTED_ROPE_SCALING.join(', ')}.`);
  }
  const factor = r.factor;
  if (typeof factor !== 'number' || !(factor > 0)) problem(`rope_scaling.factor must be a positive number (found ${jsonBrief(factor)}).`);
  const opt = (key: string) => {
    const v = r[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number') problem(`rope_scaling.${key} must be a number (found ${jsonBrief(v)}).`);
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
    problem('rope_scaling of type llama3 needs low_freq_factor, high_freq_factor and original_max_position_embeddings.');
  }
  return scaling;
}

/**
 * Reads the architecture from a config.json object. `warnings` collects what the studio ignores or
 * assumes (custom code, sliding windows, defaults).
 */
export function parseArchitecture(cfg: RawConfig, warnings: string[] = []): Architecture {
  const modelType = cfg.model_type;
  const remote = remoteCodeWarning('config.json', cfg);
  if (typeof modelType !== 'string' || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    const what = typeof modelType === 'string' ? `model_type "${modelType}" is not supported` : 'model_type is missing';
    problem(
      `${what}; the studio supports ${SUPPORTED_MODEL_TYPES.join(', ')} (the Llama family).` +
        (remote ? ' The repository ships custom model code, which is ignored: the studio never runs code from a model repository.' : ''),
    );
  }
  if (remote) warnings.push(remote);
  const type = modelType as Architecture['modelType'];

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
  else {
    if (hiddenSize % numHeads !== 0) problem(`hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numHeads}) and head_dim is not given.`);
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) problem(`head_dim ${headDim} must be even for rotary position embeddings.`);

  if (cfg.max_position_embeddings === undefined) warnings.push('config.json has no max_position_embeddings; assuming a context of 2048 tokens.');
  refuseNull(cfg, 'max_position_embeddings');
  const contextLength = int(cfg, 'max_position_embeddings', 2048);
  const sliding = type === 'qwen2' ? (cfg.use_sliding_window === true ? cfg.sliding_window : null) : cfg.sliding_window;
  if (typeof sliding === 'number' && sliding < contextLength) {
    warnings.push(`config.json sets a sliding attention window of ${sliding} tokens; the studio attends over the whole context (identical up to ${sliding} tokens).`);
  }
  // The studio's own quantized folders are read (loader.ts checks their record); others are not.
  const method = (cfg.quantization_config as { quant_method?: unknown } | undefined)?.quant_method;
  if (cfg.quantization_config && method !== QUANT_METHOD) {
    problem(`this model is already quantized (quant_method ${jsonBrief(method ?? 'unknown')}); open its full-precision original instead.`);
  }

  const torchDtype = cfg.torch_dtype ?? cfg.dtype ?? null;
  return Architecture.parse({
    modelType: type,
    family: FAMILY[type],
    hiddenSize,
    intermediateSize: int(cfg, 'intermediate_size'),
    numLayers: int(cfg, 'num_hidden_layers'),
    numHeads,
    numKeyValueHeads,
    headDim,
    vocabSize: int(cfg, 'vocab_size'),
    contextLength,
    ropeTheta: num(cfg, 'rope_theta', 10000),
    ropeScaling: parseRopeScaling(cfg.rope_scaling),
    rmsNormEps: num(cfg, 'rms_norm_eps', 1e-6),
    tiedEmbeddings: cfg.tie_word_embeddings === undefined ? false : cfg.tie_word_embeddings === true,
    // Qwen2 always has q/k/v bias; Llama has it when attention_bias is set; Mistral never.
    attentionBias: type === 'qwen2' ? true : type === 'llama' ? cfg.attention_bias === true : false,
    torchDtype: typeof torchDtype === 'string' ? torchDtype : null,
  });
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
    m.set(`${p}mlp.gate_proj.weight`, { shape: [f, h], why: `intermediate_size ${f} by hidden_size ${h}` });
    m.set(`${p}mlp.up_proj.weight`, { shape: [f, h], why: `intermediate_size ${f} by hidden_size ${h}` });
    m.set(`${p}mlp.down_proj.weight`, { shape: [h, f], why: `hidden_size ${h} by intermediate_size ${f}` });
  }
  m.set('model.norm.weight', { shape: [h], why: `hidden_size ${h}` });
  if (!a.tiedEmbeddings) m.set('lm_head.weight', { shape: [a.vocabSize, h], why: `vocab_size ${a.vocabSize} by hidden_size ${h}` });
  return m;
}
