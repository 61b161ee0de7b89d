// Opens a Hugging Face model folder: config.json -> Architecture, safetensors weights memory-mapped
// and checked against the config, tokenizer and chat template. Tensor data never enters JS memory:
// tensor(name) gives a TensorRef into the native map.
import { existsSync } from 'node:fs';
import path from 'node:path';

import type { Architecture } from '../../contract/model.js';
import { UserError } from '../../util/errors.js';
import type { TensorDType, TensorRef } from '../native.js';
import { QuantizationConfig } from './quantized-format.js';
import { expectedTensorShapes, parseArchitecture, readConfig, readJsonFile, remoteCodeWarning, type RawConfig } from './config.js';
import { INDEX_FILE, openWeights, SUPPORTED_DTYPES, type StoredDType, type WeightSet } from './safetensors.js';
import { loadChatTemplate, loadTokenizer, type ChatTemplateFn, type ModelTokenizer } from './tokenizer.js';

export interface TensorInfo {
  dtype: StoredDType;
  shape: number[];
  /** The safetensors file (name inside the model folder) that holds it. */
  file: string;
}

export interface LoadedModel {
  dir: string;
  architecture: Architecture;
  /** config.json as it is. */
  config: RawConfig;
  tensor(name: string): TensorRef;
  tensorNames(): string[];
  tensorInfo(name: string): TensorInfo;
  hasTensor(name: string): boolean;
  tokenizer: ModelTokenizer;
  chatTemplate: ChatTemplateFn | null;
  /** quantization_config of the studio's own quantized folders (their linear layers are codes); null
   * for a full-precision model. */
  quantization: QuantizationConfig | null;
  /** What the studio ignored or assumed while loading (custom code, sliding window, ...). */
  warnings: string[];
  weightFiles: WeightSet['files'];
  close(): void;
}

/** A model whose tokenizer may be missing (inspection works without one; generation does not). */
export type OpenedModel = Omit<LoadedModel, 'tokenizer'> & { tokenizer: ModelTokenizer | null };

const FLOAT_DTYPES: readonly string[] = SUPPORTED_DTYPES;

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Every tensor the config implies must be there with its shape. In a quantized folder a linear layer
 * recorded in quantization_config is stored as codes and sign vectors instead of `<name>.weight`; its
 * record must then agree with config.json and name tensors that exist.
 */
function checkShapes(arch: Architecture, weights: WeightSet, sharded: boolean, quantization: QuantizationConfig | null): void {
  const where = (name: string) => weights.entries.get(name)?.fileName ?? (sharded ? INDEX_FILE : 'model.safetensors');
  checkLayerCount(arch, weights, sharded);
  for (const [name, { shape, why }] of expectedTensorShapes(arch)) {
    const record = quantization?.layers[name.replace(/\.weight$/, '')];
    if (record && name.endsWith('.weight')) {
      const layer = name.slice(0, -'.weight'.length);
      if (record.m !== shape[0] || record.n !== shape[1]) {
        throw new UserError(`config.json: quantization_config records ${layer} as ${record.m} x ${record.n} but the architecture (${why}) says ${shape[0]} x ${shape[1]}.`, 'SHAPE_MISMATCH');
      }
      for (const t of [record.tensors.codes, record.tensors.codesResidual, record.tensors.su, record.tensors.sv]) {
        if (t !== null && !weights.entries.has(t)) {
          throw new UserError(`${where(t)}: tensor ${t} of the quantized layer ${layer} is missing; the quantized folder is incomplete.`, 'SHAPE_MISMATCH');
        }
      }
      continue;
    }
    const t = weights.entries.get(name);
    if (!t) {
      throw new UserError(`${where(name)}: tensor ${name} is missing; config.json (${arch.modelType}) needs it. The weights do not belong to this config.json.`, 'SHAPE_MISMATCH');
    }
    if (!sameShape(t.shape, shape)) {
      throw new UserError(
        `${t.fileName}: tensor ${name} has shape [${t.shape.join(', ')}] but config.json (${why}) says [${shape.join(', ')}]; config.json and the weights disagree.`,
        'SHAPE_MISMATCH',
      );
    }
    if (!FLOAT_DTYPES.includes(t.dtype)) throw new UserError(`${t.fileName}: tensor ${name} is ${t.dtype}; it must be F32, F16 or BF16.`, 'BAD_SAFETENSORS');
  }
  // Tied embeddings may still store lm_head; it must then match the embedding's shape.
  const head = weights.entries.get('lm_head.weight');
  if (arch.tiedEmbeddings && head && !sameShape(head.shape, [arch.vocabSize, arch.hiddenSize])) {
    throw new UserError(`${head.fileName}: tensor lm_head.weight has shape [${head.shape.join(', ')}] but config.json says [${arch.vocabSize}, ${arch.hiddenSize}].`, 'SHAPE_MISMATCH');
  }
}

