// A streaming safetensors writer: the header (8-byte little-endian length, JSON of
// {name: {dtype, shape, data_offsets}} padded with spaces to a multiple of 8) is known from the shapes
// alone, so tensors are produced and written one chunk at a time without holding the file in memory.
// The file appears atomically: a temporary sibling is written, fsynced and renamed over the target.
import { promises as fs } from 'node:fs';
import path from 'node:path';

import { describeWriteError } from '../../util/atomic-file.js';

export type WritableDType = 'F32' | 'F16' | 'BF16';
const BYTES: Record<WritableDType, number> = { F32: 4, F16: 2, BF16: 2 };

export interface StreamedTensor {
  name: string;
  dtype: WritableDType;
  shape: number[];
  /** Fills `out` (bytes of elements [start, start + out.byteLength / size)) in the tensor's dtype. */
  fill(out: Uint8Array, start: number): void;
}

const CHUNK_BYTES = 8 << 20;

export async function writeSafetensorsStreaming(target: string, tensors: StreamedTensor[], metadata: Record<string, string> = {}): Promise<number> {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let at = 0;
  for (const t of tensors) {
    const len = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + len] };
    at += len;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));

  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Date.now()}.tmp`);
  try {
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.write(prefix);
      await fh.write(json);
      const chunk = new Uint8Array(CHUNK_BYTES);
      for (const t of tensors) {
        const size = BYTES[t.dtype];
        const total = t.shape.reduce((a, b) => a * b, 1);
        const per = CHUNK_BYTES / size;
        for (let start = 0; start < total; start += per) {
          const n = Math.min(per, total - start);
          const view = chunk.subarray(0, n * size);
          t.fill(view, start);
          await fh.write(view);
        }
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
  return 8 + json.length + at;
}
