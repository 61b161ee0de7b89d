// Our own safetensors reader. Layout: an 8-byte little-endian header length N, N bytes of JSON
// ({ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: {...} }), then the tensor data;
// data_offsets are relative to the end of the header. Only the header is copied into JS memory; tensor
// data stays in the native memory map and is passed around as TensorRef.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import { UserError } from '../../util/errors.js';
import { jsonBrief } from '../../util/json-brief.js';
import { native, type MappedFile, type TensorDType } from '../native.js';
import { assertRegularFile } from '../regular-file.js';
import { dtypeBytes } from './safetensors-writer.js';

export const SUPPORTED_DTYPES: readonly TensorDType[] = ['F32', 'F16', 'BF16'];
/** Integer tensors appear only in the studio's own quantized folders (codes of quantized layers). */
export type CodeDType = 'U8' | 'I8' | 'U16' | 'I16' | 'U32' | 'I32';
export type StoredDType = TensorDType | CodeDType;
const CODE_DTYPES: readonly string[] = ['U8', 'I8', 'U16', 'I16', 'U32', 'I32'];
// Every dtype the safetensors format defines; these are refused by name rather than called unknown.
const KNOWN_UNSUPPORTED = new Set([
  'BOOL', 'U8', 'I8', 'U16', 'I16', 'U32', 'I32', 'U64', 'I64', 'F64',
  'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'C64',
]);
/** The safetensors reference implementation refuses headers over 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: StoredDType;
  shape: number[];
  /** Absolute byte offset of the tensor data in the file. */
  offset: number;
  bytes: number;
}

export interface SafetensorsHeader {
  /** Where tensor data starts (8 + header length). */
  dataStart: number;
  tensors: SafetensorsEntry[];
  metadata: Record<string, string>;
}

