// The inputs the fuzz suite mutates and the real loader path each goes through (run inside the fuzz
// child process, fuzz-runner.ts). Every loader starts from a valid input: stories260k's folder, a
// tiny GGUF built by the test writer and SmolLM2's real GGUF header, real chat templates.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { planModel } from '../engine/gguf/architecture.js';
import { importGguf } from '../engine/gguf/import.js';
import { openGguf, readGgufHeader, type ByteSource } from '../engine/gguf/reader.js';
import { tinyModelGguf } from '../testing/gguf.js';
import { convertTokenizer } from '../engine/gguf/tokenizer.js';
import { native } from '../engine/native.js';
import { readConfig } from '../engine/model/config.js';
import { inspectLoaded } from '../engine/model/inspect.js';
import { openModel } from '../engine/model/loader.js';
import { loadChatTemplate, loadTokenizer, type ModelTokenizer } from '../engine/model/tokenizer.js';
import type { Mutator } from './mutate.js';

export const FUZZ_LOADERS = ['safetensors', 'config', 'gguf', 'chat-template'] as const;
export type FuzzLoaderName = (typeof FUZZ_LOADERS)[number];

export interface FuzzData {
  /** ../shared/data (stories260k, SmolLM2 GGUF). */
  dataDir: string;
}

export interface FuzzLoader {
  /** Size of the largest unmutated input, for the memory goal (4x input + 200 MB). */
  inputBytes: number;
  /** What the inputs are. */
  inputs: string;
  /** One case: mutate with `m`, run the loader; resolves on success, throws on refusal. */
  run(m: Mutator): Promise<void>;
  dispose(): void;
}

const STORIES_TEXT = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json'];

function storiesFolder(data: FuzzData, withWeights: boolean): string {
  const src = path.join(data.dataDir, 'models', 'stories260k');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quip-fuzz-'));
  for (const f of [...STORIES_TEXT, ...(withWeights ? ['model.safetensors'] : [])]) copyFileSync(path.join(src, f), path.join(dir, f));
  return dir;
}

/** Opens a model folder the way `quip inspect` does, then uses what it loaded. */
async function openAndUse(dir: string): Promise<void> {
  const model = await openModel(dir);
  try {
    inspectLoaded(model, { kind: 'local', path: dir, repoId: null, revision: null });
    if (model.tokenizer) model.tokenizer.decode(model.tokenizer.encode('Once upon a time, there was a little girl.'));
    for (const name of ['model.norm.weight', 'model.embed_tokens.weight']) if (model.hasTensor(name)) await native().tensorStats(model.tensor(name));
  } finally {
    model.close();
  }
}

