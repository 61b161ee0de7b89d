// Writing and reading safetensors files for quantized models: codes (U16/U8), sign vectors and
// 16-bit tensors. Layout (safetensors): 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__: {...}} padded with spaces to a
// multiple of 8, then the tensor bytes in header order. Writes are streamed, fsynced and atomic.
import { promises as fs } from 'node:fs';
import path from 'node:path';

import { describeWriteError } from '../../util/atomic-file.js';
import { UserError } from '../../util/errors.js';

export type StDType = 'F32' | 'F16' | 'BF16' | 'U16' | 'I16' | 'U8' | 'I8' | 'U32' | 'I32' | 'F64';

const DTYPE_BYTES: Record<StDType, number> = { F32: 4, F16: 2, BF16: 2, U16: 2, I16: 2, U8: 1, I8: 1, U32: 4, I32: 4, F64: 8 };

export function dtypeBytes(d: StDType): number {
  return DTYPE_BYTES[d];
}

/** Bytes of a tensor to write: in memory, or a range of another file copied in chunks. */
export type TensorSource = { bytes: Uint8Array } | { file: string; offset: number; length: number };

export interface TensorToWrite {
  name: string;
  dtype: StDType;
  shape: number[];
  source: TensorSource;
}

export interface TensorEntry {
  name: string;
  dtype: StDType;
  shape: number[];
  /** Absolute byte offset of the data in the file. */
  offset: number;
  length: number;
}

export interface TensorFileIndex {
  path: string;
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
  dataStart: number;
}

export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function sourceLength(s: TensorSource): number {
  return 'bytes' in s ? s.bytes.byteLength : s.length;
}

/** Builds the header bytes; tensors are laid out in the order given. */
function encodeHeader(tensors: TensorToWrite[], metadata: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let at = 0;
  for (const t of tensors) {
    const len = sourceLength(t.source);
    const expect = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (len !== expect) throw new Error(`tensor ${t.name}: ${len} bytes given for shape [${t.shape}] ${t.dtype} (${expect} expected)`);
    if (t.name in header) throw new Error(`tensor ${t.name} appears twice`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + len] };
    at += len;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + body.length);
  out.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(out, 8);
  return out;
}

/** Writes a safetensors file atomically (temp sibling, fsync, rename); a full disk gives a clear error. */
export async function writeTensorFile(target: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): Promise<number> {
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.tmp`);
  const header = encodeHeader(tensors, metadata);
  let total = header.length;
  try {
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.write(header);
      const chunk = Buffer.alloc(1 << 22);
      for (const t of tensors) {
        const s = t.source;
        if ('bytes' in s) {
          await fh.write(s.bytes);
        } else {
          const src = await fs.open(s.file, 'r');
          try {
            for (let done = 0; done < s.length; ) {
              const want = Math.min(chunk.length, s.length - done);
              const { bytesRead } = await src.read(chunk, 0, want, s.offset + done);
              if (bytesRead !== want) throw new Error(`${s.file} ended early while copying ${t.name}`);
              await fh.write(chunk.subarray(0, want));
              done += want;
            }
          } finally {
            await src.close();
          }
        }
        total += sourceLength(s);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw describeWriteError(err, target);
  }
  return total;
}

/** Checks and indexes a safetensors header (the bytes after the length prefix). */
export function parseTensorHeader(file: string, hbuf: Buffer, size: number): TensorFileIndex {
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(hbuf.toString('utf8'));
  } catch {
    throw new UserError(`${file} has a safetensors header that is not valid JSON; the file is damaged.`, 'NOT_A_MODEL');
  }
  const dataStart = 8 + hbuf.length;
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype: StDType; shape: number[]; data_offsets: [number, number] };
    if (!(e.dtype in DTYPE_BYTES)) throw new UserError(`${file}: tensor ${name} has unsupported dtype ${e.dtype}.`, 'NOT_A_MODEL');
    const [b, en] = e.data_offsets;
    const expect = e.shape.reduce((a, x) => a * x, 1) * DTYPE_BYTES[e.dtype];
    if (en - b !== expect || dataStart + en > size) throw new UserError(`${file}: tensor ${name} lies outside the file or has the wrong size; the file is damaged or truncated.`, 'NOT_A_MODEL');
    tensors.set(name, { name, dtype: e.dtype, shape: e.shape, offset: dataStart + b, length: en - b });
  }
  return { path: file, tensors, metadata, dataStart };
}

function checkHeaderLength(file: string, hlen: number, size: number): void {
  if (hlen > size - 8 || hlen > 100 << 20) throw new UserError(`${file} has a corrupt safetensors header (length ${hlen}); the file is damaged or truncated.`, 'NOT_A_MODEL');
}

/** Reads the header of a safetensors file; errors name the file and say what is wrong. */
export async function readTensorFileIndex(file: string): Promise<TensorFileIndex> {
  let fh;
  try {
    fh = await fs.open(file, 'r');
  } catch {
    throw new UserError(`${file} is missing or unreadable.`, 'NOT_A_MODEL');
  }
  try {
    const { size } = await fh.stat();
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || (await fh.read(lenBuf, 0, 8, 0)).bytesRead !== 8) throw new UserError(`${file} is too short to be a safetensors file.`, 'NOT_A_MODEL');
    const hlen = Number(lenBuf.readBigUInt64LE(0));
    checkHeaderLength(file, hlen, size);
    const hbuf = Buffer.alloc(hlen);
    await fh.read(hbuf, 0, hlen, 8);
    return parseTensorHeader(file, hbuf, size);
  } finally {
    await fh.close();
  }
}

/** The same from a memory-mapped file (only the header is copied). */
export function indexMappedTensorFile(file: string, mapped: { size: number; read(offset: number, length: number): Buffer }): TensorFileIndex {
  if (mapped.size < 8) throw new UserError(`${file} is too short to be a safetensors file.`, 'NOT_A_MODEL');
  const hlen = Number(mapped.read(0, 8).readBigUInt64LE(0));
  checkHeaderLength(file, hlen, mapped.size);
  return parseTensorHeader(file, mapped.read(8, hlen), mapped.size);
}

/** Reads one tensor's bytes (small tensors: sign vectors, norms; codes stay memory-mapped). */
export async function readTensorBytes(index: TensorFileIndex, name: string): Promise<Uint8Array> {
  const e = index.tensors.get(name);
  if (!e) throw new UserError(`${index.path} has no tensor ${name}; the model folder is incomplete.`, 'NOT_A_MODEL');
  const fh = await fs.open(index.path, 'r');
  try {
    const buf = Buffer.alloc(e.length);
    await fh.read(buf, 0, e.length, e.offset);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } finally {
    await fh.close();
  }
}
