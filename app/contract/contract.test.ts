// The contract is the single list of channels: this fails when a channel is missing from the shared
// service handlers (used by the server and Electron main), the main-process IPC registration, the
// preload allow-lists or the generated client — and checks the gates every request passes.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';

import { isTrustedSender, registerStudioIpc } from '../main/ipc.js';
import { studioWebPreferences } from '../main/context.js';
import { allowedEvents, allowedRequests, createIpcTransport } from '../preload/bridge.js';
import { createStudioServices } from '../services/studio/index.js';
import { nodeJobProcesses } from '../services/jobs/node-process.js';
import { createStudioApi, StudioError, type Reply } from './api.js';
import { connectStudio } from './browser-client.js';
import { DownloadId, eventNames, events, requestNames, requests } from './channels.js';
import { ipcEventChannel, ipcRequestChannel } from './ipc.js';
import { MAX_CONVERSATION_CHARS, MAX_MESSAGE_BYTES, nameProblem } from './limits.js';
import { ChatId, ChatSendInput, RunId, StartRunInput } from './runs.js';
import { sampleModelDir } from '../util/paths.js';

const home = mkdtempSync(path.join(os.tmpdir(), 'quip-contract-'));
const services = createStudioServices({ face: 'browser', home, spawnJob: nodeJobProcesses(), send: () => {} });
afterAll(async () => {
  await services.close();
  rmSync(home, { recursive: true, force: true });
});

const sorted = (xs: Iterable<string>) => [...xs].sort();
/** A model folder the estimate can read (the shipped sample's config). */
const STORIES_FOR_GATE = sampleModelDir();

describe('contract', () => {
  it('declares every channel as namespace.method with zod input, output and a doc line', () => {
    expect(requestNames.length).toBeGreaterThanOrEqual(12);
    for (const name of requestNames) {
      expect(name).toMatch(/^[a-z]+\.[a-zA-Z]+$/);
      expect(requests[name].input).toBeInstanceOf(z.ZodType);
      expect(requests[name].output).toBeInstanceOf(z.ZodType);
      expect(requests[name].doc.length).toBeGreaterThan(10);
    }
    for (const name of eventNames) expect(events[name]).toBeInstanceOf(z.ZodType);
    expect(sorted(eventNames)).toEqual(['api.request', 'api.statusChanged', 'chat.token', 'download.progress', 'models.importProgress', 'models.loadedChanged', 'run.event']);
  });

  it('has a service handler for every request (the server and Electron main share them)', () => {
    expect(sorted(Object.keys(services.handlers))).toEqual(sorted(requestNames));
  });

  it('registers an IPC handler in main for every request, and nothing else', () => {
    const registered: string[] = [];
    registerStudioIpc({ handle: (channel) => void registered.push(channel) }, services.dispatch);
    expect(sorted(registered)).toEqual(sorted(requestNames.map(ipcRequestChannel)));
  });

  it('lets the preload pass exactly the contract channels', async () => {
    expect(sorted(allowedRequests)).toEqual(sorted(requestNames));
    expect(sorted(allowedEvents)).toEqual(sorted(eventNames));
    const invoked: string[] = [];
    const subscribed: string[] = [];
    const transport = createIpcTransport({
      invoke: async (channel) => (invoked.push(channel), { ok: true, value: null }),
      on: (channel) => void subscribed.push(channel),
      removeListener: () => {},
    });
    for (const name of requestNames) await transport.invoke(name, undefined);
    for (const name of eventNames) transport.subscribe(name, () => {});
    expect(invoked).toEqual(requestNames.map(ipcRequestChannel));
    expect(subscribed).toEqual(eventNames.map(ipcEventChannel));
    const refused = await transport.invoke('fs.readFile' as never, { path: '/etc/passwd' });
    expect(refused).toMatchObject({ ok: false, error: { code: 'UNKNOWN_CHANNEL' } });
    expect(invoked).toHaveLength(requestNames.length); // never reached ipcRenderer
    expect(() => transport.subscribe('shell.exec' as never, () => {})).toThrow(/Unknown studio event/);
  });

  it('generates a client method for every request and a subscription for every event', async () => {
    const calls: Array<[string, unknown]> = [];
    const subs: string[] = [];
    const api = createStudioApi({
      invoke: async (channel, input): Promise<Reply> => (calls.push([channel, input]), { ok: true, value: channel }),
      subscribe: (event) => (subs.push(event), () => {}),
    });
    for (const name of requestNames) {
      const [ns, method] = name.split('.') as [string, string];
      const fn = (api as unknown as Record<string, Record<string, (i?: unknown) => Promise<unknown>>>)[ns]?.[method];
      expect(fn, name).toBeTypeOf('function');
      expect(await fn!({ probe: name })).toBe(name);
    }
    expect(calls.map(([c]) => c)).toEqual(requestNames);
    for (const name of eventNames) api.on(name, () => {});
    expect(subs).toEqual(eventNames);
    expect(() => api.on('nope' as never, () => {})).toThrow(StudioError);
  });

  it('turns an error reply into a StudioError with its message and code', async () => {
    const api = createStudioApi({ invoke: async () => ({ ok: false, error: { message: 'No such folder: /x', code: 'NOT_FOUND' } }), subscribe: () => () => {} });
    await expect(api.models.recent()).rejects.toMatchObject({ name: 'StudioError', message: 'No such folder: /x', code: 'NOT_FOUND' });
  });
});

