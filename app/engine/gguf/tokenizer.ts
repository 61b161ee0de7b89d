// GGUF tokenizer metadata -> a Hugging Face tokenizer.json (+ tokenizer_config.json) that
// @huggingface/tokenizers loads and that tokenizes like llama.cpp does on the same file.
//
// Two tokenizer models exist in GGUF files:
//  - "gpt2": byte-level BPE. tokens + merges ("left right" strings, rank = position); the text is
//    split by the pre-tokenizer regexes named in tokenizer.ggml.pre, each piece mapped to the
//    byte-level alphabet, then merged by rank.
//  - "llama": SentencePiece BPE. tokens + scores; spaces become U+2581 ("▁"), one is prepended
//    to each run of text (after the start and after each special token) unless add_space_prefix is
//    false; the pair whose concatenation has the highest score merges first; characters outside
//    the vocabulary fall back to byte tokens <0xXX>. As BPE merges, ranked by that score.
// Token types (tokenizer.ggml.token_type): 1 normal, 2 unknown, 3 control, 4 user-defined,
// 5 unused, 6 byte. Control/unknown tokens become special added tokens; user-defined ones become
// added tokens that are matched in text but are not special.
import type { GgufMetadata } from './reader.js';
import { GgufError } from './reader.js';

const TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_BYTE = 6;

// The GPT-2 split pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// is what the ByteLevel pre-tokenizer applies itself when use_regex is on.
// Llama 3 and Qwen2: case-insensitive contractions, a letter run with one optional leading
// non-letter, digits in runs of at most 3 (Llama 3) or one by one (Qwen2), punctuation runs with
// trailing newlines, newline runs.
const LLAMA3_PATTERN =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_PATTERN =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

type Json = Record<string, unknown>;

const split = (regex: string): Json => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
const byteLevel = (useRegex: boolean): Json => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });

interface PreTokenizerSpec {
  preTokenizer: Json;
  /** Llama 3 looks a whole piece up in the vocabulary before merging. */
  ignoreMerges?: boolean;
}

// tokenizer.ggml.pre names (as llama.cpp's converter writes them) grouped by the regexes they mean.
const PRE_TOKENIZERS: Array<{ names: string[]; spec: PreTokenizerSpec }> = [
  { names: ['gpt2', 'gpt-2'], spec: { preTokenizer: byteLevel(true) } },
  // Every digit on its own, then the GPT-2 pattern.
  { names: ['smollm', 'starcoder', 'refact', 'codeshell', 'command-r', 'exaone', 'minerva'], spec: { preTokenizer: { type: 'Sequence', pretokenizers: [split('\\p{N}'), byteLevel(true)] } } },
  { names: ['llama-bpe', 'llama3', 'llama-v3', 'falcon3'], spec: { preTokenizer: { type: 'Sequence', pretokenizers: [split(LLAMA3_PATTERN), byteLevel(false)] }, ignoreMerges: true } },
  { names: ['qwen2', 'deepseek-r1-qwen'], spec: { preTokenizer: { type: 'Sequence', pretokenizers: [split(QWEN2_PATTERN), byteLevel(false)] } } },
];

export const SUPPORTED_PRE_TOKENIZERS = PRE_TOKENIZERS.flatMap((p) => p.names);

export interface ConvertedTokenizer {
  model: 'gpt2' | 'llama';
  /** tokenizer.ggml.pre for gpt2 (or 'gpt2' when the file names none). */
  preTokenizer?: string;
  tokenizerJson: Json;
  tokenizerConfig: Json;
  bosTokenId?: number;
  eosTokenId?: number;
  /** Extra end-of-turn ids (tokenizer.ggml.eot_token_id / eom_token_id) that also end generation. */
  stopTokenIds: number[];
  padTokenId?: number;
  addBos: boolean;
  addEos: boolean;
  chatTemplate?: string;
  warnings: string[];
}

function addedToken(id: number, content: string, special: boolean): Json {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}

