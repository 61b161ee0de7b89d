// The converted tokenizers against independent references: llama.cpp's own token ids for SmolLM2 on
// WikiText-2, the chat prompts of reference-chat-greedy.json, and a brute-force SentencePiece BPE.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { GgufMetadata, openGguf, type GgufEntry, type GgufValueType, type OpenGguf } from './reader.js';
import { byteLevelAlphabet } from '../../testing/gguf.js';
import { convertTokenizer, sentencePieceMerges, type ConvertedTokenizer } from './tokenizer.js';

const SMOLLM_DIR = path.resolve('../shared/data/models/smollm2-135m-instruct-q4_1');
const SMOLLM = path.join(SMOLLM_DIR, 'SmolLM2-135M-Instruct.Q4_1.gguf');
const WIKI_TEST = path.resolve('../shared/data/wikitext-2-raw/wiki.test.raw');

function firstLines(text: string, lines: number): string {
  let at = -1;
  for (let i = 0; i < lines; i++) at = text.indexOf('\n', at + 1);
  return text.slice(0, at + 1);
}

describe('SmolLM2 tokenizer converted from its GGUF', () => {
  let gguf: OpenGguf;
  let converted: ConvertedTokenizer;
  let tokenizer: Tokenizer;
  beforeAll(() => {
    gguf = openGguf(SMOLLM);
    converted = convertTokenizer(gguf.header.metadata, 8192);
    tokenizer = new Tokenizer(converted.tokenizerJson, converted.tokenizerConfig);
  });
  afterAll(() => gguf?.file.close());

  it('reproduces llama.cpp token ids on the first 1000 lines of WikiText-2 test', () => {
    const ref = JSON.parse(readFileSync(path.join(SMOLLM_DIR, 'reference-tokens-wiki-test-1000-lines.json'), 'utf8')) as { add_bos: boolean; ids: number[] };
    const text = firstLines(readFileSync(WIKI_TEST, 'utf8'), 1000);
    expect(Buffer.byteLength(text)).toBe(315_879);
    const ids = tokenizer.encode(text).ids; // BOS only if the file adds one, as llama.cpp
    expect(converted.addBos).toBe(ref.add_bos);
    let first = -1;
    for (let i = 0; i < Math.max(ids.length, ref.ids.length); i++) if (ids[i] !== ref.ids[i]) { first = i; break; }
    if (first >= 0) {
      const show = (a: number[]) => a.slice(Math.max(0, first - 3), first + 5).map((id) => `${id}:${JSON.stringify(tokenizer.decode([id]))}`).join(' ');
      expect.fail(`first difference at token ${first}: ours ${show(ids)} / llama.cpp ${show(ref.ids)}`);
    }
    expect(ids.length).toBe(74_850);
  });

  it('renders the chat template and tokenizes the reference chat prompts exactly', () => {
    const ref = JSON.parse(readFileSync(path.join(SMOLLM_DIR, 'reference-chat-greedy.json'), 'utf8')) as {
      cases: Array<{ messages: Array<{ role: string; content: string }>; prompt: string; prompt_ids: number[]; greedy_ids: number[]; greedy_text: string }>;
    };
    const template = new Template(converted.chatTemplate!);
    for (const c of ref.cases) {
      const prompt = template.render({ messages: c.messages, add_generation_prompt: true, bos_token: converted.tokenizerConfig.bos_token, eos_token: converted.tokenizerConfig.eos_token });
      expect(prompt).toBe(c.prompt);
      expect(tokenizer.encode(prompt).ids).toEqual(c.prompt_ids);
      // The reference continuation decodes to its text, special tokens included.
      expect(tokenizer.decode(c.greedy_ids)).toBe(c.greedy_text);
    }
  });

  it('carries the special tokens and settings of the file', () => {
    expect(converted.model).toBe('gpt2');
    expect(converted.preTokenizer).toBe('smollm');
    expect(converted.eosTokenId).toBe(2);
    expect(converted.tokenizerConfig).toMatchObject({ add_bos_token: false, bos_token: '<|im_start|>', eos_token: '<|im_end|>', pad_token: '<|im_end|>', unk_token: '<|endoftext|>' });
    expect(tokenizer.get_added_tokens_decoder().size).toBe(17);
    expect(tokenizer.encode('12345').tokens).toEqual(['1', '2', '3', '4', '5']);
  });
});

