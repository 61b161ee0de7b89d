// The one safetensors writer (the reader is ./safetensors.ts). Layout: an 8-byte little-endian header
// length, the JSON header {__metadata__?, name: {dtype, shape, data_offsets: [begin, end]}} padded with
// spaces to a multiple of 8, then the tensor bytes in header order. The header is known from the
// shapes alone, so tensors are streamed one at a time (or one chunk at a time) without holding the
// file in memory. The file appears atomically: a temporary sibling is written, fsynced and renamed
// over the target (the app/util/atomic-file.ts convention, write errors told by describeWriteError);
// a failure or abort removes the sibling and leaves any old file untouched.
import { promises as fs } from 'node:fs';
import path from 'node:path';

import { describeWriteError } from '../../util/atomic-file.js';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'U8' | 'I8' | 'U16' | 'I16' | 'U32' | 'I32';

const DTYPE_BYTES: Record<SafetensorsDType, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, U8: 1, I8: 1, U16: 2, I16: 2, U32: 4, I32: 4 };

export function dtypeBytes(d: SafetensorsDType): number {
  return DTYPE_BYTES[d];
}

export interface SafetensorsTensorSpec {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
}

/**
 * Bytes of a tensor to write: in memory, a range of another file (copied in chunks), or produced
 * chunk by chunk: `fill(out, start)` writes elements [start, start + out.byteLength / size) into `out`.
 */
export type TensorSource =
  | { bytes: Uint8Array }
  | { file: string; offset: number; length: number }
  | { fill(out: Uint8Array, start: number): void };

export interface TensorToWrite extends SafetensorsTensorSpec {
  source: TensorSource;
}

/** The bytes of a typed array (no copy). */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

const CHUNK_BYTES = 8 << 20;

function tensorBytes(t: SafetensorsTensorSpec): number {
  return t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
}

export class SafetensorsWriter {
  private next = 0;
  private position: number;

  private constructor(
    private readonly target: string,
    private readonly temp: string,
    private readonly fh: fs.FileHandle,
    private readonly specs: Array<SafetensorsTensorSpec & { bytes: number }>,
    dataStart: number,
  ) {
    this.position = dataStart;
  }

  /** Starts writing `target` (through a temporary sibling); tensors must then be written in the order given. */
  static async create(target: string, tensors: SafetensorsTensorSpec[], metadata: Record<string, string> = {}): Promise<SafetensorsWriter> {
    const header: Record<string, unknown> = {};
    if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
    let at = 0;
    const specs = tensors.map((t) => {
      if (!(t.dtype in DTYPE_BYTES)) throw new Error(`safetensors: tensor ${t.name} has unknown dtype ${t.dtype}`);
      if (t.name in header) throw new Error(`safetensors: tensor ${t.name} declared twice`);
      const bytes = tensorBytes(t);
      header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + bytes] };
      at += bytes;
      return { name: t.name, dtype: t.dtype, shape: t.shape, bytes };
    });
    let json = Buffer.from(JSON.stringify(header), 'utf8');
    json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));

    // One name per process and target, so a test can point it at /dev/full to check the full-disk error.
    const temp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.tmp`);
    let fh: fs.FileHandle | undefined;
    try {
      await fs.mkdir(path.dirname(target), { recursive: true });
      fh = await fs.open(temp, 'w');
      const writer = new SafetensorsWriter(target, temp, fh, specs, 0);
      await writer.put(Buffer.concat([prefix, json]));
      return writer;
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await fs.rm(temp, { force: true });
      throw describeWriteError(err, target);
    }
  }

  /** Name of the tensor the writer expects next (undefined when all are written). */
  get expected(): string | undefined {
    return this.specs[this.next]?.name;
  }

  /** Writes the next tensor whole. */
  async write(name: string, data: Uint8Array): Promise<void> {
    this.take(name, data.byteLength);
    await this.put(data);
    this.next++;
  }

  /** Writes the next tensor from a range of another file, in chunks. */
  async copy(name: string, file: string, offset: number, length: number): Promise<void> {
    this.take(name, length);
    const src = await fs.open(file, 'r');
    try {
      const chunk = Buffer.alloc(Math.min(CHUNK_BYTES, length));
      for (let done = 0; done < length; ) {
        const want = Math.min(chunk.length, length - done);
        const { bytesRead } = await src.read(chunk, 0, want, offset + done);
        if (bytesRead !== want) throw new Error(`${file} ended early while copying ${name}`);
        await this.put(chunk.subarray(0, want));
        done += want;
      }
    } finally {
      await src.close();
    }
    this.next++;
  }

  /** Writes the next tensor chunk by chunk: `fill(out, start)` produces elements from `start` on. */
  async fill(name: string, fill: (out: Uint8Array, start: number) => void): Promise<void> {
    const spec = this.take(name);
    const size = DTYPE_BYTES[spec.dtype];
    const total = spec.bytes / size;
    const per = CHUNK_BYTES / size;
    const chunk = new Uint8Array(Math.min(CHUNK_BYTES, spec.bytes));
    for (let start = 0; start < total; start += per) {
      const view = chunk.subarray(0, Math.min(per, total - start) * size);
      fill(view, start);
      await this.put(view);
    }
    this.next++;
  }

  /** fsyncs and renames the file into place; every declared tensor must have been written. Returns the file's size. */
  async close(): Promise<number> {
    if (this.next !== this.specs.length) {
      await this.abort();
      throw new Error(`safetensors: ${this.specs.length - this.next} declared tensors were not written to ${this.target}`);
    }
    try {
      await this.fh.sync();
      await this.fh.close();
      await fs.rename(this.temp, this.target);
    } catch (err) {
      await this.abort();
      throw describeWriteError(err, this.target);
    }
    return this.position;
  }

  /** Gives up (after a failure or cancellation): closes and removes the temporary file. */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await fs.rm(this.temp, { force: true });
  }

  private take(name: string, length?: number): SafetensorsTensorSpec & { bytes: number } {
    const spec = this.specs[this.next];
    if (!spec || spec.name !== name) throw new Error(`safetensors: expected tensor ${spec?.name ?? '(none)'} next, got ${name}`);
    if (length !== undefined && length !== spec.bytes) {
      throw new Error(`tensor ${name}: ${length} bytes given for shape [${spec.shape}] ${spec.dtype} (${spec.bytes} expected)`);
    }
    return spec;
  }

  private async put(data: Uint8Array): Promise<void> {
    try {
      for (let done = 0; done < data.byteLength; ) {
        const { bytesWritten } = await this.fh.write(data, done, data.byteLength - done, this.position + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw describeWriteError(err, this.target);
    }
    this.position += data.byteLength;
  }
}

/** Writes a whole safetensors file atomically, tensors in the order given. Returns the file's size. */
export async function writeSafetensors(target: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): Promise<number> {
  const writer = await SafetensorsWriter.create(target, tensors, metadata);
  try {
    for (const t of tensors) {
      const s = t.source;
      if ('bytes' in s) await writer.write(t.name, s.bytes);
      else if ('fill' in s) await writer.fill(t.name, (out, start) => s.fill(out, start));
      else await writer.copy(t.name, s.file, s.offset, s.length);
    }
  } catch (err) {
    await writer.abort();
    throw describeWriteError(err, target);
  }
  return writer.close();
}
