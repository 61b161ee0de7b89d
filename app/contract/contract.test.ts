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
import { eventNames, events, requestNames, requests } from './channels.js';
import { ipcEventChannel, ipcRequestChannel } from './ipc.js';

const home = mkdtempSync(path.join(os.tmpdir(), 'quip-contract-'));
const services = createStudioServices({ face: 'browser', home, spawnJob: nodeJobProcesses(), send: () => {} });
afterAll(async () => {
  await services.close();
  rmSync(home, { recursive: true, force: true });
});

const sorted = (xs: Iterable<string>) => [...xs].sort();

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
    expect(sorted(eventNames)).toEqual(['chat.token', 'download.progress', 'job.event', 'run.event']);
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
  it('rejects invalid input through zod, naming the field, before any handler runs', async () => {
    const reply = await services.dispatch('models.forget', { path: 42 }, { client: 't' });
    expect(reply.ok).toBe(false);
    if (!reply.ok) {
      expect(reply.error.code).toBe('INVALID_INPUT');
      expect(reply.error.message).toMatch(/^Invalid input for models\.forget:/);
      expect(reply.error.message).toMatch(/path/);
    }
    const extra = await services.dispatch('models.recent', { sneaky: true }, { client: 't' });
    expect(extra).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    expect(await services.dispatch('shell.exec', {}, { client: 't' })).toMatchObject({ ok: false, error: { code: 'UNKNOWN_CHANNEL' } });
    expect(await services.dispatch('toString', {}, { client: 't' })).toMatchObject({ ok: false, error: { code: 'UNKNOWN_CHANNEL' } });
  });

  it('answers valid requests with schema-checked values', async () => {
    expect(await services.dispatch('models.recent', undefined, { client: 't' })).toEqual({ ok: true, value: [] });
    expect(await services.dispatch('settings.update', { threads: 3 }, { client: 't' })).toEqual({ ok: true, value: { threads: 3 } });
    expect(await services.dispatch('settings.update', {}, { client: 't' })).toEqual({ ok: true, value: { threads: 3 } });
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
