// The GGUF reader on hand-made files: every metadata value type (nested arrays included), both
// format versions, tensor infos and alignment.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { openGguf, readGgufHeader, shortestFloat32, type ByteSource } from './reader.js';
import { arr, bool, buildGguf, f32, f32Data, f64, i16, i32, i64, i8, str, u16, u32, u64, u8 } from './testing.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'quip-gguf-reader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bufferSource = (b: Buffer): ByteSource => ({ size: b.length, read: (o, n) => b.subarray(o, o + n) });

describe('GGUF reader', () => {
  for (const version of [2, 3]) {
    it(`reads every metadata value type (version ${version}) through a memory map`, () => {
      const built = buildGguf({
        version,
        metadata: [
          ['t.u8', u8(255)], ['t.i8', i8(-128)], ['t.u16', u16(65535)], ['t.i16', i16(-32768)],
          ['t.u32', u32(4294967295)], ['t.i32', i32(-2147483648)], ['t.f32', f32(1.5)], ['t.f64', f64(Math.PI)],
          ['t.true', bool(true)], ['t.false', bool(false)], ['t.str', str('héllo ▁ 🙂')], ['t.empty', str('')],
          ['t.u64', u64(12345)], ['t.u64big', u64(2n ** 63n + 5n)], ['t.i64', i64(-5)], ['t.i64big', i64(-(2n ** 60n))],
          ['t.arr_u8', arr('uint8', [1, 2, 3])], ['t.arr_f64', arr('float64', [0.25, -1e300])],
          ['t.arr_str', arr('string', ['a', 'b c', ''])], ['t.arr_empty', arr('int32', [])],
          ['t.nested', arr('array', [['x', 'y'], [], ['z']], 'string')],
          ['t.arr_bool', arr('bool', [true, false])],
        ],
        tensors: [],
      });
      const file = path.join(dir, `values-v${version}.gguf`);
      writeFileSync(file, built.bytes);
      const { header, file: mapped } = openGguf(file);
      mapped.close();
      const m = header.metadata;
      expect(header.version).toBe(version);
      expect([m.number('t.u8'), m.number('t.i8'), m.number('t.u16'), m.number('t.i16'), m.number('t.u32'), m.number('t.i32')]).toEqual([255, -128, 65535, -32768, 4294967295, -2147483648]);
      expect(m.number('t.f32')).toBe(1.5);
      expect(m.number('t.f64')).toBe(Math.PI);
      expect([m.bool('t.true'), m.bool('t.false')]).toEqual([true, false]);
      expect(m.string('t.str')).toBe('héllo ▁ 🙂');
      expect(m.string('t.empty')).toBe('');
      expect(m.integer('t.u64')).toBe(12345);
      expect(m.entries.get('t.u64big')!.value).toBe(2n ** 63n + 5n);
      expect(m.integer('t.i64')).toBe(-5);
      expect(m.entries.get('t.i64big')!.value).toBe(-(2n ** 60n));
      expect(m.numberArray('t.arr_u8')).toEqual([1, 2, 3]);
      expect(m.numberArray('t.arr_f64')).toEqual([0.25, -1e300]);
      expect(m.stringArray('t.arr_str')).toEqual(['a', 'b c', '']);
      expect(m.numberArray('t.arr_empty')).toEqual([]);
      expect(m.entries.get('t.nested')).toEqual({ type: 'array', itemType: 'array', value: [['x', 'y'], [], ['z']] });
      expect(m.entries.get('t.arr_bool')!.value).toEqual([true, false]);
      expect(() => m.string('t.u8')).toThrow(/values-v\d\.gguf: metadata t\.u8 is a uint8, expected a string/);
    });
  }

  it('reads tensor infos, honours general.alignment and places data at aligned offsets', () => {
    const a = f32Data([1, 2, 3, 4, 5, 6]);
    const b = new Uint8Array(34 * 2).fill(7); // two Q8_0 blocks
    const built = buildGguf({
      alignment: 64,
      metadata: [['general.architecture', str('llama')]],
      tensors: [
        { name: 'a', type: 'F32', dims: [3, 2], data: a },
        { name: 'b', type: 'Q8_0', dims: [64], data: b },
      ],
    });
    const h = readGgufHeader(bufferSource(built.bytes), 'mem.gguf');
    expect(h.alignment).toBe(64);
    expect(h.dataOffset % 64).toBe(0);
    expect(h.dataOffset).toBe(built.dataOffset);
    expect(h.tensors.map((t) => [t.name, t.type.name, t.dims, t.shape, t.numel, t.bytes])).toEqual([
      ['a', 'F32', [3, 2], [2, 3], 6, 24],
      ['b', 'Q8_0', [64], [64], 64, 68],
    ]);
    expect(h.tensors[0].offset).toBe(h.dataOffset);
    expect(h.tensors[1].offset).toBe(h.dataOffset + 64);
    expect([...built.bytes.subarray(h.tensors[0].offset, h.tensors[0].offset + 24)]).toEqual([...a]);
  });

  it('reads headers larger than its read window', () => {
    const tokens = Array.from({ length: 60_000 }, (_, i) => `token-${i}-${'x'.repeat(i % 40)}`);
    const built = buildGguf({ metadata: [['tokenizer.ggml.tokens', arr('string', tokens)]], tensors: [] });
    expect(built.bytes.length).toBeGreaterThan(2 << 20);
    let reads = 0;
    const h = readGgufHeader({ size: built.bytes.length, read: (o, n) => (reads++, built.bytes.subarray(o, o + n)) }, 'big.gguf');
    expect(h.metadata.stringArray('tokenizer.ggml.tokens')).toEqual(tokens);
    expect(reads).toBeLessThan(10);
  });

  it('refuses an alignment that is not a power of two', () => {
    const built = buildGguf({ metadata: [['general.alignment', u32(48)]], tensors: [] });
    expect(() => readGgufHeader(bufferSource(built.bytes), 'odd.gguf')).toThrow(/odd\.gguf: general\.alignment must be a uint32 power of two/);
  });
});

describe('float32 metadata', () => {
  it('reads back as the shortest decimal of the same float32', () => {
    for (const v of [1e-5, 1e-6, 0.1, 10000, 100000, 500000, 3.14159, 1 / 3, -2.5e-7, 0]) {
      const f = Math.fround(v);
      const s = shortestFloat32(f);
      expect(Math.fround(s)).toBe(f);
      expect(String(s).length).toBeLessThanOrEqual(String(f).length);
    }
    expect(shortestFloat32(Math.fround(1e-5))).toBe(1e-5);
    expect(shortestFloat32(Math.fround(0.1))).toBe(0.1);
  });
});
