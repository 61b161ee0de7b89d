// The model's tokenizer (tokenizer.json through @huggingface/tokenizers) with its special tokens from
// tokenizer_config.json / generation_config.json / config.json, and its chat template
// (tokenizer_config.json `chat_template` or chat_template.jinja through @huggingface/jinja).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { Tokenizer } from '@huggingface/tokenizers';

import { UserError } from '../../util/errors.js';
import { assertRegularFile } from '../regular-file.js';
import { compileChatTemplate, type TemplateLimits } from './chat-template.js';
import { readJsonFile, type RawConfig } from './config.js';

export interface ModelTokenizer {
  /** Token ids of `text`; BOS is prepended when opts.addBos (default: the model's addBos). Special
   * tokens written in the text (e.g. "<|im_start|>") become their ids, so rendered chat templates
   * are encoded with addBos false when the template already writes the BOS token. */
  encode(text: string, opts?: { addBos?: boolean }): number[];
  /** Text of the ids, special tokens left out. */
  decode(ids: number[]): string;
  bosId: number | null;
  eosIds: number[];
  /** Whether the model expects BOS at the start of a prompt. */
  addBos: boolean;
  vocabSize: number;
  /** 'BPE', 'Unigram', 'WordPiece', ... (tokenizer.json model.type). */
  kind: string;
  bosToken: string | null;
  eosToken: string | null;
  tokenToId(token: string): number | null;
  idToToken(id: number): string | null;
}

export interface ChatMessage {
  role: string;
  content: string;
}
export type ChatTemplateFn = (messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }) => string;

/** A special token in tokenizer_config.json is a string or an AddedToken object {content}. */
function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

function idList(v: unknown): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
  return [];
}

function optionalJson(dir: string, name: string): Record<string, unknown> {
  if (!existsSync(path.join(dir, name))) return {};
  const v = readJsonFile(dir, name);
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/**
 * Loads tokenizer.json of a model folder; null when the folder has none (e.g. only a SentencePiece
 * tokenizer.model, which the studio does not read).
 */
export function loadTokenizer(dir: string, config: RawConfig): ModelTokenizer | null {
  if (!existsSync(path.join(dir, 'tokenizer.json'))) return null;
  const tokenizerJson = readJsonFile(dir, 'tokenizer.json') as { model?: { type?: unknown } };
  const tc = optionalJson(dir, 'tokenizer_config.json');
  const gen = optionalJson(dir, 'generation_config.json');
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokenizerJson, tc);
  } catch (err) {
    throw new UserError(`tokenizer.json in ${dir} cannot be used (${(err as Error).message}).`, 'BAD_TOKENIZER');
  }
  // The library checks little while building: a damaged post-processor or added token fails only when
  // text goes through it (a raw TypeError), so text goes through now and any failure is a clear error.
  const broken = (err: unknown) =>
    new UserError(`tokenizer.json in ${dir} cannot be used: turning text into tokens fails (${(err as Error)?.message ?? String(err)}). The file is damaged; download the model's tokenizer.json again.`, 'BAD_TOKENIZER');
  const guard = <T>(f: () => T): T => {
    try {
      return f();
    } catch (err) {
      throw err instanceof UserError ? err : broken(err);
    }
  };
  guard(() => {
    for (const special of [true, false]) {
      const ids = tok.encode('Hello, world! 123 <s> </s>', { add_special_tokens: special }).ids;
      if (ids.length) tok.decode(ids, { skip_special_tokens: true });
    }
  });
  const toId = (t: string | null) => (t === null ? null : tok.token_to_id(t) ?? null);

  const bosToken = tokenText(tc.bos_token);
  const eosToken = tokenText(tc.eos_token);
  const bosId = toId(bosToken) ?? idList(gen.bos_token_id)[0] ?? idList(config.bos_token_id)[0] ?? null;
  // Generation stops at any of these: chat models list several (e.g. <|eot_id|> and <|end_of_text|>).
  const eosIds = [...new Set([...idList(gen.eos_token_id), ...[toId(eosToken)].filter((x): x is number => x !== null), ...idList(config.eos_token_id)])];

  // add_bos_token when the config says; otherwise whatever tokenizer.json's post-processor does.
  let addBos: boolean;
  if (typeof tc.add_bos_token === 'boolean') addBos = tc.add_bos_token;
  else addBos = bosId !== null && guard(() => tok.encode('a').ids[0]) === bosId;

  const vocabSize = tok.get_vocab(true).size;
  const kind = typeof tokenizerJson.model?.type === 'string' ? tokenizerJson.model.type : 'unknown';
  return {
    encode(text, opts) {
      const ids = guard(() => tok.encode(text, { add_special_tokens: false }).ids);
      return (opts?.addBos ?? addBos) && bosId !== null ? [bosId, ...ids] : ids;
    },
    decode: (ids) => (ids.length === 0 ? '' : guard(() => tok.decode(ids, { skip_special_tokens: true }))),
    bosId,
    eosIds,
    addBos,
    vocabSize,
    kind,
    bosToken: bosToken ?? (bosId !== null ? tok.id_to_token(bosId) ?? null : null),
    eosToken: eosToken ?? (eosIds.length ? tok.id_to_token(eosIds[0]) ?? null : null),
    tokenToId: (t) => tok.token_to_id(t) ?? null,
    idToToken: (id) => tok.id_to_token(id) ?? null,
  };
}

/**
 * The chat template of a model folder: chat_template.jinja, else tokenizer_config.json `chat_template`
 * (a string, or a list of named templates of which "default" is used). Null when there is none.
 * Rendering is bounded in time, memory and nesting (chat-template.ts; `limits` overrides the
 * defaults): a template over a limit fails with a UserError naming the model and the limit, and
 * Ctrl-C interrupts a render (UserError CANCELLED).
 */
export function loadChatTemplate(dir: string, tokenizer: ModelTokenizer | null, limits?: Partial<TemplateLimits>): ChatTemplateFn | null {
  let source: string | null = null;
  let file = 'chat_template.jinja';
  if (existsSync(path.join(dir, file))) {
    assertRegularFile(path.join(dir, file), 'Chat template', 'BAD_TOKENIZER');
    source = readFileSync(path.join(dir, file), 'utf8');
  } else {
    file = 'tokenizer_config.json';
    const raw = optionalJson(dir, file).chat_template;
    if (typeof raw === 'string') source = raw;
    else if (Array.isArray(raw)) {
      const named = raw as Array<{ name?: unknown; template?: unknown }>;
      const pick = named.find((t) => t.name === 'default') ?? named[0];
      if (typeof pick?.template === 'string') source = pick.template;
    }
  }
  if (source === null) return null;
  const template = compileChatTemplate(source, dir, file, limits);
  return (messages, opts) =>
    template.render({
      messages,
      add_generation_prompt: opts?.addGenerationPrompt ?? true,
      bos_token: tokenizer?.bosToken ?? '',
      eos_token: tokenizer?.eosToken ?? '',
    });
}
