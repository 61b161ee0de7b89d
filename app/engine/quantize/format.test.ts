// The folder format's pieces (safetensors writer/reader, 16-bit conversion, layer seeds) and the
// output-folder rules, checked against independent definitions. (Settings: app/domain/quantize.)
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { f16BitsToF32, f32ToF16Bits } from '../model/half.js';
import { openSafetensors } from '../model/safetensors.js';
import { bytesOf, writeSafetensors } from '../model/safetensors-writer.js';
import { layerSeed } from '../model/quantized-format.js';
import { checkOutputFolder, finishInterruptedPublish, jobId, PENDING_CONFIG, publish } from './output.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'quip-qfmt-'));

describe('layer seeds', () => {
  it('are stable, differ per layer and per run seed', () => {
    const a = layerSeed(0, 'model.layers.0.self_attn.q_proj');
    expect(layerSeed(0, 'model.layers.0.self_attn.q_proj')).toBe(a);
    expect(layerSeed(0, 'model.layers.0.self_attn.k_proj')).not.toBe(a);
    expect(layerSeed(1, 'model.layers.0.self_attn.q_proj')).not.toBe(a);
    expect(a).toBeGreaterThanOrEqual(0);
    expect(a).toBeLessThan(2 ** 32);
  });
});

describe('binary16 conversion', () => {
  it('rounds to the nearest representable value, ties to even', () => {
    // Brute force: the nearest of all 63,488 finite halves, for random and boundary floats.
    const finite: number[] = [];
    for (let h = 0; h < 0x7c00; h++) finite.push(f16BitsToF32(h));
    const nearest = (v: number) => {
      const a = Math.abs(v);
      let lo = 0, hi = finite.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (finite[mid] <= a) lo = mid; else hi = mid;
      }
      const dl = a - finite[lo], dh = finite[hi] - a;
      const pick = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
      return (v < 0 ? 0x8000 : 0) | pick;
    };
    let seed = 12345;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const cases = [0, 1, -1, 0.1, 65504, 1e-8, 5.96e-8, 2.98e-8, 6.1e-5, -3.3e-6];
    for (let i = 0; i < 3000; i++) cases.push(Math.fround((rnd() - 0.5) * 2 ** Math.floor(rnd() * 40 - 26)));
    for (const c of cases) expect(f32ToF16Bits(Math.fround(c))).toBe(nearest(Math.fround(c)));
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
  });
});