/** Converts the tokenizer of a GGUF file; throws GgufError naming the file when it cannot. */
export function convertTokenizer(meta: GgufMetadata, contextLength?: number): ConvertedTokenizer {
  const file = meta.file;
  const model = meta.string('tokenizer.ggml.model');
  const tokens = meta.stringArray('tokenizer.ggml.tokens');
  if (model === undefined || tokens === undefined || tokens.length === 0)
    throw new GgufError(file, `the file has no tokenizer (tokenizer.ggml.${model === undefined ? 'model' : 'tokens'} is missing), so the model cannot read or write text. Use a GGUF file that includes its tokenizer.`);
  if (model !== 'gpt2' && model !== 'llama')
    throw new GgufError(file, `its tokenizer is of type "${model}", which the importer does not convert; supported: gpt2 (byte-level BPE) and llama (SentencePiece).`);
  const n = tokens.length;
  const types: ArrayLike<number> = meta.numberArray('tokenizer.ggml.token_type') ?? new Uint8Array(n).fill(TOKEN_NORMAL);
  if (types.length !== n) throw new GgufError(file, `tokenizer.ggml.token_type has ${types.length} entries for ${n} tokens; the file is damaged.`);
  const warnings: string[] = [];

  const idKey = (k: string): number | undefined => {
    const id = meta.integer(`tokenizer.ggml.${k}`);
    if (id === undefined || id === -1 || id === 0xffffffff) return undefined;
    if (id < 0 || id >= n) throw new GgufError(file, `tokenizer.ggml.${k} = ${id} is not a token id (the vocabulary has ${n} tokens); the file is damaged.`);
    return id;
  };
  const bos = idKey('bos_token_id'), eos = idKey('eos_token_id'), unk = idKey('unknown_token_id'), pad = idKey('padding_token_id');
  const stopTokenIds = [idKey('eot_token_id'), idKey('eom_token_id')].filter((id): id is number => id !== undefined && id !== eos);
  let addBos = meta.bool('tokenizer.ggml.add_bos_token');
  if (addBos === undefined) {
    // llama.cpp adds BOS to SentencePiece models unless told otherwise.
    addBos = model === 'llama' && bos !== undefined;
    warnings.push(`tokenizer.ggml.add_bos_token is missing; assumed ${addBos}.`);
  }
  const addEos = meta.bool('tokenizer.ggml.add_eos_token') ?? false;
  if (addBos && bos === undefined) throw new GgufError(file, 'the tokenizer adds a BOS token but tokenizer.ggml.bos_token_id is missing; the file is damaged.');
  if (addEos && eos === undefined) throw new GgufError(file, 'the tokenizer adds an EOS token but tokenizer.ggml.eos_token_id is missing; the file is damaged.');

  // Vocabulary (the first id wins when a text appears twice) and added tokens.
  const vocab: Record<string, number> = Object.create(null);
  let duplicates = 0;
  for (let id = 0; id < n; id++) {
    if (tokens[id] in vocab) duplicates++;
    else vocab[tokens[id]] = id;
  }
  if (duplicates > 0) warnings.push(`${duplicates} token texts appear more than once; the first id of each is used when encoding.`);
  const added: Json[] = [];
  for (let id = 0; id < n; id++) {
    const t = types[id];
    if (t === TOKEN_CONTROL || t === TOKEN_UNKNOWN) added.push(addedToken(id, tokens[id], true));
    else if (t === TOKEN_USER_DEFINED) added.push(addedToken(id, tokens[id], false));
  }
  // Ids named as bos/eos/pad/unk are special even when typed otherwise.
  for (const id of [bos, eos, pad, unk, ...stopTokenIds]) {
    if (id === undefined) continue;
    const a = added.find((x) => x.id === id);
    if (a) a.special = true;
    else added.push(addedToken(id, tokens[id], true));
  }
  added.sort((a, b) => (a.id as number) - (b.id as number));

  const text = (id: number | undefined) => (id === undefined ? undefined : tokens[id]);
  const template: Json[] = [];
  const specialTokens: Json = {};
  if (addBos) {
    template.push({ SpecialToken: { id: tokens[bos!], type_id: 0 } });
    specialTokens[tokens[bos!]] = { id: tokens[bos!], ids: [bos], tokens: [tokens[bos!]] };
  }
  template.push({ Sequence: { id: 'A', type_id: 0 } });
  if (addEos) {
    template.push({ SpecialToken: { id: tokens[eos!], type_id: 0 } });
    specialTokens[tokens[eos!]] = { id: tokens[eos!], ids: [eos], tokens: [tokens[eos!]] };
  }
  const pairTemplate = [...template, ...template.map((x) => ('Sequence' in x ? { Sequence: { id: 'B', type_id: 1 } } : x))];
  const templateProcessor: Json | null = addBos || addEos ? { type: 'TemplateProcessing', single: template, pair: pairTemplate, special_tokens: specialTokens } : null;

  let tokenizerJson: Json;
  let preName: string | undefined;
  if (model === 'gpt2') {
    const merges = meta.stringArray('tokenizer.ggml.merges');
    if (!merges) throw new GgufError(file, 'its byte-level BPE tokenizer has no merges (tokenizer.ggml.merges is missing); the file is damaged.');
    preName = meta.string('tokenizer.ggml.pre');
    let spec: PreTokenizerSpec;
    if (preName === undefined) {
      warnings.push('tokenizer.ggml.pre is missing; the GPT-2 pre-tokenizer is assumed.');
      spec = PRE_TOKENIZERS[0].spec;
      preName = 'gpt2';
    } else {
      const found = PRE_TOKENIZERS.find((p) => p.names.includes(preName!));
      if (!found)
        throw new GgufError(file, `its tokenizer uses the pre-tokenizer "${preName}", which the importer does not convert; supported: ${SUPPORTED_PRE_TOKENIZERS.join(', ')}.`);
      spec = found.spec;
    }
    const pairs: Array<[string, string]> = merges.map((m, i) => {
      // Byte-level tokens never contain a space, so the first space after the first character splits.
      const at = m.indexOf(' ', 1);
      if (at < 0) throw new GgufError(file, `merge ${i} ("${m}") is not two tokens separated by a space; the file is damaged.`);
      return [m.slice(0, at), m.slice(at + 1)];
    });
    tokenizerJson = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: spec.preTokenizer,
      post_processor: templateProcessor ?? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE', dropout: null, unk_token: text(unk) ?? null, continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: false, byte_fallback: false, ignore_merges: spec.ignoreMerges ?? false, vocab, merges: pairs,
      },
    };
  } else {
    const scores = meta.numberArray('tokenizer.ggml.scores');
    if (!scores || scores.length !== n)
      throw new GgufError(file, `its SentencePiece tokenizer needs one score per token, but tokenizer.ggml.scores has ${scores?.length ?? 'no'} entries for ${n} tokens; the file is damaged.`);
    const addSpacePrefix = meta.bool('tokenizer.ggml.add_space_prefix') ?? true;
    const hasBytes = Array.prototype.some.call(types, (t: number) => t === TOKEN_BYTE);
    tokenizerJson = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: {
        type: 'Sequence',
        normalizers: [
          ...(addSpacePrefix ? [{ type: 'Prepend', prepend: '\u2581' }] : []),
          { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
        ],
      },
      pre_tokenizer: null,
      post_processor: templateProcessor,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          ...(addSpacePrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
        ],
      },
      model: {
        type: 'BPE', dropout: null, unk_token: text(unk) ?? null, continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: true, byte_fallback: hasBytes, ignore_merges: false, vocab, merges: sentencePieceMerges(tokens, scores, types, vocab, file),
      },
    };
  }

  const chatTemplate = meta.string('tokenizer.chat_template');
  const addedDecoder: Json = {};
  for (const a of added) {
    const { id, ...rest } = a;
    addedDecoder[String(id)] = rest;
  }
  const tokenizerConfig: Json = {
    tokenizer_class: model === 'llama' ? 'LlamaTokenizerFast' : 'PreTrainedTokenizerFast',
    add_bos_token: addBos,
    add_eos_token: addEos,
    bos_token: text(bos) ?? null,
    eos_token: text(eos) ?? null,
    pad_token: text(pad) ?? null,
    unk_token: text(unk) ?? null,
    ...(model === 'llama' ? { legacy: true, add_prefix_space: meta.bool('tokenizer.ggml.add_space_prefix') ?? true } : {}),
    clean_up_tokenization_spaces: false,
    ...(contextLength ? { model_max_length: contextLength } : {}),
    ...(chatTemplate !== undefined ? { chat_template: chatTemplate } : {}),
    added_tokens_decoder: addedDecoder,
  };
  return {
    model, preTokenizer: preName, tokenizerJson, tokenizerConfig, bosTokenId: bos, eosTokenId: eos, stopTokenIds, padTokenId: pad,
    addBos, addEos, chatTemplate, warnings,
  };
}

