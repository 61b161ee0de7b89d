// The shared services against a mock hub on 127.0.0.1 and a real job process: search, download with
// progress events (done, cancelled and resumed, failed), and inspecting a hub id from the cache.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { DownloadProgress, EventName } from '../../contract/channels.js';
import { bundleForTest } from '../../testing/bundle.js';
import { defaultMockRepos, startMockHub, type MockHub } from '../../testing/mock-hub.js';
import { nodeJobProcesses } from '../jobs/node-process.js';
import { createStudioServices, type StudioServices } from './index.js';

let hub: MockHub;
let workerPath: string;
const temps: string[] = [];
const ctx = { client: 'test' };

beforeAll(async () => {
  hub = await startMockHub({ repos: defaultMockRepos() });
  workerPath = await bundleForTest('app/worker/main.ts', 'worker');
});
afterAll(async () => {
  await hub?.close();
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

function studio(): { services: StudioServices; progress: DownloadProgress[]; home: string } {
  const home = mkdtempSync(path.join(os.tmpdir(), 'quip-services-'));
  temps.push(home);
  const progress: DownloadProgress[] = [];
  const services = createStudioServices({
    face: 'browser',
    home,
    hub: { endpoint: hub.url, cacheDir: path.join(home, 'hf-hub'), token: '' },
    spawnJob: nodeJobProcesses({ workerPath }),
    send: (event: EventName, payload: unknown) => {
      if (event === 'download.progress') progress.push(payload as DownloadProgress);
    },
  });
  return { services, progress, home };
}

async function call<T>(services: StudioServices, channel: string, input?: unknown): Promise<T> {
  const reply = await services.dispatch(channel, input, ctx);
  if (!reply.ok) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
  return reply.value as T;
}

function until(progress: DownloadProgress[], id: string, state: DownloadProgress['state']): Promise<DownloadProgress> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const t = setInterval(() => {
      const hit = progress.find((p) => p.downloadId === id && p.state === state);
      if (hit) (clearInterval(t), resolve(hit));
      else if (Date.now() - started > 60_000) (clearInterval(t), reject(new Error(`no ${state} event for ${id}: ${JSON.stringify(progress.at(-1))}`)));
    }, 10);
  });
}

describe('studio services with a mock hub', () => {
  it('searches, downloads with progress, marks the model cached and inspects it by repo id', async () => {
    const { services, progress } = studio();
    try {
      const found = await call<Array<{ id: string; downloads: number; cached: boolean }>>(services, 'hub.search', { query: 'stories' });
      expect(found.find((m) => m.id === 'test-org/stories260k')).toMatchObject({ downloads: 1234, cached: false });

      const { downloadId } = await call<{ downloadId: string }>(services, 'hub.download', { repoId: 'test-org/stories260k' });
      // Asking again while it runs joins the same download.
      expect(await call(services, 'hub.download', { repoId: 'test-org/stories260k' })).toEqual({ downloadId });
      const done = await until(progress, downloadId, 'done');
      expect(done.dir && existsSync(path.join(done.dir, 'config.json'))).toBe(true);
      expect(done.bytesDone).toBe(done.bytesTotal);
      expect(done.bytesTotal).toBeGreaterThan(0);
      const mine = progress.filter((p) => p.downloadId === downloadId);
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.bytesDone).toBeGreaterThanOrEqual(mine[i - 1]!.bytesDone);

      const again = await call<Array<{ id: string; cached: boolean }>>(services, 'hub.search', { query: 'stories' });
      expect(again.find((m) => m.id === 'test-org/stories260k')?.cached).toBe(true);

      const inspection = await call<{ source: { kind: string; repoId: string; path: string } }>(services, 'models.inspect', { source: 'test-org/stories260k' });
      expect(inspection.source).toMatchObject({ kind: 'hub', repoId: 'test-org/stories260k', path: done.dir });
      expect((await call<Array<{ repoId: string | null; name: string }>>(services, 'models.recent'))[0]).toMatchObject({ repoId: 'test-org/stories260k', name: 'test-org/stories260k' });
    } finally {
      await services.close();
    }
  });

  it('cancels a download (state cancelled), then resumes it to completion', async () => {
    const { services, progress } = studio();
    hub.faults.bytesPerSecond = 64 * 1024;
    try {
      const { downloadId } = await call<{ downloadId: string }>(services, 'hub.download', { repoId: 'test-org/stories260k' });
      await new Promise<void>((resolve) => {
        const t = setInterval(() => progress.some((p) => p.downloadId === downloadId && p.file === 'model.safetensors' && p.bytesDone > 100_000) && (clearInterval(t), resolve()), 10);
      });
      expect(await call(services, 'hub.cancelDownload', { downloadId })).toEqual({ ok: true });
      const cancelled = await until(progress, downloadId, 'cancelled');
      expect(cancelled.bytesDone).toBeLessThan(cancelled.bytesTotal);
      await expect(call(services, 'hub.cancelDownload', { downloadId })).rejects.toMatchObject({ code: 'NOT_FOUND' });

      hub.faults.bytesPerSecond = undefined;
      const requestsBefore = hub.requests.length;
      const second = await call<{ downloadId: string }>(services, 'hub.download', { repoId: 'test-org/stories260k' });
      expect(second.downloadId).not.toBe(downloadId);
      const done = await until(progress, second.downloadId, 'done');
      expect(existsSync(path.join(done.dir!, 'model.safetensors'))).toBe(true);
      // The weights continued from where they stopped.
      expect(hub.requests.slice(requestsBefore).some((r) => r.range !== null && r.url.includes('model.safetensors'))).toBe(true);
    } finally {
      hub.faults.bytesPerSecond = undefined;
      await services.close();
    }
  });

  it('reports a repo that does not exist as an error event with the hub message', async () => {
    const { services, progress } = studio();
    try {
      const { downloadId } = await call<{ downloadId: string }>(services, 'hub.download', { repoId: 'test-org/no-such-model' });
      const failed = await until(progress, downloadId, 'error');
      expect(failed.error).toMatch(/test-org\/no-such-model/);
      await expect(call(services, 'models.inspect', { source: 'test-org/no-such-model' })).rejects.toThrow(/test-org\/no-such-model/);
    } finally {
      await services.close();
    }
  });
});