// ---- hand-made vocabularies ----------------------------------------------------------------------
type Entry = { type: GgufValueType; itemType?: GgufValueType; value: unknown };
function metadata(entries: Record<string, Entry>): GgufMetadata {
  return new GgufMetadata('hand-made.gguf', new Map(Object.entries(entries)) as Map<string, GgufEntry>);
}
const strings = (v: string[]): Entry => ({ type: 'array', itemType: 'string', value: v });
const ints = (v: number[]): Entry => ({ type: 'array', itemType: 'int32', value: v });
const floats = (v: number[]): Entry => ({ type: 'array', itemType: 'float32', value: v });

describe('byte-level BPE pre-tokenizers', () => {
  // Merges rank "3 4" before "1 2", so how digits are split before merging shows in the result.
  const alphabet = byteLevelAlphabet();
  const tokens = ['<s>', ...alphabet, '34', '12', '123', "'L", "'LL"];
  const merges = ['3 4', '1 2', '12 3', "' L", "'L L"];
  const encode = (pre: string, text: string) => {
    const c = convertTokenizer(metadata({
      'tokenizer.ggml.model': { type: 'string', value: 'gpt2' },
      'tokenizer.ggml.pre': { type: 'string', value: pre },
      'tokenizer.ggml.tokens': strings(tokens),
      'tokenizer.ggml.token_type': ints(tokens.map((_, i) => (i === 0 ? 3 : 1))),
      'tokenizer.ggml.merges': strings(merges),
      'tokenizer.ggml.add_bos_token': { type: 'bool', value: false },
    }));
    return new Tokenizer(c.tokenizerJson, c.tokenizerConfig).encode(text).tokens;
  };
  it('gpt2: numbers stay whole, contractions are lower-case only', () => {
    expect(encode('gpt2', '1234')).toEqual(['12', '34']);
    expect(encode('gpt2', "I'LL")).toEqual(['I', "'", 'L', 'L']);
  });
  it('smollm: every digit alone', () => {
    expect(encode('smollm', '1234')).toEqual(['1', '2', '3', '4']);
  });
  it('llama-bpe: digits in threes, contractions in any case', () => {
    expect(encode('llama-bpe', '1234')).toEqual(['123', '4']);
    expect(encode('llama-bpe', "I'LL")).toEqual(['I', "'LL"]);
  });
  it('qwen2: digits alone, contractions in any case', () => {
    expect(encode('qwen2', '1234')).toEqual(['1', '2', '3', '4']);
    expect(encode('qwen2', "I'LL")).toEqual(['I', "'LL"]);
  });
});