// Polynomial hashes modulo two primes below 2^26 (bases below 2^26 too, so every product is exact in
// a double); a text's key is h1 * P2 + h2, below 2^52.
const P1 = 67108859, P2 = 67108837, B1 = 1000003, B2 = 5000011;
let pow1 = new Float64Array([1]), pow2 = new Float64Array([1]);
function powers(n: number): void {
  if (pow1.length > n) return;
  const m = Math.max(n + 1, 2 * pow1.length);
  const a = new Float64Array(m), b = new Float64Array(m);
  a[0] = b[0] = 1;
  for (let i = 1; i < m; i++) {
    a[i] = (a[i - 1] * B1) % P1;
    b[i] = (b[i - 1] * B2) % P2;
  }
  pow1 = a;
  pow2 = b;
}
function textKey(t: string): number {
  let h1 = 0, h2 = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    h1 = (h1 * B1 + c) % P1;
    h2 = (h2 * B2 + c) % P2;
  }
  return h1 * P2 + h2;
}

/** Merges may hold at most this many characters per character of vocabulary (plus a floor): real
 * vocabularies give about 2; a crafted one ("a", "aa", "aaa", ...) would give cubic output. */
const MERGE_CHARS_PER_VOCAB_CHAR = 16;
const MERGE_CHARS_FLOOR = 16 << 20;