describe('the request gate', () => {
  it('rejects invalid input through zod, naming the field as the form labels it, before any handler runs', async () => {
    const reply = await services.dispatch('models.forget', { path: 42 }, { client: 't' });
    expect(reply.ok).toBe(false);
    if (!reply.ok) {
      expect(reply.error.code).toBe('INVALID_INPUT');
      expect(reply.error.message).toBe('Model folder must be text.');
      expect(reply.error.fields).toEqual([{ path: 'path', label: 'Model folder', message: 'Model folder must be text.' }]);
    }
    // What New run sends for "abc" in Samples (a number field that is not a number arrives as null):
    // the form's label and what is allowed, with the field's path, never zod's wording or the channel.
    const samples = await services.dispatch('runs.estimate', { modelDir: '/m', settings: { calibSamples: null } }, { client: 't' });
    expect(samples).toEqual({
      ok: false,
      error: { code: 'INVALID_INPUT', message: 'Calibration samples must be a number.', fields: [{ path: 'settings.calibSamples', label: 'Calibration samples', message: 'Calibration samples must be a number.' }] },
    });
    // A value the domain's rules refuse (0 samples) arrives the same way, with its path.
    const zero = await services.dispatch('runs.estimate', { modelDir: STORIES_FOR_GATE, settings: { calibSamples: 0 } }, { client: 't' });
    expect(zero).toMatchObject({ ok: false, error: { code: 'BAD_SETTING', fields: [{ path: 'settings.calibSamples', label: 'Calibration samples' }] } });
    if (!zero.ok) expect(zero.error.message).toMatch(/^Calibration samples 0 is out of range: use a whole number from 1/);
    const windows = await services.dispatch('runs.estimate', { modelDir: STORIES_FOR_GATE, settings: {}, evaluation: { windows: -1 } }, { client: 't' });
    expect(windows).toMatchObject({ ok: false, error: { fields: [{ path: 'evaluation.windows', label: 'Perplexity windows' }] } });
    // Messages a schema gives for people stay as they are; a field without a label reads as its name.
    const empty = await services.dispatch('models.inspect', { source: '  ' }, { client: 't' });
    expect(empty).toMatchObject({ ok: false, error: { message: 'Give a model folder or a Hugging Face repo id.' } });
    const limit = await services.dispatch('hub.search', { query: 'x', limit: 0 }, { client: 't' });
    expect(limit).toMatchObject({ ok: false, error: { message: 'Number of results must be 1 or more.' } });
    const extra = await services.dispatch('models.recent', { sneaky: true }, { client: 't' });
    expect(extra).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    expect(await services.dispatch('shell.exec', {}, { client: 't' })).toMatchObject({ ok: false, error: { code: 'UNKNOWN_CHANNEL' } });
    expect(await services.dispatch('toString', {}, { client: 't' })).toMatchObject({ ok: false, error: { code: 'UNKNOWN_CHANNEL' } });
  });

  it('answers valid requests with schema-checked values', async () => {
    expect(await services.dispatch('models.recent', undefined, { client: 't' })).toEqual({ ok: true, value: [] });
    expect(await services.dispatch('settings.update', { threads: 3 }, { client: 't' })).toMatchObject({ ok: true, value: { threads: 3, idleUnloadMinutes: 15, memoryBudgetBytes: null } });
    expect(await services.dispatch('settings.update', {}, { client: 't' })).toMatchObject({ ok: true, value: { threads: 3 } });
    // The local server key is not a setting anyone can write (api.regenerateKey makes a new one).
    expect(await services.dispatch('settings.update', { apiKey: 'chosen-by-a-page-0123456789' }, { client: 't' })).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
  });

  it('accepts IPC only from the main frame of our own pages', async () => {
    const mainFrame = { url: 'studio://app/index.html' };
    const sender = { id: 7, mainFrame };
    const ok = (frame: { url: string } | null, s: object = sender) => isTrustedSender({ sender: s, senderFrame: frame } as never);
    expect(ok(mainFrame)).toBe(true);
    expect(ok({ url: 'studio://app/index.html' })).toBe(false); // a subframe, even on our origin
    expect(ok(null)).toBe(false); // gone or navigated
    for (const url of ['https://evil.example/', 'file:///etc/index.html', 'studio://evil/index.html']) {
      const frame = { url };
      expect(ok(frame, { id: 7, mainFrame: frame }), url).toBe(false);
    }
    // Through the real registration: an untrusted sender is refused, a trusted one is served.
    const handlers = new Map<string, (event: unknown, input: unknown) => Promise<unknown>>();
    registerStudioIpc({ handle: (c, l) => void handlers.set(c, l as never) }, services.dispatch);
    const recent = handlers.get(ipcRequestChannel('models.recent'))!;
    expect(await recent({ sender: { id: 1, mainFrame: { url: 'https://evil.example/' } }, senderFrame: { url: 'https://evil.example/' } }, undefined)).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    expect(await recent({ sender, senderFrame: mainFrame }, undefined)).toEqual({ ok: true, value: [] });
  });

  it('keeps the window isolated and sandboxed without Node', () => {
    expect(studioWebPreferences('/app/dist')).toMatchObject({ contextIsolation: true, nodeIntegration: false, sandbox: true, webviewTag: false, preload: path.join('/app/dist', 'preload', 'preload.cjs') });
  });
});