describe('SentencePiece (llama) tokenizer', () => {
  // <unk>, <s>, </s>, 256 byte tokens, normal pieces with distinct scores, one user-defined token.
  const pieces = ['▁', 'a', 'b', 'c', 'd', '▁a', '▁b', 'ab', 'bc', 'cd', 'abc', '▁ab', '▁abc', 'bcd', 'dd', '▁d', 'aa', 'ca', '▁c', 'dab'];
  const tokens = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`), ...pieces, '<tool>'];
  const types = tokens.map((t, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : t === '<tool>' ? 4 : 1));
  // Distinct scores in a scrambled order, so merge priority is not the id order.
  const scores = tokens.map((_, i) => (i < 259 ? 0 : -(((i - 259) * 7) % pieces.length) - 0.5));
  const ids = new Map(tokens.map((t, i) => [t, i]));

  /** llama.cpp's SentencePiece procedure, directly: merge the adjacent pair whose concatenation is the
   *  best-scoring normal token (leftmost on ties) until none is left; unknown symbols become bytes. */
  function reference(text: string): number[] {
    let syms = Array.from('▁' + text.replaceAll(' ', '▁'));
    for (;;) {
      let best = -1, bestScore = -Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const id = ids.get(syms[i] + syms[i + 1]);
        if (id !== undefined && types[id] === 1 && scores[id] > bestScore) { best = i; bestScore = scores[id]; }
      }
      if (best < 0) break;
      syms = [...syms.slice(0, best), syms[best] + syms[best + 1], ...syms.slice(best + 2)];
    }
    return syms.flatMap((s) => (ids.has(s) ? [ids.get(s)!] : [...Buffer.from(s, 'utf8')].map((b) => 3 + b)));
  }

  const converted = convertTokenizer(metadata({
    'tokenizer.ggml.model': { type: 'string', value: 'llama' },
    'tokenizer.ggml.tokens': strings(tokens),
    'tokenizer.ggml.token_type': ints(types),
    'tokenizer.ggml.scores': floats(scores),
    'tokenizer.ggml.bos_token_id': { type: 'uint32', value: 1 },
    'tokenizer.ggml.eos_token_id': { type: 'uint32', value: 2 },
    'tokenizer.ggml.unknown_token_id': { type: 'uint32', value: 0 },
  }));
  const tok = new Tokenizer(converted.tokenizerJson, converted.tokenizerConfig);

  it('matches the brute-force SentencePiece procedure on random texts, bytes included', () => {
    const alphabet = ['a', 'b', 'c', 'd', ' ', 'é', 'x', '€'];
    let seed = 17;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let k = 0; k < 500; k++) {
      const text = Array.from({ length: 1 + rand(14) }, () => alphabet[rand(alphabet.length)]).join('');
      expect(tok.encode(text, { add_special_tokens: false }).ids, JSON.stringify(text)).toEqual(reference(text));
      expect(tok.decode(tok.encode(text, { add_special_tokens: false }).ids)).toBe(text);
    }
  });

  it('adds BOS by default, prefixes a space after special tokens and keeps user-defined tokens whole', () => {
    expect(converted.addBos).toBe(true);
    expect(tok.encode('ab').ids).toEqual([1, ...reference('ab')]);
    expect(tok.encode('ab<tool>cd', { add_special_tokens: false }).ids).toEqual([...reference('ab'), ids.get('<tool>')!, ...reference('cd')]);
    expect(converted.tokenizerConfig).toMatchObject({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', add_bos_token: true });
  });
});

// Issue #16 item 4: the merge step sliced every cut of every token (a 50,000-character token took
// 26 s). Against the slicing procedure as the independent slow reference.
describe('SentencePiece merges in linear time', () => {
  function slowMerges(tokens: string[], scores: number[], types: number[], vocab: Record<string, number>): Array<[string, string]> {
    const found: Array<{ left: string; right: string; score: number; id: number; cut: number }> = [];
    const ok = (id: number | undefined) => id !== undefined && (types[id] === 1 || types[id] === 4);
    for (let id = 0; id < tokens.length; id++) {
      if (types[id] !== 1) continue;
      const chars = Array.from(tokens[id]);
      for (let cut = 1; cut < chars.length; cut++) {
        const left = chars.slice(0, cut).join(''), right = chars.slice(cut).join('');
        if (ok(vocab[left]) && ok(vocab[right])) found.push({ left, right, score: scores[id], id, cut });
      }
    }
    found.sort((a, b) => b.score - a.score || a.id - b.id || a.cut - b.cut);
    return found.map((m) => [m.left, m.right]);
  }
  const vocabOf = (tokens: string[]) => {
    const v: Record<string, number> = Object.create(null);
    tokens.forEach((t, i) => (v[t] ??= i));
    return v;
  };

  it('finds the same merges as slicing every cut (surrogate pairs, user-defined and control tokens)', () => {
    const alphabet = ['a', 'b', '\u2581', 'é', '🙂', '😀'];
    let seed = 5;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let round = 0; round < 20; round++) {
      const tokens = [...new Set(Array.from({ length: 300 }, () => Array.from({ length: 1 + rand(6) }, () => alphabet[rand(alphabet.length)]).join('')))];
      const types = tokens.map(() => [1, 1, 1, 1, 4, 3][rand(6)]);
      const scores = tokens.map(() => rand(50) - 25);
      const vocab = vocabOf(tokens);
      expect(sentencePieceMerges(tokens, scores, types, vocab)).toEqual(slowMerges(tokens, scores, types, vocab));
    }
  });

  it('converts a 50,000-character token in well under a second', () => {
    const long = 'ab'.repeat(25_000);
    const tokens = ['a', 'b', 'ab', long, long.slice(0, 49_998), 'ab'.repeat(24_999) + 'a'];
    const types = tokens.map(() => 1);
    const t0 = performance.now();
    const merges = sentencePieceMerges(tokens, tokens.map((_, i) => -i), types, vocabOf(tokens));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(merges).toContainEqual([long.slice(0, 49_998), 'ab']);
    expect(merges).toContainEqual(['ab'.repeat(24_999) + 'a', 'b']);
    expect(merges).toContainEqual(['a', 'b']);
  });

  it('refuses a vocabulary crafted to give cubic merges, with a clear error', () => {
    const tokens = Array.from({ length: 3000 }, (_, i) => 'a'.repeat(i + 1));
    const t0 = performance.now();
    expect(() => sentencePieceMerges(tokens, tokens.map(() => 0), tokens.map(() => 1), vocabOf(tokens), 'crafted.gguf')).toThrow(
      /crafted\.gguf: its SentencePiece vocabulary splits into more than \d+ characters of merges .* crafted to exhaust memory/,
    );
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});
