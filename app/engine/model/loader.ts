// Opens a Hugging Face model folder: config.json -> Architecture, safetensors weights memory-mapped
// and checked against the config, tokenizer and chat template. Tensor data never enters JS memory:
// tensor(name) gives a TensorRef into the native map.
import { existsSync } from 'node:fs';
import path from 'node:path';

import type { Architecture } from '../../contract/model.js';
import { UserError } from '../../util/errors.js';
import type { TensorDType, TensorRef } from '../native.js';
import { expectedTensorShapes, parseArchitecture, readConfig, readJsonFile, remoteCodeWarning, type RawConfig } from './config.js';
import { INDEX_FILE, openWeights, type WeightSet } from './safetensors.js';
import { loadChatTemplate, loadTokenizer, type ChatTemplateFn, type ModelTokenizer } from './tokenizer.js';

export interface TensorInfo {
  dtype: TensorDType;
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
  /** What the studio ignored or assumed while loading (custom code, sliding window, ...). */
  warnings: string[];
  weightFiles: WeightSet['files'];
  close(): void;
}

/** A model whose tokenizer may be missing (inspection works without one; generation does not). */
export type OpenedModel = Omit<LoadedModel, 'tokenizer'> & { tokenizer: ModelTokenizer | null };

function checkShapes(arch: Architecture, weights: WeightSet, sharded: boolean): void {
  const where = (name: string) => weights.entries.get(name)?.fileName ?? (sharded ? INDEX_FILE : 'model.safetensors');
  for (const [name, { shape, why }] of expectedTensorShapes(arch)) {
    const t = weights.entries.get(name);
    if (!t) {
      throw new UserError(`${where(name)}: tensor ${name} is missing; config.json (${arch.modelType}) needs it. The weights do not belong to this config.json.`, 'SHAPE_MISMATCH');
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new UserError(
        `${t.fileName}: tensor ${name} has shape [${t.shape.join(', ')}] but config.json (${why}) says [${shape.join(', ')}]; config.json and the weights disagree.`,
        'SHAPE_MISMATCH',
      );
    }
  }
  // Tied embeddings may still store lm_head; it must then match the embedding's shape.
  const head = weights.entries.get('lm_head.weight');
  if (arch.tiedEmbeddings && head && (head.shape[0] !== arch.vocabSize || head.shape[1] !== arch.hiddenSize)) {
    throw new UserError(`${head.fileName}: tensor lm_head.weight has shape [${head.shape.join(', ')}] but config.json says [${arch.vocabSize}, ${arch.hiddenSize}].`, 'SHAPE_MISMATCH');
  }
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
  const weights = openWeights(dir);
  try {
    checkShapes(architecture, weights, existsSync(path.join(dir, INDEX_FILE)));
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
        return { file: t.file, offset: t.offset, dtype: t.dtype, shape: [...t.shape] };
      },
      tensorNames: () => [...weights.entries.keys()],
      tensorInfo(name) {
        const t = entry(name);
        return { dtype: t.dtype, shape: [...t.shape], file: t.fileName };
      },
      hasTensor: (name) => weights.entries.has(name),
      tokenizer,
      chatTemplate,
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
