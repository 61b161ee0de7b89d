// The browser face's server with the real services and a real job process: it binds 127.0.0.1 only,
// refuses requests without the per-launch token (401) or from foreign origins (403), rejects invalid
// input through zod, and inspects the stories260k model end to end over the WebSocket contract.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { connectStudio } from '../contract/browser-client.js';
import { StudioError } from '../contract/api.js';
import { MAX_MESSAGE_BYTES } from '../contract/limits.js';
import { projectRoot } from '../util/paths.js';
import { bundleForTest } from '../testing/bundle.js';
import { startServer, type StudioServer } from './server.js';

const STORIES = path.resolve(projectRoot(), '..', 'shared', 'data', 'models', 'stories260k');

let server: StudioServer;
let home: string;
let rendererDir: string;

beforeAll(async () => {
  home = mkdtempSync(path.join(os.tmpdir(), 'quip-server-home-'));
  rendererDir = mkdtempSync(path.join(os.tmpdir(), 'quip-server-renderer-'));
  mkdirSync(path.join(rendererDir, 'assets'));
  writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><script type="module" src="/assets/app.js"></script>');
  writeFileSync(path.join(rendererDir, 'assets', 'app.js'), 'console.log("studio")');
  // An offline hub: nothing here may reach the network.
  server = await startServer({ home, rendererDir, workerPath: await bundleForTest('app/worker/main.ts', 'worker'), hub: { endpoint: 'http://127.0.0.1:9', cacheDir: path.join(home, 'hf-cache') } });
});

afterAll(async () => {
  await server?.close();
  rmSync(home, { recursive: true, force: true });
  rmSync(rendererDir, { recursive: true, force: true });
});

function get(pathAndQuery: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: server.port, path: pathAndQuery, headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

async function rejection(p: Promise<unknown>): Promise<StudioError> {
  const err = await p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StudioError);
  return err as StudioError;
}

/** Exceptions nothing caught while `fn` ran: in the real server each one would end the process. */
async function uncaughtDuring(fn: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const record = (err: unknown) => void seen.push(err);
  process.on('uncaughtException', record);
  try {
    await fn();
  } finally {
    process.off('uncaughtException', record);
  }
  return seen;
}

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  return Promise.race([p, new Promise<T>((_r, reject) => setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms))]);
}