/**
 * SentencePiece BPE as ranked merges: every way of writing a normal token as two vocabulary tokens
 * is a merge, ranked by the token's score (higher merges first; equal scores by id, then by split).
 * Cuts are at code points. Prefix hashes of each token find the cuts whose two sides are vocabulary
 * texts in O(1) per cut (the texts themselves are compared only for those), so a token of length L
 * costs O(L) rather than the O(L^2) of slicing every cut; the merges found are bounded by a budget
 * proportional to the vocabulary, refused with a clear error beyond it.
 */
export function sentencePieceMerges(tokens: string[], scores: ArrayLike<number>, types: ArrayLike<number>, vocab: Record<string, number>, file = 'the GGUF file'): Array<[string, string]> {
  const usable = (id: number | undefined) => id !== undefined && (types[id] === TOKEN_NORMAL || types[id] === TOKEN_USER_DEFINED);
  const sides = new Set<number>();
  let vocabChars = 0, longest = 0;
  for (const text in vocab) {
    vocabChars += text.length;
    if (usable(vocab[text])) sides.add(textKey(text));
  }
  for (let id = 0; id < tokens.length; id++) if (types[id] === TOKEN_NORMAL) longest = Math.max(longest, tokens[id].length);
  powers(longest);
  const h1 = new Float64Array(longest + 1), h2 = new Float64Array(longest + 1);
  const budget = MERGE_CHARS_PER_VOCAB_CHAR * vocabChars + MERGE_CHARS_FLOOR;
  let used = 0;

  const found: Array<{ left: string; right: string; score: number; id: number; cut: number }> = [];
  for (let id = 0; id < tokens.length; id++) {
    if (types[id] !== TOKEN_NORMAL) continue;
    const t = tokens[id], len = t.length;
    if (len < 2) continue;
    for (let i = 0; i < len; i++) {
      const c = t.charCodeAt(i);
      h1[i + 1] = (h1[i] * B1 + c) % P1;
      h2[i + 1] = (h2[i] * B2 + c) % P2;
    }
    for (let cut = 1; cut < len; cut++) {
      // Never between the two halves of a surrogate pair (cuts are at code points).
      const hi = t.charCodeAt(cut - 1), lo = t.charCodeAt(cut);
      if (hi >= 0xd800 && hi <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) continue;
      if (!sides.has(h1[cut] * P2 + h2[cut])) continue;
      const r1 = (h1[len] - ((h1[cut] * pow1[len - cut]) % P1) + P1) % P1;
      const r2 = (h2[len] - ((h2[cut] * pow2[len - cut]) % P2) + P2) % P2;
      if (!sides.has(r1 * P2 + r2)) continue;
      const left = t.slice(0, cut), right = t.slice(cut);
      if (!usable(vocab[left]) || !usable(vocab[right])) continue; // a hash collision
      used += len;
      if (used > budget)
        throw new GgufError(file, `its SentencePiece vocabulary splits into more than ${budget} characters of merges (${vocabChars} characters of tokens); no real tokenizer does. The file is damaged or was crafted to exhaust memory.`);
      found.push({ left, right, score: scores[id], id, cut });
    }
  }
  found.sort((a, b) => b.score - a.score || a.id - b.id || a.cut - b.cut);
  return found.map((m) => [m.left, m.right]);
}
