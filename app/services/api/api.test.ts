// The OpenAI-compatible local API driven by the official `openai` package as a real client, over real
// model hosts: stories260k (no chat template), SmolLM2-135M-Instruct (imported from its GGUF; ChatML)
// and that SmolLM2 quantized to 4 bits (a small calibration: the API, not the quality, is under test).
// Streaming and not, the same greedy text as `quip generate`, stop strings, usage, the error shapes
// (404 model_not_found, 400 naming the field, 401, context_length_exceeded, 413), the queue, and a
// client that disconnects mid-stream freeing the model within 100 ms.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { registerGenerate } from '../../cli/commands/generate.js';
import { runQuip } from '../../testing/cli.js';
import { importGguf } from '../../engine/gguf/index.js';
import { runQuantizeJob } from '../../engine/quantize/job.js';
import { resolveSettings } from '../../domain/quantize/index.js';
import { projectRoot } from '../../util/paths.js';
import { bundleForTest } from '../../testing/bundle.js';
import { JobClient } from '../jobs/client.js';
import { nodeJobProcesses } from '../jobs/node-process.js';
import { ModelManager } from '../models/manager.js';
import { startApiServer, type ApiRequestLog, type ApiServer } from './server.js';

const DATA = path.resolve(projectRoot(), '..', 'shared', 'data', 'models');
const STORIES = path.join(DATA, 'stories260k');
const GGUF = path.join(DATA, 'smollm2-135m-instruct-q4_1', 'SmolLM2-135M-Instruct.Q4_1.gguf');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-api-'));
const SMOL = path.join(tmp, 'smollm2-135m-instruct');
const SMOL_4BIT = path.join(tmp, 'smollm2-4bit');
const KEY = 'test-key-0123456789';

let jobs: JobClient;
let models: ModelManager;
let api: ApiServer;
let client: OpenAI;
const requests: ApiRequestLog[] = [];

beforeAll(async () => {
  await importGguf(GGUF, SMOL);
  await runQuantizeJob({ model: SMOL, out: SMOL_4BIT, settings: resolveSettings({ bits: 4, calibSamples: 2, calibCtx: 64, threads: 2 }), evaluation: null });
  // Loaded models are long-lived processes: no cap on their count (as `quip serve` and the studio do).
  jobs = new JobClient({ spawn: nodeJobProcesses({ workerPath: await bundleForTest('app/worker/main.ts', 'worker') }), graceMs: 1000, maxProcesses: Number.MAX_SAFE_INTEGER });
  models = new ModelManager({ jobs, threads: async () => 2 });
  api = await startApiServer({
    models,
    apiKey: KEY,
    listModels: () => [
      { id: 'stories260k', dir: STORIES },
      { id: 'smollm2-135m-instruct', dir: SMOL },
      { id: 'smollm2-4bit', dir: SMOL_4BIT },
    ],
    maxBodyBytes: 256 * 1024,
    onRequest: (r) => requests.push(r),
  });
  client = new OpenAI({ apiKey: KEY, baseURL: api.baseUrl, maxRetries: 0 });
}, 300_000);

afterAll(async () => {
  await api?.close();
  await models?.close();
  await jobs?.shutdown();
  rmSync(tmp, { recursive: true, force: true });
});

const USER = 'What is the capital of France?';

/** `quip generate --json` (greedy) in-process: the reference text for the same prompt. */
async function quipGenerate(dir: string, prompt: string, maxTokens: number, chat: boolean): Promise<string> {
  const out = await runQuip([registerGenerate], ['generate', dir, '--prompt', prompt, '--temperature', '0', '--max-tokens', String(maxTokens), '--threads', '2', '--json', ...(chat ? ['--chat'] : [])], { silenceStderr: true });
  return (JSON.parse(out) as { text: string }).text;
}

