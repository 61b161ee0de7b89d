// ChatSession: the second turn reuses the cached prefix and generates exactly what a fresh session
// generates from the whole rendered conversation (greedy), on stories260k with a small chat template.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, expect, test } from 'vitest';

import { loadModel, type LoadedModel } from '../model/index.js';
import { ChatSession } from './chat.js';
import { createEngine } from './native-model.js';
import { generate } from './generation.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-chat-'));
let model: LoadedModel;
beforeAll(async () => {
  const dir = path.join(tmp, 'm');
  cpSync(path.resolve('../shared/data/models/stories260k'), dir, { recursive: true });
  const tc = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  tc.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
  model = await loadModel(dir);
});
afterAll(() => {
  model?.close();
  rmSync(tmp, { recursive: true, force: true });
});

test('a second chat turn reuses the cache and matches a fresh generation', async () => {
  const engine = createEngine(model);
  const chat = new ChatSession(engine, model.tokenizer, model.chatTemplate!, 512, 'Tell short stories.');
  const opts = { maxTokens: 12, temperature: 0, topP: 1, seed: 0 };
  const r1 = await chat.send('Once upon a time', opts);
  expect(r1.ids.length).toBeGreaterThan(0);
  expect(chat.reused).toBe(0);
  const full = chat.promptIds.bind(chat);
  const r2 = await chat.send('What happened next?', opts);
  expect(chat.reused).toBeGreaterThan(10);
  expect(chat.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant']);
  // The same conversation from scratch: render up to the second user turn and generate afresh.
  chat.messages.pop();
  const ids = full();
  const fresh = await generate(engine, model.tokenizer, ids, 512, opts);
  expect(r2.ids).toEqual(fresh.ids);
  expect(() => engine.createSession(4).rewind(1)).toThrow(/cannot rewind/);
});
