// GGUF -> Hugging Face folder: float16 model.safetensors, config.json, generation_config.json,
// tokenizer.json, tokenizer_config.json and gguf-import.json (where it came from). Tensors are
// dequantized one at a time from the memory map (peak memory stays near the largest tensor). The
// folder is built as a temporary sibling, opened with the model loader itself (config, tokenizer, chat
// template, tensor shapes against the config) and only then renamed into place, so an import either
// yields a folder that opens or leaves nothing at the output path (a failure, a cancel, a kill).
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';

import { importNote } from '../../domain/gguf-import.js';
import { processIsGone, removeTempFiles, writeJsonAtomic } from '../../util/atomic-file.js';
import { UserError } from '../../util/errors.js';
import { parseArchitecture } from '../model/config.js';
import { loadModel } from '../model/loader.js';
import { SafetensorsWriter } from '../model/safetensors-writer.js';
import { cancelFlag, isCancelled, native } from '../native.js';
import { planModel, type Architecture } from './architecture.js';
import { GgufError, openGguf } from './reader.js';
import { gatherRows, rotateHalfRowSources } from './rope.js';
import { convertTokenizer } from './tokenizer.js';

export const IMPORT_RECORD_FILE = 'gguf-import.json';
/** What the studio says of a quantized source (app/domain/gguf-import.ts, shared with the renderer). */
export { LOSSY_NOTE } from '../../domain/gguf-import.js';

export interface ImportProgress {
  phase: 'checking' | 'tensors' | 'hashing' | 'finishing' | 'done';
  /** Tensors written so far and in all. */
  done: number;
  total: number;
  tensor?: string;
}

export interface ImportOptions {
  onProgress?: (p: ImportProgress) => void;
  signal?: AbortSignal;
  /** Replace an output folder that already holds a model. */
  force?: boolean;
}

export interface ImportResult {
  outDir: string;
  source: string;
  sourceSha256: string;
  architecture: Architecture;
  name?: string;
  tokenizer: { model: 'gpt2' | 'llama'; preTokenizer?: string };
  tensors: number;
  parameters: number;
  /** How many tensors had each GGUF type. */
  originalTypes: Record<string, number>;
  /** True when any tensor was quantized in the GGUF (the 16-bit weights carry that error). */
  lossy: boolean;
  warnings: string[];
  seconds: number;
}

const MODEL_FILES = ['config.json', 'model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin'];

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new UserError('The import was cancelled.', 'CANCELLED');
}

