// The chat store against the in-memory StudioApi: a streamed reply lands in the conversation (in
// batches), stop ends it, split view sends one prompt to two models, and chats are saved to the
// studio home after every reply (and listed again by a new store, as after a restart).
import { describe, expect, it, vi } from 'vitest';
import { createFakeStudio } from '../api/fake';
import { stories260k } from '../api/fixtures';
import { createChatStore } from './chat';

const DIR = stories260k.source.path;
const OTHER = '/models/stories260k-copy';

function setup() {
  const fake = createFakeStudio({ models: { [DIR]: stories260k, [OTHER]: { ...stories260k, source: { ...stories260k.source, path: OTHER } } } });
  const store = createChatStore(fake.api);
  store.getState().start();
  store.getState().setModel(0, DIR, 'stories260k');
  return { fake, store };
}

const openStreams = (fake: ReturnType<typeof setup>['fake']) => [...fake.streams.keys()];

describe('chat store', () => {
  it('streams a reply into the conversation and saves the chat', async () => {
    const { fake, store } = setup();
    const sent = store.getState().send('Once upon a time');
    await vi.waitFor(() => expect(openStreams(fake)).toHaveLength(1));
    const [id] = openStreams(fake);
    expect(store.getState().panes[0]!.streamId).not.toBeNull();
    fake.streamReply(id!, [' there', ' was', ' a', ' dog.']);
    await sent;
    const pane = store.getState().panes[0]!;
    expect(pane.messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'Once upon a time'],
      ['assistant', ' there was a dog.'],
    ]);
    expect(pane.messages[1]!.stats?.stopReason).toBe('eos');
    expect(pane.streamId).toBeNull();
    // Saved in the studio home; a new store (a restart) lists it.
    expect([...fake.chats.values()].map((c) => c.title)).toEqual(['Once upon a time']);
    const again = createChatStore(fake.api);
    again.getState().start();
    await vi.waitFor(() => expect(again.getState().saved).toHaveLength(1));
    again.getState().openChat(store.getState().chatId);
    expect(again.getState().panes[0]!.messages[1]!.content).toBe(' there was a dog.');
  });

  it('stop ends the reply with what was generated; the history goes with the next message', async () => {
    const { fake, store } = setup();
    const sent = store.getState().send('Tell me a story');
    await vi.waitFor(() => expect(openStreams(fake)).toHaveLength(1));
    const [id] = openStreams(fake);
    await vi.waitFor(() => expect(store.getState().panes[0]!.streamId).toBe(id));
    fake.streamReply(id!, ['Once', ' upon'], false);
    await store.getState().stop();
    await sent;
    const m = store.getState().panes[0]!.messages[1]!;
    expect(m.content).toBe('Once upon');
    expect(m.stats?.stopReason).toBe('cancelled');
    const next = store.getState().send('Go on');
    await vi.waitFor(() => expect(fake.calls.filter((c) => c.channel === 'chat.send')).toHaveLength(2));
    const input = fake.calls.filter((c) => c.channel === 'chat.send')[1]!.input as { messages: Array<{ role: string; content: string }> };
    expect(input.messages.map((x) => x.content)).toEqual(['Tell me a story', 'Once upon', 'Go on']);
    for (const s of openStreams(fake)) fake.streamReply(s, ['.']);
    await next;
  });

  it('split view sends one prompt to two models side by side', async () => {
    const { fake, store } = setup();
    store.getState().setSplit(true);
    store.getState().setModel(1, OTHER, 'copy');
    const sent = store.getState().send('Hello');
    await vi.waitFor(() => expect(openStreams(fake)).toHaveLength(2));
    const dirs = fake.calls.filter((c) => c.channel === 'chat.send').map((c) => (c.input as { modelDir: string }).modelDir);
    expect(dirs.sort()).toEqual([DIR, OTHER].sort());
    const [a, b] = openStreams(fake);
    fake.streamReply(a!, ['one']);
    fake.streamReply(b!, ['two']);
    await sent;
    expect(store.getState().panes.map((p) => p.messages[1]!.content).sort()).toEqual(['one', 'two']);
    expect([...fake.chats.values()][0]!.panes).toHaveLength(2);
  });

  it('a failed reply shows its reason in the conversation and the chat goes on', async () => {
    const { fake, store } = setup();
    fake.failNext('chat.send', '/models/x has no config.json, so it is not a model folder.', 'NOT_A_MODEL');
    await store.getState().send('Hi');
    expect(store.getState().panes[0]!.messages[1]!.error?.message).toContain('not a model folder');
    expect(store.getState().panes[0]!.streamId).toBeNull();
  });

  it('keeps the system prompt with the chat: sent first, saved, and back when the chat is opened again', async () => {
    const { fake, store } = setup();
    store.getState().setSystemPrompt('Answer in one sentence.');
    const sent = store.getState().send('Who are you?');
    await vi.waitFor(() => expect(openStreams(fake)).toHaveLength(1));
    const input = fake.calls.find((c) => c.channel === 'chat.send')!.input as { messages: Array<{ role: string; content: string }>; conversationId: string };
    expect(input.messages).toEqual([
      { role: 'system', content: 'Answer in one sentence.' },
      { role: 'user', content: 'Who are you?' },
    ]);
    // The loaded model keeps this conversation's cache under the chat and pane.
    expect(input.conversationId).toBe(`${store.getState().chatId}:0`);
    fake.streamReply(openStreams(fake)[0]!, ['A model.']);
    await sent;
    expect(store.getState().panes[0]!.context).toEqual({ used: 6 + 5 + 2, length: 512 });
    const again = createChatStore(fake.api);
    again.getState().start();
    await vi.waitFor(() => expect(again.getState().saved).toHaveLength(1));
    again.getState().openChat(store.getState().chatId);
    expect(again.getState().systemPrompt).toBe('Answer in one sentence.');
    expect(again.getState().panes[0]!.context).toEqual({ used: 13, length: 512 });
    again.getState().newChat();
    expect(again.getState().systemPrompt).toBe('');
  });

  it('a message too long even alone is not sent, and nothing of the conversation is cut', async () => {
    const { fake, store } = setup();
    const first = store.getState().send('short');
    await vi.waitFor(() => expect(openStreams(fake)).toHaveLength(1));
    fake.streamReply(openStreams(fake)[0]!, ['ok']);
    await first;
    fake.context.length = 8;
    await store.getState().send('a b c d e f g h i j');
    const full = store.getState().contextFull!;
    expect(full).toMatchObject({ prompt: 'a b c d e f g h i j', alone: false, panes: [{ promptTokens: 3 + 3 + 12, contextLength: 8 }] });
    expect(store.getState().panes[0]!.messages.map((m) => m.content)).toEqual(['short', 'ok']);
    await store.getState().dropOldestAndSend();
    // Dropping every older turn was not enough: it says so, and still sends nothing.
    expect(store.getState().contextFull).toMatchObject({ alone: true });
    expect(fake.calls.filter((c) => c.channel === 'chat.send')).toHaveLength(1);
  });

  it('a count that fails (the model cannot load) lets the send go on, and the reply says why', async () => {
    const { fake, store } = setup();
    fake.failNext('chat.count', 'stories260k could not be loaded: out of memory', 'LOAD_FAILED');
    const sent = store.getState().send('Hi');
    await vi.waitFor(() => expect(openStreams(fake)).toHaveLength(1));
    fake.streamReply(openStreams(fake)[0]!, ['Hello.']);
    await sent;
    expect(store.getState().panes[0]!.messages[1]!.content).toBe('Hello.');
  });

  it('follows the loaded models and the local server from their events', async () => {
    const { fake, store } = setup();
    await store.getState().loadServer();
    expect(store.getState().server?.running).toBe(false);
    await store.getState().setServer({ enabled: true, port: 18081 });
    expect(store.getState().server?.baseUrl).toBe('http://127.0.0.1:18081/v1');
    fake.apiRequest({ status: 401, error: 'Incorrect API key provided.' });
    expect(store.getState().server?.log[0]).toMatchObject({ status: 401 });
    const key = store.getState().server!.apiKey;
    await store.getState().regenerateKey();
    expect(store.getState().server!.apiKey).not.toBe(key);
    await fake.api.models.load({ modelDir: DIR });
    await vi.waitFor(() => expect(store.getState().loaded?.models.map((m) => m.modelDir)).toEqual([DIR]));
    await store.getState().unload(DIR);
    expect(store.getState().loaded?.models).toEqual([]);
  });

  it('the context meter counts the conversation as it stands, on a loaded model only (never loading one)', async () => {
    const { fake, store } = setup();
    store.getState().setSystemPrompt('Be brief.');
    await store.getState().measure();
    expect(fake.calls.some((c) => c.channel === 'chat.count')).toBe(false);
    expect(store.getState().panes[0]!.context).toBeNull();
    await fake.api.models.load({ modelDir: DIR });
    await vi.waitFor(() => expect(store.getState().loaded?.models).toHaveLength(1));
    await store.getState().measure();
    expect(store.getState().panes[0]!.context).toEqual({ used: 2 + 2, length: 512 });
  });

  it('Stop pressed before the reply has a stream (the model still loading) stops it as soon as it has one', async () => {
    const { fake, store } = setup();
    const release = fake.hold('chat.send');
    const sent = store.getState().send('Hello');
    await vi.waitFor(() => expect(fake.calls.some((c) => c.channel === 'chat.send')).toBe(true));
    expect(store.getState().panes[0]!.streamId).toBe('pending');
    await store.getState().stop();
    release();
    await sent;
    expect(fake.calls.filter((c) => c.channel === 'chat.stop')).toHaveLength(1);
    expect(store.getState().panes[0]!.messages.map((m) => [m.role, m.content, m.stats?.stopReason])).toEqual([
      ['user', 'Hello', undefined],
      ['assistant', '', 'cancelled'],
    ]);
  });
});

