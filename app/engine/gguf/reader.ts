// Our own GGUF reader (format versions 2 and 3, little-endian). Layout:
//   "GGUF" | uint32 version | uint64 tensor_count | uint64 metadata_kv_count
//   metadata: (string key, uint32 value_type, value)*   string = uint64 byte length + UTF-8 bytes
//             array value = uint32 item_type, uint64 count, items (arrays may nest)
//   tensor infos: (string name, uint32 n_dims, uint64 dims[n_dims], uint32 ggml_type, uint64 offset)*
//   padding to general.alignment (default 32), then the tensor data; each offset is relative to
//   the data start and a multiple of the alignment.
// dims are ggml's order (dims[0] varies fastest); `shape` below is the row-major order PyTorch and
// safetensors use (dims reversed). Only header bytes are copied into JS, window by window, from the
// memory map; tensor data stays in the map for the native dequantizer.
import { UserError } from '../../util/errors.js';
import { native, type MappedFile } from '../native.js';
import { ggmlTypeById, type GgmlType } from './ggml-types.js';

export type GgufValueType =
  | 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'bool' | 'string' | 'array'
  | 'uint64' | 'int64' | 'float64';
const VALUE_TYPES: GgufValueType[] = [
  'uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'bool', 'string', 'array', 'uint64', 'int64', 'float64',
];
const FIXED_BYTES: Partial<Record<GgufValueType, number>> = {
  uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, bool: 1, uint64: 8, int64: 8, float64: 8,
};

/** 64-bit integers are numbers when exactly representable, bigints otherwise. */
export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | GgufValue[];

export interface GgufEntry {
  type: GgufValueType;
  /** For arrays: the type of their items. */
  itemType?: GgufValueType;
  value: GgufValue;
}

export interface GgufTensorInfo {
  name: string;
  type: GgmlType;
  /** ggml order: dims[0] is the fastest-varying (a row's length). */
  dims: number[];
  /** Row-major order (dims reversed), as Hugging Face checkpoints store it. */
  shape: number[];
  numel: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  bytes: number;
}

export interface GgufHeader {
  version: number;
  alignment: number;
  /** Absolute offset where tensor data starts. */
  dataOffset: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
}

/** Anything with the MappedFile's size and read(offset, length). */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Buffer;
}

export const GGUF_DEFAULT_ALIGNMENT = 32;
const MAX_DIMS = 4;
// Header bytes are fetched in windows of this size (metadata of large vocabularies is megabytes).
const WINDOW = 1 << 20;