function safetensorsLoader(data: FuzzData): FuzzLoader {
  const dir = storiesFolder(data, false);
  const base = readFileSync(path.join(data.dataDir, 'models', 'stories260k', 'model.safetensors'));
  const headerEnd = 8 + Number(base.readBigUInt64LE(0));
  const file = path.join(dir, 'model.safetensors');
  return {
    inputBytes: base.length,
    inputs: 'stories260k model.safetensors (1.0 MB): bytes (mostly the header), or its header JSON re-serialized',
    async run(m) {
      let bytes: Buffer;
      if (m.chance(0.35)) {
        const header = m.json(JSON.parse(base.subarray(8, headerEnd).toString('utf8')));
        const json = Buffer.from(m.jsonText(header), 'utf8');
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(BigInt(json.length));
        bytes = Buffer.concat([len, json, base.subarray(headerEnd)]);
        if (m.chance(0.2)) bytes = m.bytes(bytes, 8);
      } else bytes = m.bytes(base, headerEnd);
      writeFileSync(file, bytes);
      await openAndUse(dir);
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function configLoader(data: FuzzData): FuzzLoader {
  const dir = storiesFolder(data, true);
  const files = ['config.json', 'tokenizer.json', 'tokenizer_config.json'];
  const originals = new Map(files.map((f) => [f, readFileSync(path.join(dir, f))]));
  const total = [...STORIES_TEXT, 'model.safetensors'].reduce((s, f) => s + statSync(path.join(dir, f)).size, 0);
  return {
    inputBytes: total,
    inputs: 'stories260k config.json, tokenizer.json, tokenizer_config.json (one per case): JSON values, or bytes of the text',
    async run(m) {
      const name = m.pick(files);
      const original = originals.get(name)!;
      m.log.push(name);
      const mutated = m.chance(0.8) ? Buffer.from(m.jsonText(m.json(JSON.parse(original.toString('utf8')))), 'utf8') : m.bytes(original);
      writeFileSync(path.join(dir, name), mutated);
      try {
        await openAndUse(dir);
      } finally {
        writeFileSync(path.join(dir, name), original);
      }
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A ByteSource over `head` that claims `size` bytes, zeros after the head (the real tensor data is
 * left out so that each case costs the header only). */
function headSource(head: Buffer, size: number): ByteSource {
  return {
    size,
    read(offset, length) {
      const out = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      if (offset < head.length) head.copy(out, 0, offset, Math.min(head.length, offset + length));
      return out;
    },
  };
}

function ggufLoader(data: FuzzData): FuzzLoader {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quip-fuzz-gguf-'));
  const tiny = tinyModelGguf().gguf;
  const smollmFile = path.join(data.dataDir, 'models', 'smollm2-135m-instruct-q4_1', 'SmolLM2-135M-Instruct.Q4_1.gguf');
  const { header, file } = openGguf(smollmFile);
  const smollmSize = file.size;
  const smollmHead = Buffer.from(file.read(0, header.dataOffset));
  file.close();
  const ggufPath = path.join(dir, 'model.gguf'), outDir = path.join(dir, 'out');
  return {
    inputBytes: Math.max(tiny.bytes.length, smollmHead.length),
    inputs: `a tiny llama GGUF (${tiny.bytes.length} bytes) through the whole import, or SmolLM2's real GGUF header (${smollmHead.length} bytes, tensor data as zeros) through the header, tokenizer and model checks`,
    async run(m) {
      if (m.chance(0.85)) {
        m.log.push('tiny');
        writeFileSync(ggufPath, m.bytes(tiny.bytes, tiny.dataOffset));
        try {
          await importGguf(ggufPath, outDir, { force: true });
        } finally {
          rmSync(outDir, { recursive: true, force: true });
        }
      } else {
        m.log.push('smollm2 header');
        const head = m.bytes(smollmHead, smollmHead.length);
        const h = readGgufHeader(headSource(head, smollmSize - smollmHead.length + head.length), 'SmolLM2.gguf');
        const tok = convertTokenizer(h.metadata, h.metadata.number('llama.context_length'));
        planModel(h, tok);
      }
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const LLAMA2_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}" +
  "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
const MACRO_TEMPLATE =
  '{% macro turn(role, text) %}<|{{ role }}|>\n{{ text | trim }}{% if role == "assistant" %}{{ eos_token }}{% endif %}\n{% endmacro %}' +
  '{{ bos_token }}{% for m in messages %}{{ turn(m.role, m.content) }}{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}';

function chatTemplateLoader(data: FuzzData): FuzzLoader {
  const dir = storiesFolder(data, false);
  const tokenizer: ModelTokenizer | null = loadTokenizer(dir, readConfig(dir));
  const { header, file } = openGguf(path.join(data.dataDir, 'models', 'smollm2-135m-instruct-q4_1', 'SmolLM2-135M-Instruct.Q4_1.gguf'));
  const chatml = header.metadata.string('tokenizer.chat_template') ?? '';
  file.close();
  const sources = [chatml, LLAMA2_TEMPLATE, MACRO_TEMPLATE];
  const messages = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Hello! Tell me a story.' },
    { role: 'assistant', content: 'Once upon a time, there was a little girl named Lily.' },
    { role: 'user', content: 'And then?' },
  ];
  return {
    inputBytes: Math.max(...sources.map((s) => Buffer.byteLength(s))),
    inputs: "SmolLM2's ChatML template, a Llama-2 template, a macro template: hostile snippets (huge ranges, nested loops, recursive macros, huge strings), broken tags, deletions, truncation",
    async run(m) {
      const source = m.template(m.pick(sources));
      writeFileSync(path.join(dir, 'chat_template.jinja'), source);
      const render = loadChatTemplate(dir, tokenizer);
      render?.(m.chance(0.5) ? messages : messages.slice(1, 2), { addGenerationPrompt: m.chance(0.5) });
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export function makeLoader(name: FuzzLoaderName, data: FuzzData): FuzzLoader {
  switch (name) {
    case 'safetensors': return safetensorsLoader(data);
    case 'config': return configLoader(data);
    case 'gguf': return ggufLoader(data);
    case 'chat-template': return chatTemplateLoader(data);
  }
}
