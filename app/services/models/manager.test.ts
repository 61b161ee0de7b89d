// The ModelManager against real model-host job processes on stories260k: one load serves many
// requests (FIFO, never failing because another runs), a stop lands within 100 ms, resident memory
// is measured, idle and memory-budget unloads, a killed host fails its request clearly and the next
// request loads it again; and the studio's chat streams through it with the cache statistics.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ChatToken } from '../../contract/runs.js';
import { projectRoot } from '../../util/paths.js';
import { bundleForTest } from '../../testing/bundle.js';
import { JobClient, type JobProcessFactory } from '../jobs/client.js';
import { nodeJobProcesses } from '../jobs/node-process.js';
import { createStudioServices } from '../studio/index.js';
import { ModelManager } from './manager.js';

const STORIES = path.resolve(projectRoot(), '..', 'shared', 'data', 'models', 'stories260k');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-models-'));
let spawn: JobProcessFactory;
const copyA = path.join(tmp, 'a');
const copyB = path.join(tmp, 'b');

beforeAll(async () => {
  spawn = nodeJobProcesses({ workerPath: await bundleForTest('app/worker/main.ts', 'worker') });
  cpSync(STORIES, copyA, { recursive: true });
  cpSync(STORIES, copyB, { recursive: true });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const greedy = { template: false, temperature: 0, topP: 1, seed: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function manager(opts: Partial<ConstructorParameters<typeof ModelManager>[0]> = {}) {
  const jobs = new JobClient({ spawn, graceMs: 1000 });
  return { jobs, models: new ModelManager({ jobs, threads: async () => 1, ...opts }) };
}

describe('ModelManager', () => {
  it('loads once, queues requests FIFO, stops a reply within 100 ms and reads resident memory', async () => {
    const { jobs, models } = manager();
    try {
      const info = await models.load(STORIES);
      expect(info).toMatchObject({ state: 'ready', name: 'stories260k', contextLength: 512, busy: false, queued: 0 });
      const order: string[] = [];
      const a = models.generate(STORIES, { ...greedy, prompt: 'Once upon a time', maxTokens: 40 }, { onToken: () => void (order.at(-1) !== 'a' && order.push('a')) });
      const b = models.generate(STORIES, { ...greedy, prompt: 'Once upon a time', maxTokens: 40 }, { onToken: () => void (order.at(-1) !== 'b' && order.push('b')) });
      const c = models.generate(STORIES, { ...greedy, prompt: 'The dog', maxTokens: 5 });
      await sleep(0);
      expect(models.pending(STORIES)).toBe(3);
      c.cancel(); // queued: leaves the queue, the others go on
      await expect(c.result).rejects.toMatchObject({ code: 'CANCELLED' });
      const [ra, rb] = await Promise.all([a.result, b.result]);
      expect(order).toEqual(['a', 'b']);
      expect(ra.text).toBe(rb.text);
      expect(rb.stats.reusedTokens).toBe(rb.stats.promptTokens - 1);
      expect(models.pending(STORIES)).toBe(0);
      // The same process served everything.
      const [loaded] = await models.list();
      expect(loaded.pid).toBe(info.pid);
      if (process.platform === 'linux') expect(loaded.residentBytes).toBeGreaterThan(10 * 2 ** 20);

      // Stop mid-reply: the outcome is a cancelled reply, within 100 ms of the stop.
      let stoppedAt = 0;
      const long = models.generate(STORIES, { ...greedy, prompt: 'Once', maxTokens: 100_000 }, {
        onToken: (_t, n) => {
          if (n === 5) (stoppedAt = performance.now()), long.cancel();
        },
      });
      const r = await long.result;
      expect(performance.now() - stoppedAt).toBeLessThan(100);
      expect(r.stats.stopReason).toBe('cancelled');
      // Counting the prompt needs no generation.
      expect(await models.count(STORIES, { prompt: 'Once upon a time', template: false })).toEqual({ promptTokens: expect.any(Number), contextLength: 512 });
      await expect(models.generate(STORIES, { ...greedy, prompt: 'the cat '.repeat(400), maxTokens: 4 }).result).rejects.toMatchObject({ code: 'CONTEXT_FULL' });
    } finally {
      await models.close();
      await jobs.shutdown();
    }
  });

  it('a killed host fails its request clearly; the next request loads the model again', async () => {
    const { jobs, models } = manager();
    try {
      const first = await models.load(STORIES);
      const h = models.generate(STORIES, { ...greedy, prompt: 'Once', maxTokens: 100_000 }, { onToken: (_t, n) => n === 3 && process.kill(first.pid!, 'SIGKILL') });
      const err = await h.result.then(() => null, (e: { code: string; message: string }) => e);
      expect(err).toMatchObject({ code: 'KILLED', message: expect.stringMatching(/stories260k stopped: .*killed.*The next request loads the model again/) });
      const again = await models.generate(STORIES, { ...greedy, prompt: 'Once upon a time', maxTokens: 8 }).result;
      expect(again.stats.tokens).toBe(8);
      const [loaded] = await models.list();
      expect(loaded.pid).not.toBe(first.pid);
    } finally {
      await models.close();
      await jobs.shutdown();
    }
  });

  it('unloads an idle model, and the least recently used one when the memory budget needs the room', async () => {
    const { jobs, models } = manager({ idleMs: 300 });
    try {
      await models.generate(copyA, { ...greedy, prompt: 'Once', maxTokens: 2 }).result;
      expect((await models.list()).map((m) => m.name)).toEqual(['a']);
      await sleep(800);
      expect(await models.list()).toEqual([]);
    } finally {
      await models.close();
      await jobs.shutdown();
    }
    const small = manager({ memoryBudgetBytes: 1 });
    try {
      await small.models.load(copyA);
      await small.models.load(copyB);
      expect((await small.models.list()).map((m) => m.name)).toEqual(['b']);
    } finally {
      await small.models.close();
      await small.jobs.shutdown();
    }
  });

  it('takes a new idle time and memory budget while models are loaded (the studio settings)', async () => {
    const { jobs, models } = manager();
    try {
      await models.load(copyA);
      await models.load(copyB);
      expect(models.limits.idleMs).toBe(15 * 60_000);
      // A budget one byte short of both unloads the least recently used idle model at once.
      const both = (await models.list()).reduce((n, m) => n + (m.residentBytes ?? 0), 0);
      await models.setLimits({ memoryBudgetBytes: both - 1 });
      expect((await models.list()).map((m) => m.name)).toEqual(['b']);
      // A shorter idle time counts from now for the models already idle.
      await models.setLimits({ idleMs: 200, memoryBudgetBytes: null });
      expect(models.limits.memoryBudgetBytes).toBe(Math.floor(os.totalmem() / 2));
      await sleep(700);
      expect(await models.list()).toEqual([]);
    } finally {
      await models.close();
      await jobs.shutdown();
    }
  });
});

describe('chat through the loaded model', () => {
  it('streams chat.token events with the cache statistics; the second turn reuses the first', async () => {
    const home = path.join(tmp, 'home');
    const events: ChatToken[] = [];
    const services = createStudioServices({ face: 'browser', home, spawnJob: spawn, send: (e, p) => e === 'chat.token' && events.push(p as ChatToken) });
    const ctx = { client: 'test' };
    const done = (streamId: string) =>
      new Promise<Extract<ChatToken, { type: 'done' }>>((resolve, reject) => {
        const t = setInterval(() => {
          const e = events.find((x) => x.streamId === streamId && x.type !== 'token');
          if (e) (clearInterval(t), e.type === 'done' ? resolve(e) : reject(new Error(JSON.stringify(e))));
        }, 5);
      });
    try {
      const sampling = { temperature: 0, topP: 1, maxTokens: 12, seed: 0 };
      const messages = [{ role: 'user' as const, content: 'Once upon a time' }];
      const r1 = await services.dispatch('chat.send', { modelDir: copyA, messages, sampling, template: false, conversationId: 'chat-1:0' }, ctx);
      expect(r1.ok).toBe(true);
      const d1 = await done((r1 as { value: { streamId: string } }).value.streamId);
      const tokens = events.filter((e) => e.type === 'token' && e.streamId === d1.streamId);
      expect(tokens.map((e) => (e as { text: string }).text).join('')).toBe(d1.text);
      expect(d1.stats).toMatchObject({ reusedTokens: 0, contextLength: 512, tokens: 12 });
      expect(d1.stats.timeToFirstTokenMs).toBeGreaterThan(0);
      const follow = [...messages, { role: 'assistant' as const, content: d1.text }, { role: 'user' as const, content: 'The end.' }];
      const r2 = await services.dispatch('chat.send', { modelDir: copyA, messages: follow, sampling, template: false, conversationId: 'chat-1:0' }, ctx);
      const d2 = await done((r2 as { value: { streamId: string } }).value.streamId);
      expect(d2.stats.reusedTokens).toBe(d1.stats.promptTokens + d1.stats.tokens - 1);
      expect((await services.models.list()).length).toBe(1);
    } finally {
      await services.close();
    }
  });
});