export class GgufError extends UserError {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`, 'BAD_GGUF');
    this.name = 'GgufError';
  }
}

/** Typed access to metadata; a wrong type is an error naming the file and the key. */
export class GgufMetadata {
  constructor(
    readonly file: string,
    readonly entries: Map<string, GgufEntry>,
  ) {}

  has(key: string): boolean {
    return this.entries.has(key);
  }
  private typed(key: string, want: string, ok: (e: GgufEntry) => boolean): GgufEntry | undefined {
    const e = this.entries.get(key);
    if (e && !ok(e)) throw new GgufError(this.file, `metadata ${key} is a ${describeType(e)}, expected ${want}; the file is not a valid model.`);
    return e;
  }
  string(key: string): string | undefined {
    return this.typed(key, 'a string', (e) => e.type === 'string')?.value as string | undefined;
  }
  /** Any integer or float type, as a number. */
  number(key: string): number | undefined {
    const e = this.typed(key, 'a number', (e) => e.type !== 'string' && e.type !== 'array' && e.type !== 'bool');
    return e === undefined ? undefined : Number(e.value);
  }
  /** An integer that fits a JS number exactly. */
  integer(key: string): number | undefined {
    const e = this.typed(key, 'an integer', (e) => /int/.test(e.type));
    if (e === undefined) return undefined;
    if (typeof e.value !== 'number') throw new GgufError(this.file, `metadata ${key} = ${e.value} is out of range.`);
    return e.value;
  }
  bool(key: string): boolean | undefined {
    return this.typed(key, 'a bool', (e) => e.type === 'bool')?.value as boolean | undefined;
  }
  stringArray(key: string): string[] | undefined {
    return this.typed(key, 'an array of strings', (e) => e.type === 'array' && (e.itemType === 'string' || (e.value as unknown[]).length === 0))
      ?.value as string[] | undefined;
  }
  numberArray(key: string): number[] | undefined {
    const e = this.typed(key, 'an array of numbers', (e) => e.type === 'array' && e.itemType !== 'string' && e.itemType !== 'array' && e.itemType !== 'bool');
    return e === undefined ? undefined : (e.value as Array<number | bigint>).map(Number);
  }
}

function describeType(e: GgufEntry): string {
  return e.type === 'array' ? `array of ${e.itemType}` : e.type;
}

function hex(bytes: Buffer): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Reads little-endian fields from a ByteSource through a window, naming what it reads in errors. */
class Cursor {
  pos = 0;
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;

  constructor(
    private readonly src: ByteSource,
    private readonly file: string,
  ) {}

  get size(): number {
    return this.src.size;
  }

  /** Index into `buf` of `n` bytes at pos, fetching a window when needed. */
  private at(n: number, what: string): number {
    if (this.pos + n > this.src.size)
      throw new GgufError(this.file, `the file ends at byte ${this.src.size} while reading ${what} at byte ${this.pos} (it needs ${n} bytes); the file is truncated or damaged. Download it again.`);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      this.bufStart = this.pos;
      this.buf = this.src.read(this.pos, Math.min(this.src.size - this.pos, Math.max(n, WINDOW)));
    }
    const i = this.pos - this.bufStart;
    this.pos += n;
    return i;
  }
  bytes(n: number, what: string): Buffer {
    const i = this.at(n, what);
    return this.buf.subarray(i, i + n);
  }
  u8(what: string): number {
    return this.buf[this.at(1, what)];
  }
  i8(what: string): number {
    return this.buf.readInt8(this.at(1, what));
  }
  u16(what: string): number {
    return this.buf.readUInt16LE(this.at(2, what));
  }
  i16(what: string): number {
    return this.buf.readInt16LE(this.at(2, what));
  }
  u32(what: string): number {
    return this.buf.readUInt32LE(this.at(4, what));
  }
  i32(what: string): number {
    return this.buf.readInt32LE(this.at(4, what));
  }
  f32(what: string): number {
    return this.buf.readFloatLE(this.at(4, what));
  }
  f64(what: string): number {
    return this.buf.readDoubleLE(this.at(8, what));
  }
  /** A uint64 as a number; values past 2^53 come back as Infinity (they exceed any file anyway). */
  u64(what: string): number {
    const i = this.at(8, what);
    const lo = this.buf.readUInt32LE(i), hi = this.buf.readUInt32LE(i + 4);
    return hi >= 1 << 21 ? Infinity : hi * 2 ** 32 + lo;
  }
  u64Value(what: string): number | bigint {
    const v = this.buf.readBigUInt64LE(this.at(8, what));
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  i64Value(what: string): number | bigint {
    const v = this.buf.readBigInt64LE(this.at(8, what));
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
  }
  string(what: string): string {
    const start = this.pos;
    const len = this.u64(`the length of ${what}`);
    if (this.pos + len > this.src.size)
      throw new GgufError(this.file, `${what} at byte ${start} claims a string of ${len === Infinity ? 'more than 2^53' : len} bytes, past the end of the file (${this.src.size} bytes); the file is damaged or truncated.`);
    return this.bytes(len, what).toString('utf8');
  }
}

function readValue(c: Cursor, file: string, type: GgufValueType, what: string): GgufValue {
  switch (type) {
    case 'uint8': return c.u8(what);
    case 'int8': return c.i8(what);
    case 'uint16': return c.u16(what);
    case 'int16': return c.i16(what);
    case 'uint32': return c.u32(what);
    case 'int32': return c.i32(what);
    case 'float32': return shortestFloat32(c.f32(what));
    case 'float64': return c.f64(what);
    case 'uint64': return c.u64Value(what);
    case 'int64': return c.i64Value(what);
    case 'bool': {
      const at = c.pos, b = c.u8(what);
      if (b > 1) throw new GgufError(file, `${what} at byte ${at} is a bool stored as ${b} (only 0 and 1 are valid); the file is damaged.`);
      return b === 1;
    }
    case 'string': return c.string(what);
    case 'array': {
      const itemType = readValueType(c, file, `the item type of ${what}`);
      const start = c.pos;
      const count = c.u64(`the length of ${what}`);
      // Every item takes at least this many bytes, so a count the file cannot hold is caught before
      // allocating anything (a string or array item has at least its 8-byte length).
      const minItem = FIXED_BYTES[itemType] ?? (itemType === 'string' ? 8 : 12);
      if (c.pos + count * minItem > c.size)
        throw new GgufError(file, `${what} at byte ${start} claims an array of ${count === Infinity ? 'more than 2^53' : count} ${itemType} items, past the end of the file (${c.size} bytes); the file is damaged or truncated.`);
      const items: GgufValue[] = new Array(count);
      for (let i = 0; i < count; i++) items[i] = readValue(c, file, itemType, `item ${i} of ${what}`);
      return items;
    }
  }
}

function readValueType(c: Cursor, file: string, what: string): GgufValueType {
  const at = c.pos;
  const id = c.u32(what);
  const t = VALUE_TYPES[id];
  if (!t) throw new GgufError(file, `${what} at byte ${at} is ${id}, which is not a GGUF value type (0-12); the file is damaged or from a newer GGUF version.`);
  return t;
}

/** Parses the header (metadata and tensor infos) and checks every tensor's data against the file. */
export function readGgufHeader(src: ByteSource, file: string): GgufHeader {
  const c = new Cursor(src, file);
  if (src.size < 4) throw new GgufError(file, `the file is ${src.size} bytes long, too short to be a GGUF model. Choose a .gguf file.`);
  const magic = c.bytes(4, 'the magic number');
  if (magic.toString('latin1') !== 'GGUF')
    throw new GgufError(file, `this is not a GGUF file: it starts with bytes ${hex(magic)}, not "GGUF" (47 47 55 46). Choose a .gguf model file.`);
  const version = c.u32('the format version');
  if (version !== 2 && version !== 3) {
    const swapped = ((version & 0xff) << 24 | (version & 0xff00) << 8 | (version >>> 8) & 0xff00 | version >>> 24) >>> 0;
    if (swapped === 2 || swapped === 3)
      throw new GgufError(file, 'this is a big-endian GGUF file, which the importer does not read. Use the little-endian file of the model.');
    if (version === 1)
      throw new GgufError(file, 'GGUF version 1 (the first draft of the format, 2023) is not supported; the importer reads versions 2 and 3. Convert the model again with a current llama.cpp.');
    throw new GgufError(file, `GGUF version ${version} is unknown; the importer reads versions 2 and 3.`);
  }
  const tensorCount = c.u64('the tensor count');
  const kvCount = c.u64('the metadata count');

  const entries = new Map<string, GgufEntry>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`the key of metadata entry ${i}`);
    const type = readValueType(c, file, `the value type of metadata ${key}`);
    let itemType: GgufValueType | undefined;
    if (type === 'array') {
      // Peek at the item type for the entry record; readValue reads it again.
      const at = c.pos;
      itemType = readValueType(c, file, `the item type of metadata ${key}`);
      c.pos = at;
    }
    const value = readValue(c, file, type, `the value of metadata ${key}`);
    if (entries.has(key)) throw new GgufError(file, `metadata ${key} appears twice; the file is damaged.`);
    entries.set(key, { type, itemType, value });
  }
  const metadata = new GgufMetadata(file, entries);

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignEntry = entries.get('general.alignment');
  if (alignEntry) {
    const a = alignEntry.value;
    if (alignEntry.type !== 'uint32' || typeof a !== 'number' || a === 0 || (a & (a - 1)) !== 0)
      throw new GgufError(file, `general.alignment must be a uint32 power of two, but it is ${describeType(alignEntry)} ${String(a)}; the file is damaged.`);
    alignment = a;
  }

  const raw: Array<{ name: string; type: GgmlType; dims: number[]; rel: number }> = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`the name of tensor ${i}`);
    const nDims = c.u32(`the dimension count of tensor ${name}`);
    if (nDims < 1 || nDims > MAX_DIMS)
      throw new GgufError(file, `tensor ${name} has ${nDims} dimensions (ggml tensors have 1 to ${MAX_DIMS}); the file is damaged.`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(c.u64(`dimension ${d} of tensor ${name}`));
    const typeAt = c.pos;
    const typeId = c.u32(`the type of tensor ${name}`);
    const type = ggmlTypeById(typeId);
    if (!type) throw new GgufError(file, `tensor ${name} has type id ${typeId} at byte ${typeAt}, which is not a known ggml type; the file is damaged or from a newer llama.cpp.`);
    const rel = c.u64(`the data offset of tensor ${name}`);
    raw.push({ name, type, dims, rel });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;

  const tensors: GgufTensorInfo[] = [];
  const seen = new Set<string>();
  for (const t of raw) {
    if (seen.has(t.name)) throw new GgufError(file, `tensor ${t.name} appears twice; the file is damaged.`);
    seen.add(t.name);
    const numel = t.dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(numel) || numel < 1)
      throw new GgufError(file, `tensor ${t.name} has an impossible shape [${t.dims.join(', ')}]; the file is damaged.`);
    if (t.dims[0] % t.type.blockValues !== 0)
      throw new GgufError(file, `tensor ${t.name} (${t.type.name}) has rows of ${t.dims[0]} values, not a whole number of ${t.type.blockValues}-value blocks; the file is damaged.`);
    if (t.rel % alignment !== 0)
      throw new GgufError(file, `tensor ${t.name}'s data offset ${t.rel} is not a multiple of the alignment ${alignment}; the file is damaged.`);
    const bytes = (numel / t.type.blockValues) * t.type.blockBytes;
    const offset = dataOffset + t.rel;
    if (!(offset + bytes <= src.size))
      throw new GgufError(file, `tensor ${t.name}'s data (bytes ${offset} to ${offset + bytes}) lies past the end of the file (${src.size} bytes); the file is truncated. Download it again.`);
    tensors.push({ name: t.name, type: t.type, dims: t.dims, shape: [...t.dims].reverse(), numel, offset, bytes });
  }
  return { version, alignment, dataOffset, metadata, tensors };
}

export interface OpenGguf {
  header: GgufHeader;
  file: MappedFile;
}

/** Maps a GGUF file and reads its header. Close `file` when done. */
export function openGguf(filePath: string): OpenGguf {
  let file: MappedFile;
  try {
    file = native().mapFile(filePath);
  } catch (err) {
    throw new UserError(`Cannot open ${filePath}: ${(err as Error).message}. Check the path and try again.`, 'NOT_FOUND');
  }
  try {
    return { header: readGgufHeader(file, filePath), file };
  } catch (err) {
    file.close();
    throw err;
  }
}

/**
 * The shortest decimal that reads back as the same float32: 1e-5 rather than 0.000009999999747378752,
 * as Hugging Face configs write such values (the engine rounds it to the very same float32 again).
 */
export function shortestFloat32(v: number): number {
  if (!Number.isFinite(v)) return v;
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(v.toPrecision(digits));
    if (Math.fround(candidate) === v) return candidate;
  }
  return v;
}
