// Seeded mutations of valid inputs, for the fuzz suite (fuzz.ts): bytes (bit flips, boundary values,
// length fields set huge, truncation, extension, splices), JSON values (numbers made huge, negative,
// null or fractional; strings made long; values nested deep; keys dropped) and chat-template sources
// (huge ranges, nested loops, recursive macros, broken tags). The same seed gives the same mutation.

/** mulberry32: a small seeded generator, uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed for case `index` of `loader` under the run's seed (FNV-1a of the three). */
export function caseSeed(runSeed: number, loader: string, index: number): number {
  let h = 0x811c9dc5;
  for (const ch of `${runSeed}:${loader}:${index}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return h >>> 0;
}

export class Mutator {
  readonly random: () => number;
  /** What was done, for the case's description. */
  readonly log: string[] = [];
  constructor(seed: number) {
    this.random = rng(seed);
  }
  int(n: number): number {
    return Math.floor(this.random() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.random() < p;
  }

  /**
   * 1 to 4 byte-level mutations. `focus` (e.g. the header's length) draws most positions from the
   * first `focus` bytes, where a damaged byte changes what a loader does rather than a weight.
   */
  bytes(input: Buffer, focus = input.length): Buffer {
    let b = Buffer.from(input);
    const n = 1 + this.int(4);
    for (let k = 0; k < n; k++) {
      const pos = () => (b.length === 0 ? 0 : this.chance(0.8) ? this.int(Math.min(focus, b.length)) : this.int(b.length));
      switch (this.int(9)) {
        case 0: { // bit flip
          const p = pos();
          if (p < b.length) b[p] ^= 1 << this.int(8);
          this.log.push(`flip bit @${p}`);
          break;
        }
        case 1: { // boundary byte
          const p = pos(), v = this.pick([0, 0xff, 0x7f, 0x80, 0x01, 0x20, 0x22, 0x7b, 0x7d, 0x5b, 0x30, 0x39]);
          if (p < b.length) b[p] = v;
          this.log.push(`byte @${p} = ${v}`);
          break;
        }
        case 2: { // a 32- or 64-bit little-endian field set to a boundary value (counts, lengths, offsets)
          const width = this.pick([4, 8]), p = Math.max(0, Math.min(pos() & ~3, b.length - width));
          if (b.length >= width) {
            const v = this.pick([0n, 1n, 0x7fffffffn, 0xffffffffn, 0x100000000n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 64n - 1n, BigInt(b.length), BigInt(b.length) * 1000n]);
            if (width === 8) b.writeBigUInt64LE(v & (2n ** 64n - 1n), p);
            else b.writeUInt32LE(Number(v & 0xffffffffn), p);
            this.log.push(`u${width * 8} @${p} = ${v}`);
          }
          break;
        }
        case 3: { // truncation
          const p = this.chance(0.5) ? pos() : this.int(b.length + 1);
          b = b.subarray(0, p);
          this.log.push(`truncate to ${p}`);
          break;
        }
        case 4: { // extension
          const extra = this.pick([1, 7, 8, 4096, 1 << 20]);
          b = Buffer.concat([b, Buffer.alloc(extra, this.pick([0, 0x20, 0xff]))]);
          this.log.push(`extend by ${extra}`);
          break;
        }
        case 5: { // delete a range
          const p = pos(), len = 1 + this.int(16);
          b = Buffer.concat([b.subarray(0, p), b.subarray(p + len)]);
          this.log.push(`delete ${len} @${p}`);
          break;
        }
        case 6: { // insert bytes
          const p = pos(), ins = Buffer.from(Array.from({ length: 1 + this.int(8) }, () => this.int(256)));
          b = Buffer.concat([b.subarray(0, p), ins, b.subarray(p)]);
          this.log.push(`insert ${ins.length} @${p}`);
          break;
        }
        case 7: { // copy a chunk over another place
          const from = pos(), to = pos(), len = 1 + this.int(64);
          b.copy(b, to, from, Math.min(b.length, from + len));
          this.log.push(`copy ${len} ${from}->${to}`);
          break;
        }
        default: { // random byte
          const p = pos();
          if (p < b.length) b[p] = this.int(256);
          this.log.push(`random byte @${p}`);
        }
      }
    }
    return b;
  }

  /** A JSON value with 1 to 3 of its values replaced (objects and arrays walked at random). */
  json(value: unknown): unknown {
    let v = structuredClone(value);
    const n = 1 + this.int(3);
    for (let k = 0; k < n; k++) v = this.jsonOnce(v, 0);
    return v;
  }

  private jsonOnce(v: unknown, depth: number): unknown {
    const descend = v !== null && typeof v === 'object' && depth < 12 && this.chance(0.85);
    if (descend) {
      if (Array.isArray(v)) {
        if (v.length === 0) return this.replacement(v);
        const i = this.int(v.length);
        if (this.chance(0.05)) {
          this.log.push(`drop item ${i}`);
          return v.filter((_, j) => j !== i);
        }
        v[i] = this.jsonOnce(v[i], depth + 1);
        return v;
      }
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 0) return this.replacement(v);
      const key = this.pick(keys);
      if (this.chance(0.07)) {
        this.log.push(`drop key ${key}`);
        delete o[key];
        return o;
      }
      this.log.push(`in ${key}`);
      o[key] = this.jsonOnce(o[key], depth + 1);
      return o;
    }
    return this.replacement(v);
  }

  private replacement(v: unknown): unknown {
    const num = typeof v === 'number' ? v : 1;
    const choices: Array<() => unknown> = [
      () => 1e6 * (this.chance(0.5) ? 1 : 1000),
      () => 1e7,
      () => 2 ** 53,
      () => 1e308,
      () => -num,
      () => -1,
      () => 0,
      () => null, // how NaN and Infinity come out of JSON.stringify
      () => num + 0.5,
      () => num * 2,
      () => String(num),
      () => 'x'.repeat(this.pick([1000, 100_000, 1_000_000])),
      () => '',
      () => true,
      () => [],
      () => ({}),
      () => [v, v],
      () => `__DEEP_${this.pick([100, 1000, 100_000])}__`, // arrays nested that deep (see jsonText)
      () => '\u0000\ud800<|im_start|>{{ x }}',
    ];
    const i = this.int(choices.length);
    const r = choices[i]();
    this.log.push(`value -> ${JSON.stringify(r)?.slice(0, 40)}`);
    return r;
  }

  /** JSON text of a mutated value, with each "__DEEP_n__" written as arrays nested n deep (built as
   * text: JSON.stringify itself would overflow the stack). */
  jsonText(value: unknown): string {
    return (JSON.stringify(value) ?? 'null').replace(/"__DEEP_(\d+)__"/g, (_, n: string) => '['.repeat(Number(n)) + '0' + ']'.repeat(Number(n)));
  }

  /** A chat-template source with 1 to 2 mutations: hostile snippets, broken syntax or text edits. */
  template(source: string): string {
    let s = source;
    const n = 1 + this.int(2);
    for (let k = 0; k < n; k++) {
      const at = this.int(s.length + 1);
      switch (this.int(4)) {
        case 0: {
          const snippet = this.pick(HOSTILE_SNIPPETS);
          this.log.push(`insert ${snippet.slice(0, 40)}`);
          s = s.slice(0, at) + snippet + s.slice(at);
          break;
        }
        case 1: {
          const piece = this.pick(['{%', '%}', '{{', '}}', '{#', 'endfor', 'endif', '(', ')', '[', ']', '"', "'", '|', '.', 'loop', 'messages', 'namespace(', 'raise_exception(']);
          this.log.push(`insert ${piece}`);
          s = s.slice(0, at) + piece + s.slice(at);
          break;
        }
        case 2: {
          const len = 1 + this.int(20);
          this.log.push(`delete ${len} @${at}`);
          s = s.slice(0, at) + s.slice(at + len);
          break;
        }
        default: {
          this.log.push(`truncate ${at}`);
          s = s.slice(0, at);
        }
      }
    }
    return s;
  }
}

/** Template fragments that cost time, memory or stack without a budget. */
export const HOSTILE_SNIPPETS = [
  '{% for i in range(1000000000) %}x{% endfor %}',
  '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}',
  '{% for i in range(3000) %}{% for j in range(3000) %}{{ i }}{% endfor %}{% endfor %}',
  '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}',
  '{% macro g(s) %}{{ g(s ~ s) }}{% endmacro %}{{ g("ab") }}',
  '{{ "x" * 1000000000 }}',
  '{% set ns = namespace(s="ab") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}',
  '{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}',
  '{{ messages[0]["content"] | indent(1000000000) }}',
  '{{ range(10000000) | list | length }}',
  '{% for m in messages * 100000000 %}{{ m }}{% endfor %}',
  '{{ raise_exception("fuzz") }}',
  '{{ messages[99999].content }}',
  '{{ undefined_name.attr.deeper }}',
  '{{ 1 / 0 }}',
  '{{ "a" ~ (1, 2) }}',
  '{%- if x -%}'.repeat(50),
  '{{ (' + '('.repeat(5000) + '1' + ')'.repeat(5000) + ') }}',
  '{{ [' + '['.repeat(5000) + ']'.repeat(5000) + '] }}',
];