describe('names and ids that become paths', () => {
  const first = (r: { success: boolean; error?: { issues: Array<{ message: string }> } }) => (r.success ? null : r.error!.issues[0]!.message);
  const runName = (name: string) => first(StartRunInput.safeParse({ modelDir: '/m', settings: {}, name }));

  it('refuses a run name that is not one safe folder name, saying what to use', () => {
    expect(runName('..')).toBe('A run name can\'t be ".."; use letters, digits, "-", "_" and ".".');
    expect(runName('.')).toBe('A run name can\'t be "."; use letters, digits, "-", "_" and ".".');
    expect(runName('a/b')).toMatch(/can't contain "\/" or "\\"/);
    expect(runName('..\\x')).toMatch(/can't contain "\/" or "\\"/);
    expect(runName('.studio')).toMatch(/can't start or end with a space or a dot/);
    expect(runName('x..')).toMatch(/can't start or end with a space or a dot/);
    for (const reserved of ['CON', 'nul', 'Com1', 'LPT9', 'aux.tar']) expect(runName(reserved), reserved).toMatch(/device name on Windows/);
    expect(runName('a\u0000b')).toMatch(/control characters/);
    expect(runName('a\tb')).toMatch(/control characters/);
    expect(runName('a:b')).toMatch(/Windows forbids/);
    expect(runName('héllo')).toMatch(/can't contain "é"/);
    expect(runName('run.partial-0a1b')).toMatch(/partial/);
    expect(runName('x'.repeat(121))).toMatch(/at most 120 characters/);
    // Good names, and surrounding spaces (trimmed) are fine.
    for (const ok of ['stories-2bit', 'v1.2_final', ' padded ', 'a..b', 'CONSOLE', 'x'.repeat(120)]) expect(runName(ok), ok).toBeNull();
  });

  it('refuses run, chat and download ids that are paths or unsafe names', () => {
    for (const id of ['', '.', '..', '../x', '../../elsewhere', 'a/b', 'a\\b', '/abs', 'x\u0000', ' x', 'x.', 'CON', 'é'.repeat(101)]) {
      expect(RunId.safeParse({ runId: id }).success, JSON.stringify(id)).toBe(false);
      expect(ChatId.safeParse({ chatId: id }).success, JSON.stringify(id)).toBe(false);
      expect(DownloadId.safeParse({ downloadId: id }).success, JSON.stringify(id)).toBe(false);
    }
    // A CLI run's folder may hold spaces or other letters; its id still works.
    for (const id of ['stories-2bit', 'My run (2)', 'modèle', 'é'.repeat(100)]) expect(RunId.safeParse({ runId: id }).success, id).toBe(true);
    expect(DownloadId.safeParse({ downloadId: '0b6f1a2e-6f0e-4b8e-9c1c-1f2d3e4f5a6b' }).success).toBe(true);
    expect(nameProblem('é'.repeat(101), 'name')).toMatch(/at most 200 bytes/);
  });

  it('bounds chat text by a long context, not by the socket: 4 Mi characters go, more is refused clearly', () => {
    const chat = (content: string, n = 1) => ChatSendInput.safeParse({ modelDir: '/m', messages: Array.from({ length: n }, () => ({ role: 'user', content })) });
    expect(chat('x'.repeat(MAX_CONVERSATION_CHARS)).success).toBe(true);
    expect(first(chat('x'.repeat(MAX_CONVERSATION_CHARS / 2 + 1), 2))).toMatch(/more than the 4,194,304 \(about a 1M-token context\)/);
    expect(chat('x'.repeat(MAX_CONVERSATION_CHARS + 1)).success).toBe(false);
    // The worst case the schema lets through fits one WebSocket message: a two-pane chat, every
    // character a control character (6 bytes in JSON), plus the messages' structure.
    expect(2 * (6 * MAX_CONVERSATION_CHARS + 20_000 * 250)).toBeLessThan(MAX_MESSAGE_BYTES);
  });

  it('the browser client reports a socket closed for a too-large message (1009) as TOO_LARGE, not a silent disconnect', async () => {
    class FakeSocket {
      static last: FakeSocket;
      readyState = 0;
      onopen: ((ev: unknown) => void) | null = null;
      onclose: ((ev: unknown) => void) | null = null;
      onerror: ((ev: unknown) => void) | null = null;
      onmessage: ((ev: { data: unknown }) => void) | null = null;
      constructor() {
        FakeSocket.last = this;
        setTimeout(() => ((this.readyState = 1), this.onopen?.({})), 0);
      }
      send() {
        // The server's answer to a message over its limit.
        setTimeout(() => ((this.readyState = 3), this.onclose?.({ code: 1009, reason: '' })), 0);
      }
      close() {}
    }
    const studio = connectStudio({ url: 'ws://127.0.0.1:1', token: 't', WebSocket: FakeSocket as never });
    const err = await studio.app.info().then(
      () => null,
      (e: unknown) => e as StudioError,
    );
    expect(err).toBeInstanceOf(StudioError);
    expect(err).toMatchObject({ code: 'TOO_LARGE', message: expect.stringMatching(/too large to send to the studio server: the limit is 64 MiB\. Shorten the text/) });
    studio.close();
  });
});
