// ChatHost on stories260k (greedy): a kept session per conversation prefills only what its cache
// lacks, and every turn's text equals a fresh full-prefill generation of the same conversation;
// regenerate and edit reuse the prefix; stop strings, cancel, a full context and the KV budget.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { loadModel, type ChatMessage, type LoadedModel } from '../model/index.js';
import { cancelFlag } from '../native.js';
import { commonPrefix, renderPromptIds } from './chat.js';
import { ChatHost, type ChatHostRequest } from './chat-host.js';
import { createEngine } from './native-model.js';
import { generate } from './generation.js';
import type { EngineModel } from './native-types.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-chat-host-'));
let model: LoadedModel;
let engine: EngineModel;
beforeAll(async () => {
  const dir = path.join(tmp, 'm');
  cpSync(path.resolve('../shared/data/models/stories260k'), dir, { recursive: true });
  const tc = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  // ChatML-like: the assistant's turn opens with a newline, so a reply re-renders to the ids it was generated as.
  tc.chat_template = "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>\n{{ m['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}<assistant>\n{% endif %}";
  writeFileSync(path.join(tmp, 'm', 'tokenizer_config.json'), JSON.stringify(tc));
  model = await loadModel(dir);
  engine = createEngine(model);
});
afterAll(() => {
  model?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const greedy = { template: true, temperature: 0, topP: 1, seed: 0, maxTokens: 24 };
const host = () => new ChatHost({ engine, tokenizer: model.tokenizer, chatTemplate: model.chatTemplate, architecture: model.architecture });

/** The reference: the whole conversation rendered and generated in a fresh session. */
async function fresh(messages: ChatMessage[], maxTokens = greedy.maxTokens) {
  const ids = renderPromptIds(model.tokenizer, model.chatTemplate, messages);
  const r = await generate(engine, model.tokenizer, ids, model.architecture.contextLength, { ...greedy, maxTokens });
  return { ids, text: r.text };
}

describe('ChatHost', () => {
  test('three turns: the 2nd and 3rd prefill only their new tokens and match a fresh full prefill', async () => {
    const h = host();
    const users = ['Once upon a time there was a cat.', 'What did the cat do next?', 'Where did the cat go?'];
    const messages: ChatMessage[] = [{ role: 'system', content: 'Tell short stories.' }];
    let previous: number[] = [];
    for (const [turn, user] of users.entries()) {
      messages.push({ role: 'user', content: user });
      const ref = await fresh(messages);
      const r = await h.generate({ ...greedy, conversationId: 'c1', messages });
      expect(r.text).toBe(ref.text);
      expect(r.promptTokens).toBe(ref.ids.length);
      expect(r.reusedTokens + r.prefilledTokens).toBe(ref.ids.length);
      if (turn === 0) expect(r.reusedTokens).toBe(0);
      else {
        // Everything of the last turn's prompt is reused; what is prefilled is the new user turn plus
        // the template's few tokens around it (and at most the reply's last token, never fed back).
        expect(r.reusedTokens).toBeGreaterThanOrEqual(previous.length);
        const newTurn = model.tokenizer.encode(`</s>\n<user>\n${user}</s>\n<assistant>\n`, { addBos: false }).length;
        expect(r.prefilledTokens, `turn ${turn + 1}`).toBeLessThanOrEqual(newTurn + 2);
        expect(r.prefilledTokens).toBeGreaterThanOrEqual(newTurn - 2);
      }
      expect(r.timeToFirstTokenMs).not.toBeNull();
      messages.push({ role: 'assistant', content: r.text });
      previous = ref.ids;
    }
    expect(h.list().map((s) => s.conversationId)).toEqual(['c1']);
  });

  test('regenerate, changed sampling and an edited last message reuse the shared prefix', async () => {
    const h = host();
    const messages: ChatMessage[] = [
      { role: 'user', content: 'Once upon a time there was a dog.' },
      { role: 'assistant', content: 'The dog was happy.' },
      { role: 'user', content: 'What did the dog eat?' },
    ];
    const first = await h.generate({ ...greedy, conversationId: 'c', messages });
    // Regenerate with other sampling: the whole prompt but its last token comes from the cache.
    const again = await h.generate({ ...greedy, temperature: 0.9, seed: 7, conversationId: 'c', messages });
    expect(again.reusedTokens).toBe(first.promptTokens - 1);
    expect(again.prefilledTokens).toBe(1);
    // Edit the last user message: the conversation before it is reused.
    const edited = [...messages.slice(0, 2), { role: 'user', content: 'Where did the dog sleep?' }];
    const shared = commonPrefix(renderPromptIds(model.tokenizer, model.chatTemplate, messages), renderPromptIds(model.tokenizer, model.chatTemplate, edited));
    expect(shared).toBeGreaterThan(first.promptTokens - model.tokenizer.encode('What did the dog eat?</s>\n<assistant>\n', { addBos: false }).length - 3);
    const e = await h.generate({ ...greedy, conversationId: 'c', messages: edited });
    expect(e.reusedTokens).toBe(shared);
    expect(e.text).toBe((await fresh(edited)).text);
    // Without a conversation id, a follow-up finds the pooled session holding its prefix.
    const p1 = await h.generate({ ...greedy, messages });
    const p2 = await h.generate({ ...greedy, messages: [...messages, { role: 'assistant', content: p1.text }, { role: 'user', content: 'And then?' }] });
    expect(p2.reusedTokens).toBeGreaterThanOrEqual(p1.promptTokens);
  });

  test('stop strings end the text before them, streamed and final alike', async () => {
    const h = host();
    const req: ChatHostRequest = { ...greedy, maxTokens: 48, prompt: 'Once upon a time' };
    const plain = await h.generate(req);
    const words = plain.text.trim().split(/\s+/);
    const stop = ` ${words[Math.min(4, words.length - 1)]}`;
    const at = plain.text.indexOf(stop);
    expect(at).toBeGreaterThan(0);
    let streamed = '';
    const r = await h.generate({ ...req, stop: [stop, 'zzz-never'] }, { onText: (t) => (streamed += t) });
    expect(r.stopReason).toBe('stop');
    expect(r.text).toBe(plain.text.slice(0, at));
    expect(streamed).toBe(r.text);
  });

  test('a prompt over the context fails with the counts before generating; cancel stops a reply', async () => {
    const h = host();
    const long = 'the cat sat on the mat and '.repeat(120);
    const n = model.tokenizer.encode(long).length;
    await expect(h.generate({ ...greedy, prompt: long })).rejects.toMatchObject({ code: 'CONTEXT_FULL', message: expect.stringContaining(`${n} tokens`) });
    expect(h.count({ prompt: long, template: false })).toEqual({ promptTokens: n, contextLength: 512 });
    const cancel = cancelFlag();
    const r = await h.generate({ ...greedy, maxTokens: 400, prompt: 'Once upon a time' }, { cancel, onText: (_t, tokens) => tokens === 3 && (cancel[0] = 1) });
    expect(r.stopReason).toBe('cancelled');
    expect(r.ids.length).toBeLessThan(10);
  });

  test('the KV budget drops the least recently used conversation', async () => {
    const budget = 2 * 512 * host().bytesPerPosition;
    const h = new ChatHost({ engine, tokenizer: model.tokenizer, chatTemplate: model.chatTemplate, architecture: model.architecture }, { kvBudgetBytes: budget });
    for (const id of ['a', 'b', 'c']) await h.generate({ ...greedy, maxTokens: 4, conversationId: id, messages: [{ role: 'user', content: `Hello ${id}` }] });
    expect(h.list().map((s) => s.conversationId)).toEqual(['c', 'b']);
    expect(h.kvBytes()).toBeLessThanOrEqual(budget);
  });
});
