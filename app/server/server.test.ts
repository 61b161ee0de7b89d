// The browser face's server with the real services and a real job process: it binds 127.0.0.1 only,
// refuses requests without the per-launch token (401) or from foreign origins (403), rejects invalid
// input through zod, and inspects the stories260k model end to end over the WebSocket contract.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { connectStudio } from '../contract/browser-client.js';
import type { JobEvent } from '../contract/channels.js';
import { StudioError } from '../contract/api.js';
import { projectRoot } from '../util/paths.js';
import { bundleForTest } from '../worker/testing/bundle.js';
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

  it('rejects invalid input through zod with a message naming the field', async () => {
    const studio = connectStudio({ url: server.origin, token: server.token, WebSocket: WebSocket as never });
    try {
      const err = await studio.models.inspect({ source: '' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StudioError);
      expect((err as StudioError).code).toBe('INVALID_INPUT');
      expect((err as StudioError).message).toMatch(/Invalid input for models\.inspect/);
      expect((err as StudioError).message).toMatch(/Give a model folder or a Hugging Face repo id/);
      const limit = await rejection(studio.hub.search({ query: 'llama', limit: 0 }));
      expect(limit.code).toBe('INVALID_INPUT');
      expect(limit.message).toMatch(/limit/);
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

  it('inspects stories260k in the job process, remembers it, and streams job events', async () => {
    const studio = connectStudio({ url: server.origin, token: server.token, WebSocket: WebSocket as never });
    const events: JobEvent[] = [];
    studio.on('job.event', (e) => events.push(e));
    try {
      const inspection = await studio.models.inspect({ source: STORIES });
      expect(inspection.architecture.modelType).toBe('llama');
      expect(inspection.source).toMatchObject({ kind: 'local', path: STORIES });
      expect(inspection.linears.length).toBe(7 * inspection.architecture.numLayers);
      const recent = await studio.models.recent();
      expect(recent[0]).toMatchObject({ path: STORIES, name: 'stories260k', family: inspection.architecture.family, params: inspection.parameters.total });
      const jobs = await studio.jobs.list();
      expect(jobs.find((j) => j.kind === 'inspect')).toMatchObject({ state: 'done', label: 'Inspect stories260k' });
      const mine = events.filter((e) => e.kind === 'inspect').map((e) => e.type);
      expect(mine).toEqual(['started', 'done']);
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
});