describe('OpenAI-compatible API', () => {
  it('lists the models by id and refuses requests without the right key', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['stories260k', 'smollm2-135m-instruct', 'smollm2-4bit']);
    expect(api.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    expect(api.exposed).toBe(false);
    const wrong = new OpenAI({ apiKey: 'nope', baseURL: api.baseUrl, maxRetries: 0 });
    await expect(wrong.models.list()).rejects.toMatchObject({ status: 401, code: 'invalid_api_key' });
    const bare = await fetch(`${api.baseUrl}/models`);
    expect(bare.status).toBe(401);
    expect(((await bare.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    // No CORS unless enabled.
    expect(bare.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('SmolLM2: greedy chat equals `quip generate --chat`, whole and streamed, with usage and role/finish chunks', async () => {
    const max = 24;
    const reference = await quipGenerate(SMOL, USER, max, true);
    expect(reference.length).toBeGreaterThan(0);
    const whole = await client.chat.completions.create({ model: 'smollm2-135m-instruct', messages: [{ role: 'user', content: USER }], temperature: 0, max_tokens: max });
    expect(whole.object).toBe('chat.completion');
    expect(whole.choices[0].message).toMatchObject({ role: 'assistant', content: reference });
    expect(['stop', 'length']).toContain(whole.choices[0].finish_reason);
    expect(whole.usage!.completion_tokens).toBeGreaterThan(0);
    expect(whole.usage!.total_tokens).toBe(whole.usage!.prompt_tokens + whole.usage!.completion_tokens);

    const stream = await client.chat.completions.create({
      model: 'smollm2-135m-instruct',
      messages: [{ role: 'user', content: USER }],
      temperature: 0,
      max_completion_tokens: max,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const withChoice = chunks.filter((c) => c.choices.length);
    expect(withChoice.at(-1)!.choices[0].finish_reason).toBe(whole.choices[0].finish_reason);
    expect(withChoice.slice(0, -1).every((c) => c.choices[0].finish_reason === null)).toBe(true);
    expect(withChoice.map((c) => c.choices[0].delta.content ?? '').join('')).toBe(reference);
    expect(chunks.at(-1)!.usage).toEqual(whole.usage);
    expect(chunks.every((c) => c.id === chunks[0].id && c.object === 'chat.completion.chunk')).toBe(true);
  });

  it('SmolLM2 quantized to 4 bits: greedy chat equals `quip generate --chat` on the same folder, whole and streamed', async () => {
    const max = 16;
    const reference = await quipGenerate(SMOL_4BIT, USER, max, true);
    const whole = await client.chat.completions.create({ model: 'smollm2-4bit', messages: [{ role: 'user', content: USER }], temperature: 0, max_tokens: max });
    expect(whole.choices[0].message.content).toBe(reference);
    expect(whole.usage!.prompt_tokens).toBeGreaterThan(0);
    let streamed = '';
    for await (const c of await client.chat.completions.create({ model: 'smollm2-4bit', messages: [{ role: 'user', content: USER }], temperature: 0, max_tokens: max, stream: true })) {
      streamed += c.choices[0]?.delta.content ?? '';
    }
    expect(streamed).toBe(reference);
  });

  it('stories260k: chat (no template) and completions equal `quip generate`; stop strings cut the text', async () => {
    const prompt = 'Once upon a time';
    const reference = await quipGenerate(STORIES, prompt, 40, false);
    const chat = await client.chat.completions.create({ model: 'stories260k', messages: [{ role: 'user', content: prompt }], temperature: 0, max_tokens: 40 });
    expect(chat.choices[0].message.content).toBe(reference);
    expect(chat.choices[0].finish_reason).toBe('length');
    const done = await client.completions.create({ model: 'stories260k', prompt, temperature: 0, max_tokens: 40 });
    expect(done.choices[0].text).toBe(reference);
    expect(done.usage).toMatchObject({ completion_tokens: 40 });
    let streamed = '';
    for await (const c of await client.completions.create({ model: 'stories260k', prompt, temperature: 0, max_tokens: 40, stream: true })) streamed += c.choices[0]?.text ?? '';
    expect(streamed).toBe(reference);

    const word = reference.trim().split(/\s+/)[3];
    const at = reference.indexOf(` ${word}`);
    const stopped = await client.chat.completions.create({ model: 'stories260k', messages: [{ role: 'user', content: prompt }], temperature: 0, max_tokens: 40, stop: [` ${word}`, 'zzzz'] });
    expect(stopped.choices[0].message.content).toBe(reference.slice(0, at));
    expect(stopped.choices[0].finish_reason).toBe('stop');
    let s = '';
    for await (const c of await client.chat.completions.create({ model: 'stories260k', messages: [{ role: 'user', content: prompt }], temperature: 0, max_tokens: 40, stop: ` ${word}`, stream: true })) s += c.choices[0]?.delta.content ?? '';
    expect(s).toBe(reference.slice(0, at));
  });

  it('answers OpenAI-shaped errors: unknown model, a wrong field, bad JSON, a full context, a body too large', async () => {
    await expect(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
      param: 'model',
      type: 'invalid_request_error',
    });
    await expect(client.chat.completions.create({ model: 'stories260k', messages: [{ role: 'user', content: 'hi' }], temperature: 'hot' as unknown as number })).rejects.toMatchObject({
      status: 400,
      param: 'temperature',
      type: 'invalid_request_error',
    });
    await expect(client.chat.completions.create({ model: 'stories260k', messages: [{ role: 'wizard' as 'user', content: 'hi' }] })).rejects.toMatchObject({ status: 400, param: 'messages.0.role' });
    const bad = await fetch(`${api.baseUrl}/chat/completions`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }, body: '{"model": ' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_json');
    const long = 'the cat sat on the mat and '.repeat(120);
    for (const stream of [false, true]) {
      await expect(client.chat.completions.create({ model: 'stories260k', messages: [{ role: 'user', content: long }], stream })).rejects.toMatchObject({
        status: 400,
        code: 'context_length_exceeded',
        message: expect.stringMatching(/\d+ tokens long but the model reads at most 512/),
      });
    }
    await expect(client.completions.create({ model: 'stories260k', prompt: long })).rejects.toMatchObject({ status: 400, code: 'context_length_exceeded', param: 'prompt' });
    const huge = await fetch(`${api.baseUrl}/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'stories260k', prompt: 'x'.repeat(300 * 1024) }),
    });
    expect(huge.status).toBe(413);
    expect(((await huge.json()) as { error: { code: string } }).error.code).toBe('request_too_large');
  });

  it('queues concurrent requests to one model; a client that disconnects mid-stream frees the model within 100 ms', async () => {
    const ask = () => client.chat.completions.create({ model: 'smollm2-135m-instruct', messages: [{ role: 'user', content: 'Count to five.' }], temperature: 0, max_tokens: 8 });
    const [a, b, c] = await Promise.all([ask(), ask(), ask()]);
    expect(b.choices[0].message.content).toBe(a.choices[0].message.content);
    expect(c.choices[0].message.content).toBe(a.choices[0].message.content);

    const ac = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'smollm2-135m-instruct', messages: [{ role: 'user', content: 'Write a very long story about a dragon.' }], temperature: 0.8, max_tokens: 4000, stream: true },
      { signal: ac.signal },
    );
    let n = 0;
    let abortedAt = 0;
    try {
      for await (const _ of stream) {
        if (++n === 4) {
          abortedAt = performance.now();
          ac.abort();
        }
      }
    } catch {
      // the client's own abort
    }
    expect(abortedAt).toBeGreaterThan(0);
    while (models.pending(SMOL) > 0 && performance.now() - abortedAt < 2000) await new Promise((r) => setTimeout(r, 2));
    expect(models.pending(SMOL)).toBe(0);
    expect(performance.now() - abortedAt).toBeLessThan(100);
    // The model serves the next request as usual.
    expect((await ask()).choices[0].message.content).toBe(a.choices[0].message.content);
    expect(requests.some((r) => r.path === '/v1/chat/completions' && r.status === 200 && r.model === 'smollm2-135m-instruct')).toBe(true);
  });
});
