// Test fixtures for model loading: a plain reader and writer of the safetensors layout written
// independently of safetensors.ts (Node's fs, no memory map), so tests can build converted, sharded
// and damaged copies of stories260k in temp folders.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const STORIES_DIR = path.resolve('../shared/data/models/stories260k');
const TEXT_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json'];

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Buffer;
}

/** All tensors of a safetensors file in header order, data copied (test-sized files only). */
export function readSafetensorsPlain(file: string): RawTensor[] {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  return Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]) }));
}

/** Header object and data section for tensors laid out back to back. */
export function layoutSafetensors(tensors: RawTensor[]): { header: Record<string, unknown>; data: Buffer } {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  return { header, data: Buffer.concat(tensors.map((t) => t.data)) };
}

/** Writes a safetensors file from a header (as JSON text or object) and a data section. */
export function writeSafetensorsRaw(file: string, header: Record<string, unknown> | string, data: Buffer, headerLength?: bigint): void {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, data]));
}

export function writeSafetensors(file: string, tensors: RawTensor[]): void {
  const { header, data } = layoutSafetensors(tensors);
  writeSafetensorsRaw(file, header, data);
}

/** A temp folder holding stories260k's config and tokenizer files (weights are up to the test). */
export function storiesCopy(configEdit?: (cfg: Record<string, unknown>) => void): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quip-model-'));
  for (const f of TEXT_FILES) copyFileSync(path.join(STORIES_DIR, f), path.join(dir, f));
  if (configEdit) {
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    configEdit(cfg);
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  }
  return dir;
}

export function storiesTensors(): RawTensor[] {
  return readSafetensorsPlain(path.join(STORIES_DIR, 'model.safetensors'));
}

/** float32 -> IEEE half, round to nearest even (weights are in the normal range; subnormals flush). */
export function f32ToF16Bits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  let mant = u & 0x7fffff;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  const round = mant & 0x1fff;
  mant >>>= 13;
  let h = sign | (exp << 10) | mant;
  if (round > 0x1000 || (round === 0x1000 && (mant & 1))) h += 1;
  return h;
}

export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