async function sha256(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 22, signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** What is at the output path: nothing, an empty folder, a model folder, or something else. */
async function outputState(outDir: string): Promise<'absent' | 'empty' | 'model' | 'other'> {
  let entries: string[];
  try {
    const st = await fs.stat(outDir);
    if (!st.isDirectory()) return 'other';
    entries = await fs.readdir(outDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
  if (entries.length === 0) return 'empty';
  return entries.some((e) => MODEL_FILES.includes(e) || e.endsWith('.safetensors')) ? 'model' : 'other';
}

/** The GGUF metadata each config.json field comes from, to name it in an error. */
function configSources(arch: string): Record<string, string> {
  return {
    num_hidden_layers: `${arch}.block_count`,
    max_position_embeddings: `${arch}.context_length`,
    hidden_size: `${arch}.embedding_length`,
    intermediate_size: `${arch}.feed_forward_length`,
    num_attention_heads: `${arch}.attention.head_count`,
    num_key_value_heads: `${arch}.attention.head_count_kv`,
    head_dim: `${arch}.attention.key_length`,
    rms_norm_eps: `${arch}.attention.layer_norm_rms_epsilon`,
    rope_theta: `${arch}.rope.freq_base`,
    rope_scaling: `${arch}.rope.scaling.type / ${arch}.rope.scaling.factor`,
    sliding_window: `${arch}.context_length`,
    max_window_layers: `${arch}.block_count`,
  };
}

/** The first number in a JSON-bound value that JSON cannot hold (NaN, infinity: JSON.stringify writes null). */
function nonFinite(value: unknown, at: string): { at: string; value: number } | null {
  if (typeof value === 'number') return Number.isFinite(value) ? null : { at, value };
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const found = nonFinite(v, Array.isArray(value) ? `${at}[${k}]` : `${at}.${k}`);
      if (found) return found;
    }
  }
  return null;
}

/** Imports of this output that a killed process left behind (their process is gone): removed. */
async function removeStaleImports(target: string): Promise<void> {
  const prefix = `.${path.basename(target)}.importing-`;
  const parent = path.dirname(target);
  const names = await fs.readdir(parent).catch(() => [] as string[]);
  for (const name of names) {
    const m = name.startsWith(prefix) ? /^(\d+)-\d+(\.replaced)?$/.exec(name.slice(prefix.length)) : null;
    if (m && Number(m[1]) !== process.pid && processIsGone(Number(m[1]))) await fs.rm(path.join(parent, name), { recursive: true, force: true });
  }
}

/** The loader refused what the import would write: say so, naming the GGUF metadata behind the field. */
function wouldNotOpen(source: string, arch: string, message: string): never {
  const field = Object.entries(configSources(arch)).find(([k]) => new RegExp(`\\b${k}\\b`).test(message));
  if (field) message += ` (config.json ${field[0]} comes from the file's metadata ${field[1]})`;
  throw new GgufError(source, `the imported model would not open, so nothing was written: ${message.replace(/\.?$/, '.')} The file's metadata is damaged or describes a model the studio does not run.`);
}

/**
 * Opens the finished temporary folder as the studio will open the output: config.json, tokenizer,
 * chat template (parsed, and rendered once within its limits), tensor shapes against the config.
 * Throws a GgufError naming the GGUF metadata behind a field the loader refuses.
 */
async function checkOpens(source: string, temp: string, target: string, arch: string, warnings: string[]): Promise<void> {
  const refuse = (err: unknown): never => wouldNotOpen(source, arch, (err as Error).message.split(temp).join(target));
  let model;
  try {
    model = await loadModel(temp);
  } catch (err) {
    return refuse(err);
  }
  try {
    if (model.chatTemplate) {
      try {
        model.chatTemplate([{ role: 'user', content: 'Hello' }], { addGenerationPrompt: true });
      } catch (err) {
        const code = (err as UserError).code;
        if (code === 'TEMPLATE_LIMIT') refuse(err);
        if (code === 'CANCELLED') throw new UserError('The import was cancelled.', 'CANCELLED');
        warnings.push(`The chat template fails on a one-message conversation (${(err as Error).message.split(temp).join(target)}); chats with this model may fail.`);
      }
    }
  } finally {
    model.close();
  }
}

export async function importGguf(file: string, outDir: string, options: ImportOptions = {}): Promise<ImportResult> {
  const started = performance.now();
  const { onProgress, signal } = options;
  const source = path.resolve(file);
  const target = path.resolve(outDir);
  onProgress?.({ phase: 'checking', done: 0, total: 0 });

  const state = await outputState(target);
  if (state === 'model' && !options.force)
    throw new UserError(`${target} already holds a model. Choose another folder, or allow replacing it (--force on the command line).`, 'OUTPUT_EXISTS');
  if (state === 'other')
    throw new UserError(`${target} exists and is not an empty folder or a model folder. Choose a new or empty folder.`, 'OUTPUT_EXISTS');

  await removeStaleImports(target);
  const { header, file: mapped } = openGguf(source);
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.importing-${process.pid}-${Date.now()}`);
  const cancel = cancelFlag();
  const onAbort = () => (cancel[0] = 1);
  signal?.addEventListener('abort', onAbort);
  let writer: SafetensorsWriter | undefined;
  let hashing: Promise<string> | undefined;
  try {
    // Everything that can refuse the file is checked before anything is written.
    const meta = header.metadata;
    const arch = meta.string('general.architecture');
    const tok = convertTokenizer(meta, arch ? meta.number(`${arch}.context_length`) : undefined);
    const freqs = header.tensors.find((t) => t.name === 'rope_freqs.weight' && t.type.name === 'F32');
    const ropeFactors = freqs ? new Float32Array(Uint8Array.from(mapped.read(freqs.offset, freqs.bytes)).buffer) : undefined;
    const plan = planModel(header, tok, ropeFactors);
    // JSON has no NaN or infinity (JSON.stringify writes null): refuse instead of writing a config
    // that no longer says what the file said; then the config as the loader will read it.
    const bad = nonFinite(plan.config, 'config.json') ?? nonFinite(plan.generationConfig, 'generation_config.json') ?? nonFinite(tok.tokenizerConfig, 'tokenizer_config.json');
    if (bad) {
      const key = bad.at.replace(/^config\.json\./, '').split(/[.[]/)[0];
      const from = bad.at.startsWith('config.json.') ? configSources(arch!)[key] : undefined;
      throw new GgufError(source, `${bad.at} would be ${bad.value}${from ? ` (from the file's metadata ${from})` : ''}, which is not a usable number; the file's metadata is damaged.`);
    }
    try {
      parseArchitecture(plan.config);
    } catch (err) {
      wouldNotOpen(source, arch!, (err as Error).message);
    }
    const supported = native().ggufSupportedTypes();
    for (const t of plan.tensors)
      if (!supported.includes(t.gguf.type.name))
        throw new GgufError(source, `tensor ${t.gguf.name} has type ${t.gguf.type.name}, which the importer does not read; supported: ${supported.join(', ')}.`);
    throwIfAborted(signal);

    hashing = sha256(source, signal);
    hashing.catch(() => undefined);
    await fs.mkdir(temp, { recursive: true });
    const ordered = [...plan.tensors].sort((a, b) => (a.hfName < b.hfName ? -1 : 1));
    writer = await SafetensorsWriter.create(
      path.join(temp, 'model.safetensors'),
      ordered.map((t) => ({ name: t.hfName, dtype: 'F16' as const, shape: t.shape })),
      { format: 'pt', source: 'gguf' },
    );
    const originalTypes: Record<string, number> = {};
    let parameters = 0;
    for (const [i, t] of ordered.entries()) {
      throwIfAborted(signal);
      onProgress?.({ phase: 'tensors', done: i, total: ordered.length, tensor: t.hfName });
      const g = t.gguf;
      let result;
      try {
        result = await native().ggufDequantize(mapped, g.offset, g.type.name, g.numel, 'f16', undefined, cancel);
      } catch (err) {
        if (isCancelled(err)) throw new UserError('The import was cancelled.', 'CANCELLED');
        throw err;
      }
      if (result.nonFinite > 0)
        throw new GgufError(source, `tensor ${g.name} has ${result.nonFinite} values that are infinite, not a number, or beyond float16's range (65504); the model cannot be stored in 16 bits.`);
      let data: Uint8Array = result.data;
      if (t.ropeHeads) data = gatherRows(data, (g.numel / t.shape[0]) * 2, rotateHalfRowSources(t.shape[0], t.ropeHeads));
      await writer.write(t.hfName, data);
      originalTypes[g.type.name] = (originalTypes[g.type.name] ?? 0) + 1;
      parameters += g.numel;
    }
    await writer.close();
    writer = undefined;
    onProgress?.({ phase: 'hashing', done: ordered.length, total: ordered.length });
    const sourceSha256 = await hashing;
    throwIfAborted(signal);

    onProgress?.({ phase: 'finishing', done: ordered.length, total: ordered.length });
    const lossy = plan.tensors.some((t) => !['F32', 'F16', 'BF16'].includes(t.gguf.type.name));
    const name = meta.string('general.name');
    const warnings = [...tok.warnings, ...plan.warnings];
    await writeJsonAtomic(path.join(temp, 'config.json'), plan.config);
    await writeJsonAtomic(path.join(temp, 'generation_config.json'), plan.generationConfig);
    await writeJsonAtomic(path.join(temp, 'tokenizer.json'), tok.tokenizerJson);
    await writeJsonAtomic(path.join(temp, 'tokenizer_config.json'), tok.tokenizerConfig);
    // The folder must open as the studio opens it, or nothing is published.
    await checkOpens(source, temp, target, arch!, warnings);
    const { size } = await fs.stat(source);
    await writeJsonAtomic(path.join(temp, IMPORT_RECORD_FILE), {
      format: 'quip-studio gguf import 1',
      source: { path: source, file: path.basename(source), bytes: size, sha256: sourceSha256, ggufVersion: header.version, name, fileType: meta.number('general.file_type') },
      importedAt: new Date().toISOString(),
      architecture: plan.architecture,
      tokenizer: { model: tok.model, preTokenizer: tok.preTokenizer },
      lossy,
      note: importNote(lossy),
      warnings,
      tensors: plan.tensors.map((t) => ({
        name: t.hfName, gguf: t.gguf.name, type: t.gguf.type.name, shape: t.shape, ...(t.ropeHeads ? { rowOrder: 'interleaved RoPE -> rotate-half' } : {}),
      })),
    });

    // No temporary file of an atomic write is published.
    await removeTempFiles(temp, { onlyStale: false });

    // Into place: an empty folder is replaced; an existing model only with force (kept aside until
    // the new one is in place).
    throwIfAborted(signal);
    const now = await outputState(target);
    let aside: string | undefined;
    if (now === 'empty') await fs.rmdir(target);
    else if (now === 'model' && options.force) {
      aside = `${temp}.replaced`;
      await fs.rename(target, aside);
    } else if (now !== 'absent') throw new UserError(`${target} changed during the import and now holds files. Choose another folder.`, 'OUTPUT_EXISTS');
    await fs.rename(temp, target);
    if (aside) await fs.rm(aside, { recursive: true, force: true });

    const result: ImportResult = {
      outDir: target, source, sourceSha256, architecture: plan.architecture, name,
      tokenizer: { model: tok.model, preTokenizer: tok.preTokenizer },
      tensors: ordered.length, parameters, originalTypes, lossy, warnings,
      seconds: (performance.now() - started) / 1000,
    };
    onProgress?.({ phase: 'done', done: ordered.length, total: ordered.length });
    return result;
  } catch (err) {
    await writer?.abort();
    await hashing?.catch(() => undefined);
    await fs.rm(temp, { recursive: true, force: true });
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    mapped.close();
  }
}
