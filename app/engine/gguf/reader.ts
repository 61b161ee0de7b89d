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
/** Arrays are lazy views over the file (GgufArray); hand-made metadata in tests may hold plain arrays. */
export type GgufValue = GgufScalar | GgufArray | GgufValue[];
/** The typed array numberArray gives for each item type (64-bit integers as float64 numbers). */
export type GgufNumbers = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

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
/** Arrays of arrays deeper than this are refused (llama.cpp reads no nested arrays at all). */
export const GGUF_MAX_ARRAY_DEPTH = 8;
/** Smallest encoding of one metadata entry (8-byte key length, value type, 1-byte value) and of one
 * tensor info (name length, dim count, one dim, type, offset): counts the file cannot hold are refused. */
const MIN_KV_BYTES = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8;
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
  /** An array entry (any item type), as a lazy view; plain arrays (hand-made metadata) are wrapped. */
  array(key: string): GgufArray | undefined {
    const e = this.typed(key, 'an array', (e) => e.type === 'array');
    return e === undefined ? undefined : asArray(e);
  }
  /** The strings of an array of strings, decoded now (an empty array of any type is an empty list). */
  stringArray(key: string): string[] | undefined {
    const e = this.typed(key, 'an array of strings', (e) => e.type === 'array' && (e.itemType === 'string' || arrayLength(e.value) === 0));
    return e === undefined ? undefined : asArray(e).strings();
  }
  /** The numbers of an array of integers or floats, as a typed array of the item type. */
  numberArray(key: string): GgufNumbers | undefined {
    const e = this.typed(key, 'an array of numbers', (e) => e.type === 'array' && e.itemType !== 'string' && e.itemType !== 'array' && e.itemType !== 'bool');
    return e === undefined ? undefined : asArray(e).numbers();
  }
}

function arrayLength(v: GgufValue): number {
  return v instanceof GgufArray ? v.length : (v as unknown[]).length;
}

function asArray(e: GgufEntry): GgufArray {
  return e.value instanceof GgufArray ? e.value : GgufArray.of(e.itemType ?? 'uint8', e.value as GgufValue[]);
}

const TYPED: Partial<Record<GgufValueType, { new (n: number): GgufNumbers }>> = {
  uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array, uint32: Uint32Array, int32: Int32Array, float32: Float32Array,
  float64: Float64Array, uint64: Float64Array, int64: Float64Array, bool: Uint8Array,
};

/**
 * A metadata array as a view over the file: nothing but its place is kept until it is read, so a
 * file of large arrays costs no memory for the arrays nobody asks for. Fixed-size items are read as
 * one typed array; strings and nested arrays are located through an offset table built while the
 * header was checked (8 bytes per item, never more than the file holds) and decoded on demand.
 * Reading needs the ByteSource (the memory map) to be open.
 */
export class GgufArray {
  private constructor(
    readonly itemType: GgufValueType,
    readonly length: number,
    private readonly src: ByteSource | null,
    private readonly file: string,
    /** Offset of the first item (fixed-size items) or of each item (strings and arrays). */
    private readonly start: number,
    private readonly offsets: Float64Array | null,
    /** Bytes from the first item to the end of the last. */
    readonly byteLength: number,
    private readonly plain: GgufValue[] | null,
  ) {}

  /** A view over items the reader has located and checked. */
  static view(src: ByteSource, file: string, itemType: GgufValueType, length: number, start: number, offsets: Float64Array | null, byteLength: number): GgufArray {
    return new GgufArray(itemType, length, src, file, start, offsets, byteLength, null);
  }
  /** An array of plain values (hand-made metadata). */
  static of(itemType: GgufValueType, items: GgufValue[]): GgufArray {
    return new GgufArray(itemType, items.length, null, '', 0, null, 0, items);
  }

