// A streaming safetensors writer: the header (8-byte little-endian length, then JSON padded with
// spaces to a multiple of 8) is written first from the declared tensors, then each tensor's bytes in
// declaration order, so only one tensor is ever held in memory.
import { promises as fs } from 'node:fs';

import { describeWriteError } from '../../util/atomic-file.js';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16';
const DTYPE_BYTES: Record<SafetensorsDType, number> = { F32: 4, F16: 2, BF16: 2 };

export interface SafetensorsTensorSpec {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
}

export class SafetensorsWriter {
  private next = 0;
  private position: number;

  private constructor(
    private readonly file: string,
    private readonly fh: fs.FileHandle,
    private readonly specs: Array<SafetensorsTensorSpec & { bytes: number }>,
    dataStart: number,
  ) {
    this.position = dataStart;
  }

  /** Creates `file` and writes its header; tensors must then be written in the order given. */
  static async create(file: string, tensors: SafetensorsTensorSpec[], metadata: Record<string, string> = {}): Promise<SafetensorsWriter> {
    const header: Record<string, unknown> = {};
    if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
    let offset = 0;
    const specs = tensors.map((t) => {
      if (t.name in header) throw new Error(`safetensors: tensor ${t.name} declared twice`);
      const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
      header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
      return { ...t, bytes };
    });
    let json = Buffer.from(JSON.stringify(header), 'utf8');
    const padded = Math.ceil(json.length / 8) * 8;
    json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(file, 'w');
      await fh.write(Buffer.concat([prefix, json]), 0, 8 + json.length, 0);
    } catch (err) {
      throw describeWriteError(err, file);
    }
    return new SafetensorsWriter(file, fh, specs, 8 + json.length);
  }

  /** Name of the tensor the writer expects next (undefined when all are written). */
  get expected(): string | undefined {
    return this.specs[this.next]?.name;
  }

  async write(name: string, data: Uint8Array): Promise<void> {
    const spec = this.specs[this.next];
    if (!spec || spec.name !== name) throw new Error(`safetensors: expected tensor ${spec?.name ?? '(none)'} next, got ${name}`);
    if (data.byteLength !== spec.bytes) throw new Error(`safetensors: tensor ${name} has ${data.byteLength} bytes, its header says ${spec.bytes}`);
    try {
      let done = 0;
      while (done < data.byteLength) {
        const { bytesWritten } = await this.fh.write(data, done, data.byteLength - done, this.position + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw describeWriteError(err, this.file);
    }
    this.position += spec.bytes;
    this.next++;
  }

  /** Flushes to disk and closes; every declared tensor must have been written. */
  async close(): Promise<void> {
    if (this.next !== this.specs.length) {
      await this.fh.close();
      throw new Error(`safetensors: ${this.specs.length - this.next} declared tensors were not written to ${this.file}`);
    }
    try {
      await this.fh.sync();
    } catch (err) {
      await this.fh.close();
      throw describeWriteError(err, this.file);
    }
    await this.fh.close();
  }

  /** Closes without checking (after a failure; the caller removes the file). */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