describe('tensor files', () => {
  it('round-trip codes, signs and 16-bit tensors with 8-byte aligned data', async () => {
    const dir = tmp();
    const codes = new Uint16Array([1, 65535, 300, 7, 9, 1000]);
    const signs = new Int8Array([1, -1, 1]);
    const src = path.join(dir, 'src.bin');
    writeFileSync(src, Buffer.from([0, 0, 5, 6, 7, 8, 0]));
    const file = path.join(dir, 't.safetensors');
    await writeSafetensors(file, [
      { name: 'a.codes', dtype: 'U16', shape: [2, 3], source: { bytes: bytesOf(codes) } },
      { name: 'a.su', dtype: 'I8', shape: [3], source: { bytes: bytesOf(signs) } },
      { name: 'copied', dtype: 'U8', shape: [4], source: { file: src, offset: 2, length: 4 } },
      // produced in chunks: element i is i + 1
      { name: 'filled', dtype: 'F32', shape: [5], source: { fill: (out, start) => new Float32Array(out.buffer, out.byteOffset, out.byteLength / 4).forEach((_, i, a) => (a[i] = start + i + 1)) } },
    ], { format: 'pt' });
    // The header is exactly the JSON of the tensors in order, padded with spaces to a multiple of 8.
    const raw = readFileSync(file);
    const hlen = Number(raw.readBigUInt64LE(0));
    expect(hlen % 8).toBe(0);
    const json = raw.subarray(8, 8 + hlen).toString('utf8');
    const text = JSON.stringify({
      __metadata__: { format: 'pt' },
      'a.codes': { dtype: 'U16', shape: [2, 3], data_offsets: [0, 12] },
      'a.su': { dtype: 'I8', shape: [3], data_offsets: [12, 15] },
      copied: { dtype: 'U8', shape: [4], data_offsets: [15, 19] },
      filled: { dtype: 'F32', shape: [5], data_offsets: [19, 39] },
    });
    expect(json).toBe(text + ' '.repeat(hlen - text.length));
    expect(raw.length).toBe(8 + hlen + 39);
    const { file: mapped, header } = openSafetensors(file, true);
    try {
      const get = (name: string) => {
        const e = header.tensors.find((t) => t.name === name)!;
        return new Uint8Array(mapped.read(e.offset, e.bytes));
      };
      expect(header.dataStart % 8).toBe(0);
      expect(header.metadata).toEqual({ format: 'pt' });
      expect([...new Uint16Array(get('a.codes').buffer)]).toEqual([...codes]);
      expect([...new Int8Array(get('a.su').buffer)]).toEqual([1, -1, 1]);
      expect([...get('copied')]).toEqual([5, 6, 7, 8]);
      expect([...new Float32Array(get('filled').slice().buffer)]).toEqual([1, 2, 3, 4, 5]);
      expect(header.tensors.find((t) => t.name === 'a.codes')).toMatchObject({ dtype: 'U16', shape: [2, 3] });
    } finally {
      mapped.close();
    }
  });
  it('refuses a size that does not match the shape', async () => {
    const dir = tmp();
    await expect(writeSafetensors(path.join(dir, 'x.safetensors'), [{ name: 'x', dtype: 'F16', shape: [3], source: { bytes: new Uint8Array(4) } }])).rejects.toThrow(/4 bytes given/);
    expect(readdirSync(dir)).toEqual([]); // the temporary file is removed
  });
});

describe('output folder', () => {
  it('refuses a folder holding a model unless forced, and a non-empty folder', () => {
    const dir = tmp();
    const out = path.join(dir, 'out');
    checkOutputFolder(out, false); // absent: fine
    mkdirSync(out);
    checkOutputFolder(out, false); // empty: fine
    writeFileSync(path.join(out, 'notes.txt'), 'x');
    expect(() => checkOutputFolder(out, false)).toThrow(/not empty/);
    writeFileSync(path.join(out, 'config.json'), '{}');
    expect(() => checkOutputFolder(out, false)).toThrow(/already holds a model.*--force/);
    checkOutputFolder(out, true);
  });
  it('publishes by renaming, config.json last; an interrupted publish finishes', async () => {
    const dir = tmp();
    const out = path.join(dir, 'out');
    const partial = `${out}.partial-abc`;
    mkdirSync(partial);
    writeFileSync(path.join(partial, 'model.safetensors'), 'm');
    writeFileSync(path.join(partial, PENDING_CONFIG), '{"a":1}');
    await publish(partial, out, false);
    expect(existsSync(partial)).toBe(false);
    expect(readFileSync(path.join(out, 'config.json'), 'utf8')).toBe('{"a":1}');
    // killed between the folder rename and the config rename
    const out2 = path.join(dir, 'out2');
    mkdirSync(out2);
    writeFileSync(path.join(out2, 'model.safetensors'), 'm');
    writeFileSync(path.join(out2, PENDING_CONFIG), '{}');
    expect(existsSync(path.join(out2, 'config.json'))).toBe(false);
    expect(await finishInterruptedPublish(out2)).toBe(true);
    expect(existsSync(path.join(out2, 'config.json'))).toBe(true);
  });
  it('derives the job id from source and settings', () => {
    expect(jobId('f', { seed: 1 })).toBe(jobId('f', { seed: 1 }));
    expect(jobId('f', { seed: 1 })).not.toBe(jobId('f', { seed: 2 }));
  });
});
