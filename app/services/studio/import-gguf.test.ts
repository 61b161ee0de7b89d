// models.importGguf through the shared services and a real job process: SmolLM2-135M-Instruct's Q4_1
// GGUF converted into <studio home>/models with progress events, the lossy note, re-import into the
// same folder, cancellation that leaves nothing behind, and clear errors for files that are not GGUF.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { EventName, ImportGgufResult, ImportProgress } from '../../contract/channels.js';
import { LOSSY_NOTE } from '../../domain/gguf-import.js';
import { tinyModelGguf, u32 } from '../../testing/gguf.js';
import { bundleForTest } from '../../testing/bundle.js';
import { nodeJobProcesses } from '../jobs/node-process.js';
import { createStudioServices, type StudioServices } from './index.js';

const DATA = path.resolve('..', 'shared', 'data', 'models');
const GGUF = path.join(DATA, 'smollm2-135m-instruct-q4_1', 'SmolLM2-135M-Instruct.Q4_1.gguf');
const NAME = 'SmolLM2-135M-Instruct.Q4_1';
const ctx = { client: 'test' };
let workerPath: string;
const temps: string[] = [];

beforeAll(async () => {
  workerPath = await bundleForTest('app/worker/main.ts', 'worker');
});
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

function studio(onProgress: (e: ImportProgress, services: StudioServices) => void = () => {}) {
  const home = mkdtempSync(path.join(os.tmpdir(), 'quip-import-'));
  temps.push(home);
  const events: ImportProgress[] = [];
  const services: StudioServices = createStudioServices({
    face: 'browser',
    home,
    hub: { endpoint: 'http://127.0.0.1:9', cacheDir: path.join(home, 'hf-hub'), token: '' },
    spawnJob: nodeJobProcesses({ workerPath }),
    send: (event: EventName, payload: unknown) => {
      if (event !== 'models.importProgress') return;
      events.push(payload as ImportProgress);
      onProgress(payload as ImportProgress, services);
    },
  });
  return { services, events, home };
}

async function call<T>(services: StudioServices, channel: string, input?: unknown): Promise<T> {
  const reply = await services.dispatch(channel, input, ctx);
  if (!reply.ok) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
  return reply.value as T;
}

describe('models.importGguf', () => {
  it('imports the Q4_1 GGUF into the studio home with progress, says it is lossy, and re-imports in place', async () => {
    const { services, events, home } = studio();
    try {
      const r = await call<ImportGgufResult>(services, 'models.importGguf', { file: GGUF });
      const dir = path.join(home, 'models', NAME);
      expect(r.inspection.source).toEqual({ kind: 'local', path: dir, repoId: null, revision: null });
      expect(r.inspection.architecture).toMatchObject({ numLayers: 30, hiddenSize: 576 });
      expect(r.inspection.linears).toHaveLength(30 * 7);
      expect(r.lossy).toBe(true);
      expect(r.note).toBe(LOSSY_NOTE);
      expect(existsSync(path.join(dir, 'gguf-import.json'))).toBe(true);

      // The job's start (no fraction yet), then one event per tensor, all for this file and job.
      expect(events[0]).toMatchObject({ file: GGUF, fraction: null, message: `Import ${path.basename(GGUF)}` });
      expect(new Set(events.map((e) => e.jobId)).size).toBe(1);
      const fractions = events.filter((e) => e.fraction !== null).map((e) => e.fraction!);
      expect(fractions.length).toBeGreaterThan(100); // one per tensor
      expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
      expect(fractions.at(-1)).toBe(1);
      expect(events.some((e) => e.message.startsWith('Converting tensors: model.layers.'))).toBe(true);
      const recent = await call<Array<{ path: string; family: string }>>(services, 'models.recent');
      expect(recent[0]).toMatchObject({ path: dir, family: 'Llama' });

      // The same file again replaces its earlier import instead of piling up copies.
      const again = await call<ImportGgufResult>(services, 'models.importGguf', { file: GGUF });
      expect(again.inspection.source.path).toBe(dir);
      expect(readdirSync(path.join(home, 'models')).filter((n) => !n.startsWith('.'))).toEqual([NAME]);
    } finally {
      await services.close();
    }
  }, 120_000);

  it('cancels through jobs.cancel and leaves no model folder', async () => {
    let asked = false;
    const { services, home } = studio((e, s) => {
      if ((e.fraction ?? 0) > 0 && !asked) {
        asked = true;
        void s.dispatch('jobs.cancel', { jobId: e.jobId }, ctx);
      }
    });
    try {
      await expect(call(services, 'models.importGguf', { file: GGUF })).rejects.toMatchObject({ code: 'CANCELLED' });
      expect(asked).toBe(true);
      expect(existsSync(path.join(home, 'models', NAME))).toBe(false);
      expect(readdirSync(path.join(home, 'models'))).toEqual([]);
    } finally {
      await services.close();
    }
  }, 120_000);

  it('a file whose import would not open fails with the bad field named and leaves nothing in the library', async () => {
    const { services, home } = studio();
    try {
      const file = path.join(home, 'zero-context.gguf');
      writeFileSync(file, tinyModelGguf({ metadata: { 'llama.context_length': u32(0) } }).gguf.bytes);
      await expect(call(services, 'models.importGguf', { file })).rejects.toMatchObject({
        code: 'BAD_GGUF',
        message: expect.stringMatching(/zero-context\.gguf: the imported model would not open, so nothing was written: config\.json: max_position_embeddings must be a positive integer \(found 0\).*llama\.context_length/),
      });
      expect(readdirSync(path.join(home, 'models'))).toEqual([]);
      expect(await call<unknown[]>(services, 'models.recent')).toEqual([]);
    } finally {
      await services.close();
    }
  }, 60_000);

  it('says what is wrong with a missing file, a folder and a file that is not GGUF', async () => {
    const { services } = studio();
    try {
      await expect(call(services, 'models.importGguf', { file: '/no/such/model.gguf' })).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('/no/such/model.gguf') });
      await expect(call(services, 'models.importGguf', { file: DATA })).rejects.toMatchObject({ code: 'NOT_A_GGUF', message: expect.stringContaining(DATA) });
      const notGguf = path.join(DATA, 'stories260k', 'config.json');
      await expect(call(services, 'models.importGguf', { file: notGguf })).rejects.toThrow(/config\.json/);
      await expect(call(services, 'models.importGguf', { file: ' ' })).rejects.toThrow(/\.gguf file/);
    } finally {
      await services.close();
    }
  }, 60_000);
});
