// The studio's "Local server" switch (LocalApiService): a random key per studio home, kept in its
// settings; on: a real OpenAI-compatible server on the chosen port answering with that key and
// logging each request (api.request events); a new key replaces the old at once; a port in use is
// said plainly; off: the port refuses connections.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';

import type { EventName } from '../../contract/channels.js';
import { ApiSetInput } from '../../contract/local-api.js';
import { checkedEmit } from '../dispatch.js';
import { Library } from '../library/library.js';
import type { ModelManager } from '../models/manager.js';
import { LocalApiService } from './control.js';

let home: string;
let events: Array<{ event: EventName; payload: unknown }>;
let service: LocalApiService;

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

beforeEach(() => {
  home = mkdtempSync(path.join(os.tmpdir(), 'quip-api-control-'));
  events = [];
  service = new LocalApiService({
    models: {} as ModelManager,
    library: new Library(home),
    emit: checkedEmit((event, payload) => events.push({ event, payload })),
    listModels: async () => [{ id: 'stories260k', dir: '/models/stories260k', created: 1 }],
  });
});

afterEach(async () => {
  await service.close();
  rmSync(home, { recursive: true, force: true });
});

it('makes one random key per studio home and keeps it in its settings', async () => {
  const a = await service.status();
  expect(a).toMatchObject({ running: false, baseUrl: null, host: '127.0.0.1', port: 11435, exposed: false, error: null, log: [] });
  expect(a.apiKey).toMatch(/^quip-[\w-]{30,}$/);
  expect(JSON.parse(readFileSync(path.join(home, 'settings.json'), 'utf8')).apiKey).toBe(a.apiKey);
  expect((await service.status()).apiKey).toBe(a.apiKey);
});

it('serves with the key on the chosen port, logs each request, takes a new key at once, and refuses connections once off', async () => {
  const port = await freePort();
  const on = await service.set({ enabled: true, port });
  expect(on).toMatchObject({ running: true, baseUrl: `http://127.0.0.1:${port}/v1`, port, exposed: false });
  const models = await fetch(`${on.baseUrl}/models`, { headers: { Authorization: `Bearer ${on.apiKey}` } });
  expect(models.status).toBe(200);
  expect(((await models.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id)).toEqual(['stories260k']);
  const logged = events.filter((e) => e.event === 'api.request').map((e) => e.payload);
  expect(logged).toMatchObject([{ method: 'GET', path: '/v1/models', status: 200 }]);
  expect((await service.status()).log).toHaveLength(1);

  // The port is kept for next time.
  expect(JSON.parse(readFileSync(path.join(home, 'settings.json'), 'utf8')).apiPort).toBe(port);

  const renewed = await service.regenerateKey();
  expect(renewed.apiKey).not.toBe(on.apiKey);
  expect(renewed.running).toBe(true);
  expect((await fetch(`${on.baseUrl}/models`, { headers: { Authorization: `Bearer ${on.apiKey}` } })).status).toBe(401);
  expect((await fetch(`${on.baseUrl}/models`, { headers: { Authorization: `Bearer ${renewed.apiKey}` } })).status).toBe(200);

  const off = await service.set({ enabled: false });
  expect(off).toMatchObject({ running: false, baseUrl: null });
  await expect(fetch(`${on.baseUrl}/models`)).rejects.toThrow();
  expect(events.filter((e) => e.event === 'api.statusChanged').map((e) => (e.payload as { running: boolean }).running)).toEqual([true, true, false]);
});

it('says so when the port is in use, and starts on another', async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const taken = (blocker.address() as net.AddressInfo).port;
  try {
    const s = await service.set({ enabled: true, port: taken });
    expect(s.running).toBe(false);
    expect(s.error).toBe(`Port ${taken} is in use by another program; choose another port.`);
    const ok = await service.set({ enabled: true, port: await freePort() });
    expect(ok).toMatchObject({ running: true, error: null });
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()));
  }
});

it('reports a server on another address than loopback as exposed', async () => {
  const s = await service.set({ enabled: true, port: await freePort(), host: '0.0.0.0' });
  expect(s).toMatchObject({ running: true, host: '0.0.0.0', exposed: true });
  await service.set({ enabled: false, host: '127.0.0.1' });
  expect((await service.status()).exposed).toBe(false);
});

it('sends CORS headers only for the one origin chosen, and the contract takes nothing but an origin there', async () => {
  for (const bad of ['http://a.example\r\nSet-Cookie: x=1', 'javascript:alert(1)', 'a.example', '']) {
    expect(ApiSetInput.safeParse({ enabled: true, cors: bad }).success).toBe(false);
  }
  const off = await service.set({ enabled: true, port: await freePort() });
  expect((await fetch(`${off.baseUrl}/models`, { headers: { Authorization: `Bearer ${off.apiKey}` } })).headers.get('access-control-allow-origin')).toBeNull();
  const on = await service.set({ enabled: true, cors: 'http://localhost:3000' });
  expect(on.cors).toBe('http://localhost:3000');
  expect((await fetch(`${on.baseUrl}/models`, { headers: { Authorization: `Bearer ${on.apiKey}` } })).headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
});
