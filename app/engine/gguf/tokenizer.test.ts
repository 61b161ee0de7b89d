// The converted tokenizers against independent references: llama.cpp's own token ids for SmolLM2 on
// WikiText-2, the chat prompts of reference-chat-greedy.json, and a brute-force SentencePiece BPE.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openGguf, type OpenGguf } from './reader.js';
import { convertTokenizer, type ConvertedTokenizer } from './tokenizer.js';

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