  /** Numbers of a numeric (or bool) array as a typed array of its item type. */
  numbers(): GgufNumbers {
    const Typed = TYPED[this.itemType];
    if (!Typed) throw new GgufError(this.file, `an array of ${this.itemType} was read as numbers.`);
    const out = new Typed(this.length);
    if (this.plain) {
      for (let i = 0; i < this.length; i++) out[i] = Number(this.plain[i]);
      return out;
    }
    if (this.length === 0) return out;
    const bytes = this.src!.read(this.start, this.byteLength);
    if (this.itemType === 'uint64' || this.itemType === 'int64') {
      for (let i = 0; i < this.length; i++) out[i] = Number(this.itemType === 'uint64' ? bytes.readBigUInt64LE(8 * i) : bytes.readBigInt64LE(8 * i));
    } else {
      // Copy into the typed array's own (aligned) memory; GGUF is little-endian like every host we run on.
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
    }
    return out;
  }

  /** String i of an array of strings. */
  string(i: number): string {
    if (this.plain) return this.plain[i] as string;
    const at = this.offsets![i];
    const len = Number(this.src!.read(at, 8).readBigUInt64LE(0));
    return this.src!.read(at + 8, len).toString('utf8');
  }

  /** Every string of an array of strings (one read of the array's bytes). */
  strings(): string[] {
    if (this.plain) return this.plain.map(String);
    if (this.length === 0) return [];
    if (this.itemType !== 'string') throw new GgufError(this.file, `an array of ${this.itemType} was read as strings.`);
    const bytes = this.src!.read(this.start, this.byteLength);
    const out = new Array<string>(this.length);
    for (let i = 0; i < this.length; i++) {
      const at = this.offsets![i] - this.start;
      const len = Number(bytes.readBigUInt64LE(at));
      out[i] = bytes.toString('utf8', at + 8, at + 8 + len);
    }
    return out;
  }

  /** Item i as a plain value (nested arrays as GgufArray views). */
  item(i: number): GgufValue {
    if (i < 0 || i >= this.length) throw new RangeError(`index ${i} outside an array of ${this.length}`);
    if (this.plain) return this.plain[i];
    if (this.itemType === 'string') return this.string(i);
    if (this.itemType === 'array') {
      const c = new Cursor(this.src!, this.file);
      c.pos = this.offsets![i];
      return walkArray(c, this.file, 'a nested array', 1);
    }
    const v = this.numbers()[i];
    return this.itemType === 'bool' ? v === 1 : v;
  }

  /** Plain nested values (for tests and small arrays). */
  toJSON(): unknown[] {
    if (this.itemType === 'string') return this.strings();
    if (this.itemType === 'bool') return Array.from(this.numbers(), (v) => v === 1);
    if (this.itemType !== 'array') return Array.from(this.numbers());
    return Array.from({ length: this.length }, (_, i) => {
      const v = this.item(i);
      return v instanceof GgufArray ? v.toJSON() : v;
    });
  }
}

function describeType(e: GgufEntry): string {
  return e.type === 'array' ? `array of ${e.itemType}` : e.type;
}

/** Reads little-endian fields from a ByteSource through a window, naming what it reads in errors. */
class Cursor {
  pos = 0;
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;