/** The HTTP status a WebSocket upgrade gets (101 when it opens). */
function upgradeStatus(query: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api${query}`, { headers });
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', (err) => reject(err));
  });
}

describe('studio server', () => {
  it('listens on 127.0.0.1 only and prints a URL with its token', async () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?token=${server.token}`);
    expect(server.token.length).toBeGreaterThanOrEqual(40);
    const external = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
    if (external) {
      const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
        http.get({ host: external.address, port: server.port, path: '/' }, () => resolve(null)).on('error', (e) => resolve(e));
      });
      expect(err?.code).toBe('ECONNREFUSED');
    }
  });

  it('refuses the UI without the token or with a wrong one (401), and serves it with the token', async () => {
    expect((await get('/')).status).toBe(401);
    expect((await get('/?token=wrong')).status).toBe(401);
    expect((await get(`/?token=${server.token}x`)).status).toBe(401);
    const ok = await get(`/?token=${server.token}`);
    expect(ok.status).toBe(200);
    expect(ok.headers['content-security-policy']).toContain("script-src 'self'");
    const cookie = String(ok.headers['set-cookie']).split(';')[0]!;
    expect(cookie).toContain(server.token);
    // The page's own assets go with the cookie.
    expect((await get('/assets/app.js', { Cookie: cookie })).status).toBe(200);
    expect((await get('/assets/app.js')).status).toBe(401);
    expect((await get(`/../../etc/passwd?token=${server.token}`)).status).not.toBe(200);
  });

  it('refuses a foreign Host or Origin (403)', async () => {
    expect((await get(`/?token=${server.token}`, { Host: 'evil.example' })).status).toBe(403);
    expect((await get(`/?token=${server.token}`, { Origin: 'http://evil.example' })).status).toBe(403);
  });

  it('refuses a WebSocket without the token (401), with a wrong token (401) or from another origin (403)', async () => {
    expect(await upgradeStatus('')).toBe(401);
    expect(await upgradeStatus('?token=nope')).toBe(401);
    expect(await upgradeStatus(`?token=${server.token}`, { Origin: 'http://evil.example' })).toBe(403);
    expect(await upgradeStatus(`?token=${server.token}`, { Origin: server.origin })).toBe(101);
  });

  it('rejects invalid input through zod with a message naming the field, and the field itself', async () => {
    const studio = connectStudio({ url: server.origin, token: server.token, WebSocket: WebSocket as never });
    try {
      const err = await studio.models.inspect({ source: '' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StudioError);
      expect((err as StudioError).code).toBe('INVALID_INPUT');
      expect((err as StudioError).message).toBe('Give a model folder or a Hugging Face repo id.');
      expect((err as StudioError).fields).toEqual([{ path: 'source', label: 'Model folder or repo id', message: 'Give a model folder or a Hugging Face repo id.' }]);
      const limit = await rejection(studio.hub.search({ query: 'llama', limit: 0 }));
      expect(limit.code).toBe('INVALID_INPUT');
      expect(limit.message).toBe('Number of results must be 1 or more.');
      const repo = await rejection(studio.hub.download({ repoId: 'no slash here' }));
      expect(repo.message).toMatch(/owner\/name/);
    } finally {
      studio.close();
    }
  });

  it('answers app.info and says the browser face has no folder dialog', async () => {
    const studio = connectStudio({ url: server.origin, token: server.token, WebSocket: WebSocket as never });
    try {
      const info = await studio.app.info();
      expect(info).toMatchObject({ face: 'browser', studioHome: home, hubEndpoint: 'http://127.0.0.1:9' });
      expect(info.threads).toBeGreaterThan(0);
      expect(await studio.models.pickFolder()).toEqual({ path: null, supported: false });
    } finally {
      studio.close();
    }
  });

  it('inspects stories260k in the job process, remembers it, and lists the job', async () => {
    const studio = connectStudio({ url: server.origin, token: server.token, WebSocket: WebSocket as never });
    try {
      const inspection = await studio.models.inspect({ source: STORIES });
      expect(inspection.architecture.modelType).toBe('llama');
      expect(inspection.source).toMatchObject({ kind: 'local', path: STORIES });
      expect(inspection.linears.length).toBe(7 * inspection.architecture.numLayers);
      const recent = await studio.models.recent();
      expect(recent[0]).toMatchObject({ path: STORIES, name: 'stories260k', family: inspection.architecture.family, params: inspection.parameters.total });
      const jobs = await studio.jobs.list();
      expect(jobs.find((j) => j.kind === 'inspect')).toMatchObject({ state: 'done', label: 'Inspect stories260k' });
      // A folder that is not a model: the engine's message comes through, the studio keeps running.
      const notModel = await rejection(studio.models.inspect({ source: home }));
      expect(notModel.message).toMatch(/config\.json/);
      expect((await studio.models.forget({ path: STORIES })).ok).toBe(true);
      expect(await studio.models.recent()).toEqual([]);
    } finally {
      studio.close();
    }
  });

  it('says clearly when a source is neither a folder nor a repo id', async () => {
    const studio = connectStudio({ url: server.origin, token: server.token, WebSocket: WebSocket as never });
    try {
      const err = await rejection(studio.models.inspect({ source: '/no/such/folder' }));
      expect(err.code).toBe('NOT_FOUND');
      expect(err.message).toMatch(/There is no folder at \/no\/such\/folder/);
    } finally {
      studio.close();
    }
  });

  it('takes a pasted text the size of a long context (over the old 4 MiB frame limit) and saves it', async () => {
    const studio = connectStudio({ url: server.origin, token: server.token, WebSocket: WebSocket as never });
    try {
      const long = 'word '.repeat(800_000); // 4 MB of text, about a 1M-token context's worth
      const pane = { modelDir: '/m', modelName: 'm', messages: [{ role: 'user' as const, content: long }, { role: 'assistant' as const, content: 'ok', stats: null }] };
      const chat = { chatId: 'long', title: 'Long paste', panes: [pane, pane], sampling: { temperature: 0.7, topP: 0.95, maxTokens: 8, seed: 0 }, updatedAt: '2026-01-01T00:00:00.000Z' };
      expect((await studio.chats.save(chat)).chatId).toBe('long');
      const listed = await studio.chats.list();
      expect(listed.find((c) => c.chatId === 'long')?.panes[1]?.messages[0]?.content.length).toBe(long.length);
      expect((await studio.chats.delete({ chatId: 'long' })).ok).toBe(true);
    } finally {
      studio.close();
    }
  });

  it('answers a request over the message limit with a clear "too large" error, and the connection stays usable', async () => {
    const studio = connectStudio({ url: server.origin, token: server.token, WebSocket: WebSocket as never });
    try {
      const huge = '\u0001'.repeat(MAX_MESSAGE_BYTES / 6 + 1024); // 6 bytes each once escaped in JSON
      const err = await rejection(studio.chat.send({ modelDir: '/m', messages: [{ role: 'user', content: huge }] }));
      expect(err.code).toBe('TOO_LARGE');
      expect(err.message).toMatch(/too large to send to the studio server \(64\.0 MiB\): the limit is 64 MiB\. Shorten the text/);
      expect((await studio.app.info()).face).toBe('browser');
    } finally {
      studio.close();
    }
  });

  it('closes only the socket that sends a message over the limit (1009); the server keeps serving others', async () => {
    const uncaught = await uncaughtDuring(async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api?token=${server.token}`, { maxPayload: 0 });
      await new Promise((resolve, reject) => ws.on('open', resolve).on('error', reject));
      const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
      ws.on('error', () => {});
      ws.send(Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20), { binary: false });
      expect(await within(10_000, 'the close', closed)).toBe(1009);
    });
    expect(uncaught).toEqual([]);
    const studio = connectStudio({ url: server.origin, token: server.token, WebSocket: WebSocket as never });
    try {
      expect((await studio.app.info()).face).toBe('browser');
    } finally {
      studio.close();
    }
  });

  it('survives malformed frames and a reset on a raw socket after the upgrade, and a URL that does not parse', async () => {
    const upgraded = (): Promise<net.Socket> =>
      new Promise((resolve, reject) => {
        const sock = net.connect(server.port, '127.0.0.1');
        sock.on('error', reject);
        sock.write(
          `GET /api?token=${server.token} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        );
        sock.once('data', (d) => (String(d).startsWith('HTTP/1.1 101') ? resolve(sock) : reject(new Error(String(d)))));
      });
    /** The close code the server sends back (its close frame: 0x88, length, code). */
    const closeCode = (sock: net.Socket) =>
      within(
        10_000,
        'the server closing the socket',
        new Promise<number>((resolve) => {
          sock.on('data', (d) => d[0] === 0x88 && resolve(d.readUInt16BE(2)));
          sock.on('error', () => {});
        }),
      );
    const uncaught = await uncaughtDuring(async () => {
      // An unmasked frame (clients must mask), then reserved bits and an invalid opcode.
      for (const garbage of [Buffer.from([0x81, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]), Buffer.from([0xff, 0xff, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01])]) {
        const sock = await upgraded();
        const closed = closeCode(sock);
        sock.write(garbage);
        expect(await closed).toBe(1002); // protocol error, for this socket only
        sock.destroy();
      }
      // A peer that vanishes mid-frame.
      const reset = await upgraded();
      reset.write(Buffer.from([0x81, 0xfe, 0xff]));
      reset.resetAndDestroy();
      await new Promise((r) => setTimeout(r, 100));
    });
    expect(uncaught).toEqual([]);
    // "//" is not a URL the server can parse: 400, not a crash.
    expect((await get('//')).status).toBe(400);
    const studio = connectStudio({ url: server.origin, token: server.token, WebSocket: WebSocket as never });
    try {
      expect((await studio.app.info()).face).toBe('browser');
    } finally {
      studio.close();
    }
  });
});
