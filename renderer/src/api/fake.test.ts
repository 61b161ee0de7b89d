// The fake StudioApi itself: contract validation, and the run and chat channels later screens use.
import { describe, expect, it } from 'vitest';
import type { ChatToken, RunEvent } from '../../../app/contract/index';
import { createFakeStudio } from './fake';
import { stories260k } from './fixtures';

const DIR = stories260k.source.path;

function setup() {
  const fake = createFakeStudio({ models: { [DIR]: stories260k } });
  const runEvents: RunEvent[] = [];
  const tokens: ChatToken[] = [];
  fake.api.on('run.event', (e) => runEvents.push(e));
  fake.api.on('chat.token', (t) => tokens.push(t));
  return { fake, api: fake.api, runEvents, tokens };
}

describe('fake StudioApi', () => {
  it('rejects input the contract rejects, with the zod reason', async () => {
    const { api } = setup();
    await expect(api.hub.download({ repoId: 'not a repo id' })).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('owner/name') });
  });

  it('estimates a run from the model and the resolved settings', async () => {
    const { api } = setup();
    const e = await api.runs.estimate({ modelDir: DIR, settings: { bits: 2 } });
    expect(e.settings.codebook).toBe('e8p');
    expect(e.layers).toBe(stories260k.linears.length);
    expect(e.outputBytes).toBe(stories260k.sizes.find((s) => s.bits === 2)!.bytes);
    expect(e.seconds.total).toBeGreaterThan(0);
    const four = await api.runs.estimate({ modelDir: DIR, settings: { bits: 4 } });
    expect(four.outputBytes).toBeGreaterThan(e.outputBytes);
    await expect(api.runs.estimate({ modelDir: DIR, settings: { sigma: 50 } })).rejects.toMatchObject({ message: expect.stringMatching(/^Damping σ 50 is out of range/) });
    await expect(api.runs.estimate({ modelDir: '/nowhere', settings: {} })).rejects.toMatchObject({ code: 'NOT_A_MODEL' });
  });

  it('keeps runs: start, layer events, cancel, resume, delete', async () => {
    const { fake, api, runEvents } = setup();
    const run = await api.runs.start({ modelDir: DIR, settings: { bits: 2 } });
    expect(run).toMatchObject({ state: 'queued', layersTotal: 35, modelName: 'stories260k' });
    await Promise.resolve();
    expect(runEvents.at(-1)?.body).toMatchObject({ type: 'state', run: { state: 'queued' } });

    fake.runEvent(run.runId, { type: 'state', run: { ...run, state: 'running' } });
    const layer = { block: 0, name: 'model.layers.0.self_attn.q_proj', kind: 'q' as const, shape: [64, 64] as [number, number], proxyLoss: 0.02, frobeniusError: 0.1, seconds: 0.01, cholesky: 'float32' };
    fake.runEvent(run.runId, { type: 'layer', layer });
    const detail = await api.runs.get({ runId: run.runId });
    expect(detail.layers).toEqual([layer]);
    expect(detail.layersDone).toBe(1);

    expect((await api.runs.cancel({ runId: run.runId })).state).toBe('cancelled');
    expect((await api.runs.resume({ runId: run.runId })).state).toBe('queued');
    await expect(api.runs.resume({ runId: run.runId })).rejects.toMatchObject({ code: 'NOT_RESUMABLE' });
    expect((await api.runs.reveal({ runId: run.runId })).supported).toBe(false);
    await api.runs.delete({ runId: run.runId });
    expect(await api.runs.list()).toEqual([]);
  });

  it('streams chat replies token by token and stops on request', async () => {
    const { fake, api, tokens } = setup();
    const { streamId } = await api.chat.send({ modelDir: DIR, messages: [{ role: 'user', content: 'Once upon a time' }] });
    fake.streamReply(streamId, [' there', ' was', ' a'], false);
    expect(tokens.map((t) => t.type)).toEqual(['token', 'token', 'token']);
    expect(await api.chat.stop({ streamId })).toEqual({ stopped: true });
    const done = tokens.at(-1)!;
    expect(done.type === 'done' && done.text).toBe(' there was a');
    expect(done.type === 'done' && done.stats.stopReason).toBe('cancelled');
    expect(await api.chat.stop({ streamId })).toEqual({ stopped: false });

    const chat = { chatId: 'c1', title: 'Stories', panes: [{ modelDir: DIR, modelName: 'stories260k', messages: [] }], sampling: { temperature: 0, topP: 1, maxTokens: 16, seed: 0 }, updatedAt: new Date().toISOString() };
    await api.chats.save(chat);
    // A chat of an older studio (no system prompt) comes back with the empty one.
    expect(await api.chats.list()).toEqual([{ ...chat, systemPrompt: '' }]);
    await api.chats.delete({ chatId: 'c1' });
    expect(await api.chats.list()).toEqual([]);
  });
});