/**
 * num_hidden_layers against the blocks the weights actually hold, before anything proportional to it
 * is built (a config claiming a million layers must fail at once, not after gigabytes of names).
 */
function checkLayerCount(arch: Architecture, weights: WeightSet, sharded: boolean): void {
  const blocks = new Set<number>();
  for (const name of weights.entries.keys()) {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) blocks.add(Number(m[1]));
  }
  if (arch.numLayers > blocks.size) {
    const file = sharded ? INDEX_FILE : 'model.safetensors';
    throw new UserError(
      `config.json: num_hidden_layers is ${arch.numLayers} but ${file} holds the tensors of ${blocks.size} block${blocks.size === 1 ? '' : 's'} (model.layers.N); config.json and the weights disagree. Use the config.json that came with these weights.`,
      'SHAPE_MISMATCH',
    );
  }
}

/** The quantization record of one of the studio's quantized folders; null for full precision. */
function readQuantization(config: RawConfig): QuantizationConfig | null {
  if (!config.quantization_config) return null;
  const parsed = QuantizationConfig.safeParse(config.quantization_config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(`config.json: quantization_config is not a valid QuIP# record (${issue.path.join('.') || 'record'}: ${issue.message}); the folder is damaged or from an incompatible version.`, 'BAD_CONFIG');
  }
  return parsed.data;
}

/** Opens a model folder; the tokenizer is null when the folder has no tokenizer.json. */
export async function openModel(dir: string): Promise<OpenedModel> {
  dir = path.resolve(dir);
  const config = readConfig(dir);
  const warnings: string[] = [];
  const architecture = parseArchitecture(config, warnings);
  if (existsSync(path.join(dir, 'tokenizer_config.json'))) {
    const w = remoteCodeWarning('tokenizer_config.json', readJsonFile(dir, 'tokenizer_config.json'));
    if (w) warnings.push(w);
  }
  const quantization = readQuantization(config);
  const weights = openWeights(dir, quantization !== null);
  try {
    checkShapes(architecture, weights, existsSync(path.join(dir, INDEX_FILE)), quantization);
    const tokenizer = loadTokenizer(dir, config);
    if (!tokenizer) warnings.push(`${dir} has no tokenizer.json; the model can be inspected and quantized but not used for text.`);
    const chatTemplate = loadChatTemplate(dir, tokenizer);
    const entry = (name: string) => {
      const t = weights.entries.get(name);
      if (!t) throw new UserError(`The model in ${dir} has no tensor ${name}.`, 'NO_TENSOR');
      return t;
    };
    return {
      dir,
      architecture,
      config,
      tensor(name) {
        const t = entry(name);
        if (!FLOAT_DTYPES.includes(t.dtype)) {
          throw new UserError(`${t.fileName}: tensor ${name} holds ${t.dtype} codes of a quantized layer, not floating-point weights.`, 'NO_TENSOR');
        }
        return { file: t.file, offset: t.offset, dtype: t.dtype as TensorDType, shape: [...t.shape] };
      },
      tensorNames: () => [...weights.entries.keys()],
      tensorInfo(name) {
        const t = entry(name);
        return { dtype: t.dtype, shape: [...t.shape], file: t.fileName };
      },
      hasTensor: (name) => weights.entries.has(name),
      tokenizer,
      chatTemplate,
      quantization,
      warnings,
      weightFiles: weights.files,
      close: weights.close,
    };
  } catch (err) {
    weights.close();
    throw err;
  }
}

/** Opens a model folder for use (generation, quantization): a tokenizer.json is required. */
export async function loadModel(dir: string): Promise<LoadedModel> {
  const m = await openModel(dir);
  if (!m.tokenizer) {
    m.close();
    throw new UserError(`${path.resolve(dir)} has no tokenizer.json; the studio needs it to turn text into tokens. Download the model's tokenizer.json too.`, 'BAD_TOKENIZER');
  }
  return { ...m, tokenizer: m.tokenizer };
}