  constructor(
    readonly src: ByteSource,
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
  /** Moves past n bytes without reading them. */
  skip(n: number, what: string): void {
    if (!(this.pos + n <= this.src.size))
      throw new GgufError(this.file, `the file ends at byte ${this.src.size} while reading ${what} at byte ${this.pos} (it needs ${n} bytes); the file is truncated or damaged. Download it again.`);
    this.pos += n;
  }
  bytes(n: number, what: string): Buffer {
    const i = this.at(n, what);
    return this.buf.subarray(i, i + n);
  }
  u8(what: string): number {
    const i = this.at(1, what);
    return this.buf[i];
  }
  i8(what: string): number {
    const i = this.at(1, what); // fetch the window first: this.buf may change
    return this.buf.readInt8(i);
  }
  u16(what: string): number {
    const i = this.at(2, what); // fetch the window first: this.buf may change
    return this.buf.readUInt16LE(i);
  }
  i16(what: string): number {
    const i = this.at(2, what); // fetch the window first: this.buf may change
    return this.buf.readInt16LE(i);
  }
  u32(what: string): number {
    const i = this.at(4, what); // fetch the window first: this.buf may change
    return this.buf.readUInt32LE(i);
  }
  i32(what: string): number {
    const i = this.at(4, what); // fetch the window first: this.buf may change
    return this.buf.readInt32LE(i);
  }
  f32(what: string): number {
    const i = this.at(4, what); // fetch the window first: this.buf may change
    return this.buf.readFloatLE(i);
  }
  f64(what: string): number {
    const i = this.at(8, what); // fetch the window first: this.buf may change
    return this.buf.readDoubleLE(i);
  }
  /** A uint64 as a number; values past 2^53 come back as Infinity (they exceed any file anyway). */
  u64(what: string): number {
    const i = this.at(8, what);
    const lo = this.buf.readUInt32LE(i), hi = this.buf.readUInt32LE(i + 4);
    return hi >= 1 << 21 ? Infinity : hi * 2 ** 32 + lo;
  }
  u64Value(what: string): number | bigint {
    const i = this.at(8, what);
    const v = this.buf.readBigUInt64LE(i);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  i64Value(what: string): number | bigint {
    const i = this.at(8, what);
    const v = this.buf.readBigInt64LE(i);
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
    case 'array': return walkArray(c, file, what, 0);
  }
}

/**
 * Checks an array (item type, count, every item's place) and returns a view of it; only string
 * lengths, nested array headers and bool bytes are read. A count the rest of the file cannot hold is
 * refused before anything is allocated, as is nesting deeper than GGUF_MAX_ARRAY_DEPTH.
 */
function walkArray(c: Cursor, file: string, what: string, depth: number): GgufArray {
  const itemType = readValueType(c, file, `the item type of ${what}`);
  if (itemType === 'array' && depth + 1 >= GGUF_MAX_ARRAY_DEPTH)
    throw new GgufError(file, `${what} at byte ${c.pos} nests arrays more than ${GGUF_MAX_ARRAY_DEPTH} deep; no model stores such metadata (llama.cpp reads no nested arrays). The file is damaged or hostile.`);
  const at = c.pos;
  const count = c.u64(`the length of ${what}`);
  // Every item takes at least this many bytes (a string its 8-byte length, an array its type and count).
  const fixed = FIXED_BYTES[itemType];
  const minItem = fixed ?? (itemType === 'string' ? 8 : 12);
  if (!(count * minItem <= c.size - c.pos))
    throw new GgufError(file, `${what} at byte ${at} claims an array of ${count === Infinity ? 'more than 2^53' : count} ${itemType} items, past the end of the file (${c.size} bytes); the file is damaged or truncated.`);
  const start = c.pos;
  if (fixed !== undefined) {
    if (itemType === 'bool') {
      for (let done = 0; done < count; ) {
        const n = Math.min(count - done, WINDOW);
        const bytes = c.bytes(n, what);
        const bad = bytes.findIndex((b) => b > 1);
        if (bad >= 0) throw new GgufError(file, `item ${done + bad} of ${what} at byte ${start + done + bad} is a bool stored as ${bytes[bad]} (only 0 and 1 are valid); the file is damaged.`);
        done += n;
      }
    } else c.skip(count * fixed, what);
    return GgufArray.view(c.src, file, itemType, count, start, null, count * fixed);
  }
  const offsets = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    offsets[i] = c.pos;
    if (itemType === 'string') {
      const len = c.u64(`the length of item ${i} of ${what}`);
      if (!(len <= c.size - c.pos))
        throw new GgufError(file, `item ${i} of ${what} at byte ${offsets[i]} claims a string of ${len === Infinity ? 'more than 2^53' : len} bytes, past the end of the file (${c.size} bytes); the file is damaged or truncated.`);
      c.skip(len, `item ${i} of ${what}`);
    } else walkArray(c, file, `item ${i} of ${what}`, depth + 1);
  }
  return GgufArray.view(c.src, file, itemType, count, start, offsets, c.pos - start);
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
    throw new GgufError(file, 'this is not a GGUF file: a GGUF model starts with the 4 bytes "GGUF" (47 47 55 46), and this file does not. Choose a .gguf model file.');
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
  if (!(tensorCount * MIN_TENSOR_INFO_BYTES + kvCount * MIN_KV_BYTES <= src.size - c.pos))
    throw new GgufError(file, `the header claims ${tensorCount === Infinity ? 'more than 2^53' : tensorCount} tensors and ${kvCount === Infinity ? 'more than 2^53' : kvCount} metadata entries, more than the file's ${src.size} bytes can hold; the file is damaged or truncated.`);

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