function fail(file: string, problem: string): never {
  throw new UserError(`${file}: ${problem}`, 'BAD_SAFETENSORS');
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Checks a safetensors header against the file it came from, as strictly as the reference library
 * (huggingface/safetensors `read_metadata` + `Metadata::validate`): UTF-8 JSON object starting with
 * "{" (trailing spaces allowed, as writers pad with them), `__metadata__` a map of strings, every
 * tensor a known dtype with a non-negative integer shape, data_offsets that tile the data section
 * from 0 in order without gaps or overlaps, each spanning exactly numel x dtype size bytes, and the
 * last one ending at the end of the file. Every problem names the file and the tensor.
 * `headerBytes` are the N bytes after the length prefix; `fileSize` is the whole file's size.
 * `allowCodes` admits the integer tensors of the studio's quantized folders.
 */
export function parseSafetensorsHeader(file: string, headerBytes: Buffer, fileSize: number, allowCodes = false): SafetensorsHeader {
  const dataStart = 8 + headerBytes.length;
  let text: string;
  try {
    text = UTF8.decode(headerBytes);
  } catch {
    fail(file, 'the safetensors header is not valid UTF-8 text. The file is damaged or not a safetensors file; download it again.');
  }
  if (!text.startsWith('{')) {
    fail(file, `the safetensors header does not start with "{" (it starts with ${jsonBrief(text.slice(0, 1))}); the header length is wrong or this is not a safetensors file. Download it again.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    fail(file, `the safetensors header is not valid JSON (${(err as Error).message}). The file is damaged or not a safetensors file; download it again.`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) fail(file, 'the safetensors header is not a JSON object.');

  const dataBytes = fileSize - dataStart;
  const tensors: Array<SafetensorsEntry & { begin: number; end: number }> = [];
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null) continue;
      if (typeof raw !== 'object' || Array.isArray(raw) || !Object.values(raw as object).every((v) => typeof v === 'string'))
        fail(file, 'the safetensors header\'s __metadata__ must be an object of strings; the file is damaged or was written by a non-conforming tool.');
      metadata = raw as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!info || typeof info !== 'object' || Array.isArray(info)) fail(file, `tensor ${name} has no description in the header.`);
    const { dtype, shape, data_offsets: offsets } = info;
    if (typeof dtype !== 'string') fail(file, `tensor ${name} has no dtype.`);
    if (!SUPPORTED_DTYPES.includes(dtype as TensorDType) && !(allowCodes && CODE_DTYPES.includes(dtype))) {
      if (KNOWN_UNSUPPORTED.has(dtype)) {
        fail(file, `${dtype} tensors are not supported (tensor ${name}); the studio reads F32, F16 and BF16 weights. Use a full-precision (16- or 32-bit) copy of the model.`);
      }
      fail(file, `tensor ${name} has an unknown dtype ${jsonBrief(dtype)}; safetensors dtypes the studio reads are F32, F16 and BF16.`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(file, `tensor ${name} has an invalid shape ${jsonBrief(shape)} (dimensions must be non-negative integers).`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
      fail(file, `tensor ${name} has invalid data_offsets ${jsonBrief(offsets)} (expected [begin, end] with begin <= end).`);
    }
    const [begin, end] = offsets as [number, number];
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const expected = numel * dtypeBytes(dtype as StoredDType);
    if (!Number.isSafeInteger(expected)) fail(file, `tensor ${name} has shape [${(shape as number[]).join(', ')}], too large for any file (its size overflows).`);
    if (end - begin !== expected) {
      fail(file, `tensor ${name} (${dtype} [${(shape as number[]).join(', ')}]) should hold ${expected} bytes but its data_offsets [${begin}, ${end}] span ${end - begin} bytes.`);
    }
    tensors.push({ name, dtype: dtype as StoredDType, shape: shape as number[], offset: dataStart + begin, bytes: expected, begin, end });
  }

  // As the reference: sorted by (begin, end), each tensor starts where the previous one ends, from 0.
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (let i = 0; i < sorted.length; i++) {
    const t = sorted[i];
    if (t.begin !== at) {
      const prev = i > 0 ? sorted[i - 1] : null;
      if (t.begin < at) fail(file, `tensors ${prev!.name} [${prev!.begin}, ${prev!.end}] and ${t.name} [${t.begin}, ${t.end}] overlap; the header is corrupt.`);
      fail(file, `tensor ${t.name} starts at data offset ${t.begin} but ${prev ? `the previous tensor ${prev.name} ends at ${at}` : 'the data starts at 0'}; safetensors tensors are stored back to back without gaps. The header is corrupt.`);
    }
    at = t.end;
  }
  // The data section must end exactly where the file ends.
  if (at > dataBytes) {
    fail(file, `the file is truncated: its header describes ${at} bytes of tensor data but only ${Math.max(0, dataBytes)} bytes follow the header. Download or copy it again.`);
  }
  if (at < dataBytes) {
    fail(file, `the file has ${dataBytes - at} byte${dataBytes - at === 1 ? '' : 's'} after the end of its tensor data (the header describes ${at} bytes, ${dataBytes} follow it); either the header length is wrong or bytes were appended. A safetensors file ends where its last tensor ends; download or write it again.`);
  }
  return { dataStart, tensors: tensors.map(({ begin: _b, end: _e, ...t }) => t), metadata };
}

/** Maps a safetensors file and parses its header; the caller owns (and closes) the returned map. */
export function openSafetensors(filePath: string, allowCodes = false): { file: MappedFile; header: SafetensorsHeader } {
  const name = path.basename(filePath);
  assertRegularFile(filePath, name, 'BAD_SAFETENSORS');
  let file: MappedFile;
  try {
    file = native().mapFile(filePath);
  } catch (err) {
    throw new UserError(`${name}: cannot open the weights file (${(err as Error).message}).`, 'BAD_SAFETENSORS');
  }
  try {
    if (file.size < 8) fail(name, `the file is only ${file.size} bytes long; a safetensors file starts with an 8-byte header length.`);
    const n = file.read(0, 8).readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER_BYTES)) fail(name, `the header length ${n} is implausibly large (over ${MAX_HEADER_BYTES} bytes); the file is damaged or not a safetensors file.`);
    if (8n + n > BigInt(file.size)) {
      fail(name, `the header length ${n} runs past the end of the file (${file.size} bytes); the file is truncated or not a safetensors file.`);
    }
    return { file, header: parseSafetensorsHeader(name, file.read(8, Number(n)), file.size, allowCodes) };
  } catch (err) {
    file.close();
    throw err;
  }
}

/** Reads and checks the header of a safetensors file (mapped only while reading). */
export function readSafetensorsHeader(filePath: string, allowCodes = false): SafetensorsHeader {
  const { file, header } = openSafetensors(filePath, allowCodes);
  file.close();
  return header;
}

/** The dtype of each named tensor of a file; a missing one is an error naming the file. */
export function safetensorsDTypes(filePath: string, allowCodes = false): (name: string) => StoredDType {
  const dtypes = new Map(readSafetensorsHeader(filePath, allowCodes).tensors.map((t) => [t.name, t.dtype]));
  return (name) => {
    const d = dtypes.get(name);
    if (!d) throw new UserError(`${filePath} has no tensor ${name}; the model folder is incomplete.`, 'BAD_SAFETENSORS');
    return d;
  };
}

/** Reads every tensor of a small file into fresh JS memory (the studio's own per-block files). */
export function readSafetensorsFile(filePath: string, allowCodes = false): { header: SafetensorsHeader; data: Map<string, Uint8Array> } {
  const { file, header } = openSafetensors(filePath, allowCodes);
  try {
    return { header, data: new Map(header.tensors.map((t) => [t.name, new Uint8Array(file.read(t.offset, t.bytes))])) };
  } finally {
    file.close();
  }
}

/** One tensor of a (possibly sharded) checkpoint. */
export interface WeightEntry extends SafetensorsEntry {
  /** The file name inside the model folder. */
  fileName: string;
  file: MappedFile;
}

export interface WeightSet {
  entries: Map<string, WeightEntry>;
  files: Array<{ file: string; bytes: number; tensors: number }>;
  close(): void;
}

export const INDEX_FILE = 'model.safetensors.index.json';

/**
 * The size every face shows for a model folder: the bytes of its weight files (model.safetensors,
 * or the shards model.safetensors.index.json names), config, tokenizer and run record not counted.
 * The Models page, New run's estimate (app/domain/quantize/estimate.ts estimateWeightBytes predicts
 * this), a run's result, the Runs and Compare tables and `quip compare` all show this figure. null
 * when the folder has no weight file.
 */
export function weightFileBytes(dir: string): number | null {
  let shards = ['model.safetensors'];
  const indexPath = path.join(dir, INDEX_FILE);
  if (existsSync(indexPath)) {
    try {
      const wm = (JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map?: Record<string, unknown> }).weight_map ?? {};
      shards = [...new Set(Object.values(wm).filter((v): v is string => typeof v === 'string' && v === path.basename(v)))];
    } catch {
      return null;
    }
  }
  let total = 0, found = 0;
  for (const s of shards) {
    const st = statSync(path.join(dir, s), { throwIfNoEntry: false });
    if (st?.isFile()) {
      total += st.size;
      found++;
    }
  }
  return found ? total : null;
}

/**
 * Opens the weights of a Hugging Face folder: model.safetensors, or the shards listed by
 * model.safetensors.index.json (its weight_map names the shard of every tensor). `allowCodes` for
 * the studio's quantized folders.
 */
export function openWeights(dir: string, allowCodes = false): WeightSet {
  const indexPath = path.join(dir, INDEX_FILE);
  let shardNames: string[];
  let weightMap: Record<string, string> | null = null;
  if (existsSync(indexPath)) {
    let index: { weight_map?: unknown };
    assertRegularFile(indexPath, INDEX_FILE, 'BAD_SAFETENSORS');
    try {
      index = JSON.parse(readFileSync(indexPath, 'utf8'));
    } catch (err) {
      throw new UserError(`${INDEX_FILE}: not valid JSON (${(err as Error).message}).`, 'BAD_SAFETENSORS');
    }
    const wm = index?.weight_map;
    if (!wm || typeof wm !== 'object' || Array.isArray(wm) || !Object.values(wm).every((v) => typeof v === 'string')) {
      throw new UserError(`${INDEX_FILE}: has no weight_map object naming the shard of each tensor.`, 'BAD_SAFETENSORS');
    }
    weightMap = wm as Record<string, string>;
    shardNames = [...new Set(Object.values(weightMap))].sort();
    for (const s of shardNames) {
      if (s !== path.basename(s)) throw new UserError(`${INDEX_FILE}: shard name "${s}" must be a file name in the model folder.`, 'BAD_SAFETENSORS');
      if (!existsSync(path.join(dir, s))) {
        throw new UserError(`${INDEX_FILE} lists the shard ${s}, which is missing from ${dir}. Download the model again.`, 'BAD_SAFETENSORS');
      }
    }
  } else if (existsSync(path.join(dir, 'model.safetensors'))) {
    shardNames = ['model.safetensors'];
  } else {
    const hasBin = existsSync(path.join(dir, 'pytorch_model.bin')) || existsSync(path.join(dir, 'pytorch_model.bin.index.json'));
    throw new UserError(
      hasBin
        ? `${dir} holds only PyTorch .bin weights; the studio reads safetensors (model.safetensors). Use a repository that provides safetensors weights.`
        : `${dir} has no model.safetensors or ${INDEX_FILE}; the studio needs the weights in safetensors format.`,
      'NO_WEIGHTS',
    );
  }

  const opened: MappedFile[] = [];
  const close = () => opened.splice(0).forEach((f) => f.close());
  try {
    const entries = new Map<string, WeightEntry>();
    const files: WeightSet['files'] = [];
    for (const shard of shardNames) {
      const { file, header } = openSafetensors(path.join(dir, shard), allowCodes);
      opened.push(file);
      files.push({ file: shard, bytes: file.size, tensors: header.tensors.length });
      for (const t of header.tensors) {
        const prev = entries.get(t.name);
        if (prev) throw new UserError(`${shard}: tensor ${t.name} is also in ${prev.fileName}; a tensor must be stored once.`, 'BAD_SAFETENSORS');
        if (weightMap && weightMap[t.name] !== undefined && weightMap[t.name] !== shard) {
          throw new UserError(`${INDEX_FILE} puts ${t.name} in ${weightMap[t.name]}, but it is stored in ${shard}.`, 'BAD_SAFETENSORS');
        }
        entries.set(t.name, { ...t, fileName: shard, file });
      }
    }
    if (weightMap) {
      for (const [name, shard] of Object.entries(weightMap)) {
        if (!entries.has(name)) throw new UserError(`${INDEX_FILE} puts ${name} in ${shard}, but ${shard} has no such tensor.`, 'BAD_SAFETENSORS');
      }
    }
    return { entries, files, close };
  } catch (err) {
    close();
    throw err;
  }
}
