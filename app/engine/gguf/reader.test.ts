// The GGUF reader on hand-made files: every metadata value type (nested arrays included), both
// format versions, tensor infos and alignment.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { openGguf, readGgufHeader, shortestFloat32, type ByteSource } from './reader.js';
import { arr, bool, buildGguf, f32, f32Data, f64, i16, i32, i64, i8, str, u16, u32, u64, u8 } from '../../testing/gguf.js';

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
      expect(Array.from(m.numberArray('t.arr_u8')!)).toEqual([1, 2, 3]);
      expect(Array.from(m.numberArray('t.arr_f64')!)).toEqual([0.25, -1e300]);
      expect(m.stringArray('t.arr_str')).toEqual(['a', 'b c', '']);
      expect(Array.from(m.numberArray('t.arr_empty')!)).toEqual([]);
      expect(m.entries.get('t.nested')).toMatchObject({ type: 'array', itemType: 'array' });
      expect(m.array('t.nested')!.toJSON()).toEqual([['x', 'y'], [], ['z']]);
      expect(m.array('t.arr_bool')!.toJSON()).toEqual([true, false]);
      expect(() => m.string('t.u8')).toThrow(/values-v\d\.gguf: metadata t\.u8 is a uint8, expected a string/);
      mapped.close();
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

// Issue #16 item 3: arrays stay in the file until read (a 67 MB uint8 array used to take 1.15 GB),
// nesting is capped (10,000 levels overflowed the stack) and counts the file cannot hold are refused.
describe('metadata arrays are lazy views over the file', () => {
  /** "GGUF" v3, no tensors, one metadata entry `key` whose value bytes are `value` (type id first). */
  function oneEntry(key: string, value: Buffer): Buffer {
    const head = Buffer.alloc(4 + 4 + 8 + 8 + 8);
    head.write('GGUF', 0, 'latin1');
    head.writeUInt32LE(3, 4);
    head.writeBigUInt64LE(0n, 8);
    head.writeBigUInt64LE(1n, 16);
    head.writeBigUInt64LE(BigInt(key.length), 24);
    return Buffer.concat([head, Buffer.from(key, 'latin1'), value]);
  }
  const arrayHeader = (itemType: number, count: bigint) => {
    const b = Buffer.alloc(4 + 4 + 8);
    b.writeUInt32LE(9, 0); // value type: array
    b.writeUInt32LE(itemType, 4);
    b.writeBigUInt64LE(count, 8);
    return b;
  };

  it('reads a 64 MB uint8 array without copying it, and reads it only when asked', () => {
    const n = 64 << 20;
    const bytes = oneEntry('big.u8', Buffer.concat([arrayHeader(0, BigInt(n)), Buffer.alloc(n, 7)]));
    let copied = 0;
    const src: ByteSource = { size: bytes.length, read: (o, len) => ((copied += len), bytes.subarray(o, o + len)) };
    const h = readGgufHeader(src, 'big.gguf');
    expect(copied).toBeLessThan(2 << 20);
    const a = h.metadata.array('big.u8')!;
    expect([a.itemType, a.length]).toEqual(['uint8', n]);
    const values = h.metadata.numberArray('big.u8')!;
    expect(values).toBeInstanceOf(Uint8Array);
    expect([values.length, values[0], values[n - 1]]).toEqual([n, 7, 7]);
  });

  it('decodes strings lazily, one at a time or all at once', () => {
    const built = buildGguf({ metadata: [['s', arr('string', ['a', 'héllo', '', '🙂'])]], tensors: [] });
    const h = readGgufHeader(bufferSource(built.bytes), 's.gguf');
    const a = h.metadata.array('s')!;
    expect([a.string(1), a.string(3), a.item(2)]).toEqual(['héllo', '🙂', '']);
    expect(h.metadata.stringArray('s')).toEqual(['a', 'héllo', '', '🙂']);
  });

  it('refuses arrays nested 10,000 deep with a clear error, not a stack overflow', () => {
    const depth = 10_000;
    const parts: Buffer[] = [];
    for (let i = 0; i < depth; i++) {
      const b = Buffer.alloc(i === 0 ? 4 + 8 : 4 + 8);
      b.writeUInt32LE(i === depth - 1 ? 0 : 9, 0);
      b.writeBigUInt64LE(i === depth - 1 ? 0n : 1n, 4);
      parts.push(b);
    }
    const value = Buffer.concat([Buffer.from([9, 0, 0, 0]), ...parts]);
    const bytes = oneEntry('deep', value);
    expect(() => readGgufHeader(bufferSource(bytes), 'deep.gguf')).toThrow(/deep\.gguf: .* nests arrays more than 8 deep; no model stores such metadata/);
  });

  it('refuses a count the rest of the file cannot hold before allocating anything', () => {
    for (const [type, count] of [[0, 1n << 40n], [8, 1n << 40n], [9, 1n << 40n], [12, (1n << 64n) - 1n]] as const) {
      const bytes = oneEntry('huge', Buffer.concat([arrayHeader(type, count), Buffer.alloc(64)]));
      expect(() => readGgufHeader(bufferSource(bytes), 'huge.gguf')).toThrow(/huge\.gguf: the value of metadata huge at byte \d+ claims an array of \d+ \w+ items|more than 2\^53/);
    }
    const head = Buffer.alloc(24 + 64);
    head.write('GGUF', 0, 'latin1');
    head.writeUInt32LE(3, 4);
    head.writeBigUInt64LE(1n << 40n, 8);
    expect(() => readGgufHeader(bufferSource(head), 'counts.gguf')).toThrow(/counts\.gguf: the header claims 1099511627776 tensors and 0 metadata entries, more than the file's 88 bytes can hold/);
  });

  it('a bool array holding 2 is refused', () => {
    const bytes = oneEntry('b', Buffer.concat([arrayHeader(7, 3n), Buffer.from([1, 0, 2])]));
    expect(() => readGgufHeader(bufferSource(bytes), 'b.gguf')).toThrow(/item 2 of the value of metadata b at byte \d+ is a bool stored as 2/);
  });
});

// Issue #16 item 12b: a file that is not a GGUF is named as such without echoing its bytes.
it('a file that is not GGUF is refused without echoing its first bytes', () => {
  const bytes = Buffer.from('root:x:0:0:root:/root:/bin/bash\n');
  let message = '';
  try {
    readGgufHeader(bufferSource(bytes), 'passwd');
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message).toMatch(/^passwd: this is not a GGUF file: a GGUF model starts with the 4 bytes "GGUF" \(47 47 55 46\)/);
  expect(message).not.toMatch(/72 6f 6f 74|root/);
});

// Found while making arrays lazy: the 1 MiB read window was refetched after `this.buf.readX` had
// already been evaluated, so a u8/u16/u32/f32 field crossing the window's end read the old window.
it('reads fields that straddle the end of the read window', () => {
  for (let k = 0; k <= 20; k++) {
    const built = buildGguf({ metadata: [['pad', str('x'.repeat((1 << 20) - k))], ['v', u32(0xdeadbeef)], ['w', u16(4242)], ['f', f32(1.5)]], tensors: [] });
    const m = readGgufHeader(bufferSource(built.bytes), 'window.gguf').metadata;
    expect([m.number('v'), m.number('w'), m.number('f')]).toEqual([0xdeadbeef, 4242, 1.5]);
  }
});
