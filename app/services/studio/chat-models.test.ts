// The chat, loaded-model and local-server channels through the studio's dispatcher, as both faces
// call them, with real model-host job processes on the built-in stories260k: chat.count before a
// send, a streamed reply whose figures feed the context meter, the model staying loaded (with its
// resident memory) for the next turn, which reuses the cached prefix; models.unload; the idle and
// memory settings reaching the manager; a closed window stopping its replies (chat.stopOwnedBy); and
// the local server offering the sample model to an OpenAI-style request.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';

import type { EventName, EventPayload } from '../../contract/channels.js';
import type { ApiStatus, ChatCount, LoadedModels } from '../../contract/local-api.js';
import type { LoadedModelInfo } from '../../contract/loaded-models.js';
import { bundleForTest } from '../../testing/bundle.js';
import { sampleModelDir } from '../../util/paths.js';
import { nodeJobProcesses } from '../jobs/node-process.js';
import { createStudioServices, type StudioServices } from './index.js';

const SAMPLE = sampleModelDir();
let home: string;
let services: StudioServices;
const events: Array<{ event: EventName; payload: unknown }> = [];

beforeAll(async () => {
  home = mkdtempSync(path.join(os.tmpdir(), 'quip-chat-models-'));
  const workerPath = await bundleForTest('app/worker/main.ts', 'worker');
  services = createStudioServices({ face: 'browser', home, spawnJob: nodeJobProcesses({ workerPath }), send: (event, payload) => events.push({ event, payload }) });
}, 60_000);
afterAll(async () => {
  await services?.close();
  rmSync(home, { recursive: true, force: true });
});

async function call<T>(channel: string, input?: unknown, client = 'window-1'): Promise<T> {
  const reply = await services.dispatch(channel, input, { client });
  if (!reply.ok) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
  return reply.value as T;
}

/** Sends a message and waits for the reply's done (or error) event. */
async function reply(messages: Array<{ role: string; content: string }>, opts: { maxTokens?: number; client?: string } = {}) {
  const { streamId } = await call<{ streamId: string }>(
    'chat.send',
    { modelDir: SAMPLE, messages, sampling: { temperature: 0, maxTokens: opts.maxTokens ?? 12 }, conversationId: 'chat-test:0' },
    opts.client,
  );
  for (;;) {
    const end = events.find((e) => e.event === 'chat.token' && (e.payload as { streamId: string; type: string }).streamId === streamId && (e.payload as { type: string }).type !== 'token');
    if (end) return { streamId, end: end.payload as EventPayload<'chat.token'> };
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('counts, answers with the context figures, keeps the model loaded and reuses the cached prefix on the next turn', async () => {
  const first = [{ role: 'user', content: 'Once upon a time' }];
  const count = await call<ChatCount>('chat.count', { modelDir: SAMPLE, messages: first });
  expect(count.contextLength).toBe(512);
  expect(count.promptTokens).toBeGreaterThan(2);

  const a = await reply(first);
  expect(a.end.type).toBe('done');
  if (a.end.type !== 'done') return;
  expect(a.end.stats).toMatchObject({ promptTokens: count.promptTokens, contextLength: 512, templated: false });
  expect(a.end.stats.timeToFirstTokenMs).toBeGreaterThan(0);

  const loaded = await call<LoadedModels>('models.loaded');
  expect(loaded.models.map((m) => m.modelDir)).toEqual([SAMPLE]);
  expect(loaded.models[0]!.residentBytes).toBeGreaterThan(1e6);
  expect(loaded.idleUnloadMinutes).toBe(15);
  expect(loaded.memoryBudgetBytes).toBe(Math.floor(os.totalmem() / 2));
  expect(events.some((e) => e.event === 'models.loadedChanged')).toBe(true);
  const pid = loaded.models[0]!.pid;

  const b = await reply([...first, { role: 'assistant', content: a.end.text }, { role: 'user', content: 'The end.' }]);
  expect(b.end.type === 'done' && b.end.stats.reusedTokens).toBeGreaterThan(0);
  // The same process answered (no reload).
  expect((await call<LoadedModels>('models.loaded')).models[0]!.pid).toBe(pid);
}, 120_000);

it('takes the idle time and memory budget from the settings', async () => {
  await call('settings.update', { idleUnloadMinutes: 5, memoryBudgetBytes: 3 * 2 ** 30 });
  expect(await call<LoadedModels>('models.loaded')).toMatchObject({ idleUnloadMinutes: 5, memoryBudgetBytes: 3 * 2 ** 30 });
  await call('settings.update', { idleUnloadMinutes: 15, memoryBudgetBytes: null });
  expect(await call<LoadedModels>('models.loaded')).toMatchObject({ idleUnloadMinutes: 15, memoryBudgetBytes: Math.floor(os.totalmem() / 2) });
});

it('stops the replies of a closed window, not the model', async () => {
  const { streamId } = await call<{ streamId: string }>(
    'chat.send',
    { modelDir: SAMPLE, messages: [{ role: 'user', content: 'Tell me a long story' }], sampling: { temperature: 0.8, maxTokens: 4000 } },
    'window-2',
  );
  // Wait until it is generating, then the window closes.
  while (!events.some((e) => e.event === 'chat.token' && (e.payload as { streamId: string }).streamId === streamId)) await new Promise((r) => setTimeout(r, 10));
  expect(services.chat.stopOwnedBy('window-2')).toBe(1);
  let end: EventPayload<'chat.token'> | undefined;
  while (!(end = events.find((e) => e.event === 'chat.token' && (e.payload as { streamId: string; type: string }).streamId === streamId && (e.payload as { type: string }).type === 'done')?.payload as EventPayload<'chat.token'> | undefined))
    await new Promise((r) => setTimeout(r, 10));
  expect(end.type === 'done' && end.stats.stopReason).toBe('cancelled');
  expect((await call<LoadedModels>('models.loaded')).models).toHaveLength(1);
}, 60_000);

it('offers the sample model over the local server, then unloads it', async () => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const on = await call<ApiStatus>('api.set', { enabled: true, port });
  const headers = { Authorization: `Bearer ${on.apiKey}`, 'Content-Type': 'application/json' };
  const list = (await (await fetch(`${on.baseUrl}/models`, { headers })).json()) as { data: Array<{ id: string }> };
  expect(list.data.map((m) => m.id)).toContain('stories260k');
  const res = await fetch(`${on.baseUrl}/completions`, { method: 'POST', headers, body: JSON.stringify({ model: 'stories260k', prompt: 'Once upon a time', max_tokens: 5, temperature: 0 }) });
  expect(res.status).toBe(200);
  expect(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBeGreaterThan(0);
  expect((await call<ApiStatus>('api.status')).log.map((r) => r.path)).toEqual(['/v1/completions', '/v1/models']);
  await call('api.set', { enabled: false });

  expect(await call<{ unloaded: boolean }>('models.unload', { modelDir: SAMPLE })).toEqual({ unloaded: true });
  expect((await call<LoadedModels>('models.loaded')).models).toEqual([] as LoadedModelInfo[]);
}, 60_000);
