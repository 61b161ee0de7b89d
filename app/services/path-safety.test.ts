// Names and ids that become paths in the studio home (runs, saved chats, imported models, downloads)
// cannot leave their folder: the contract refuses ".", "..", paths and names Windows forbids with a
// clear message, and the services refuse them again where the path is made (childPath), so a caller
// that skips the contract cannot delete or read outside runs/ either. A sentinel in the home and a
// folder beside runs/ that looks like a run must survive every attempt.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import type { Reply } from '../contract/api.js';
import { projectRoot } from '../util/paths.js';
import type { ToWorker } from '../worker/protocol.js';
import type { JobProcessFactory } from './jobs/client.js';
import { createStudioServices, type StudioServices } from './studio/index.js';

const STORIES = path.join(projectRoot(), '..', 'shared', 'data', 'models', 'stories260k');
const ctx = { client: 'test' };
const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

/** A job process that records what it was asked to run and fails every job at once (no real work). */
function recordingJobs(seen: Array<{ kind: string; params: unknown }>): JobProcessFactory {
  return () => {
    let onMessage: ((m: never) => void) | null = null;
    let onExit: ((e: { code: number; signal: null }) => void) | null = null;
    return {
      pid: undefined,
      send: (msg: ToWorker) => {
        if (msg.type === 'run') {
          seen.push({ kind: msg.kind, params: msg.params });
          setImmediate(() => onMessage?.({ type: 'error', id: msg.id, error: { message: 'fake job', code: 'FAKE' } } as never));
        }
        if (msg.type === 'shutdown' || msg.type === 'cancel') setImmediate(() => onExit?.({ code: 0, signal: null }));
      },
      onMessage: (l) => void (onMessage = l as never),
      onExit: (l) => void (onExit = l as never),
      kill: () => onExit?.({ code: null as never, signal: null }),
    };
  };
}

interface Home {
  home: string;
  services: StudioServices;
  jobs: Array<{ kind: string; params: unknown }>;
  /** Everything that must still be there afterwards. */
  intact(): void;
}

function studio(): Home {
  const home = mkdtempSync(path.join(os.tmpdir(), 'quip-paths-'));
  temps.push(home);
  writeFileSync(path.join(home, 'settings.json'), '{"threads":null}\n');
  mkdirSync(path.join(home, 'chats'));
  writeFileSync(path.join(home, 'chats', 'keep.json'), '{}');
  // A folder beside runs/ that looks like a finished run, and one real run inside runs/.
  mkdirSync(path.join(home, 'elsewhere'));
  writeFileSync(path.join(home, 'elsewhere', 'config.json'), '{}');
  writeFileSync(path.join(home, 'elsewhere', 'run.json'), '{}');
  mkdirSync(path.join(home, 'runs', 'kept'), { recursive: true });
  writeFileSync(path.join(home, 'runs', 'kept', 'config.json'), '{}');
  writeFileSync(path.join(home, 'runs', 'kept', 'run.json'), '{}');
  const jobs: Array<{ kind: string; params: unknown }> = [];
  const services = createStudioServices({ face: 'browser', home, spawnJob: recordingJobs(jobs), send: () => {} });
  const intact = () => {
    expect(existsSync(path.join(home, 'settings.json'))).toBe(true);
    expect(existsSync(path.join(home, 'chats', 'keep.json'))).toBe(true);
    expect(existsSync(path.join(home, 'elsewhere', 'run.json'))).toBe(true);
    expect(existsSync(path.join(home, 'runs', 'kept', 'config.json'))).toBe(true);
  };
  return { home, services, jobs, intact };
}

function refused(reply: Reply, code: string, message?: RegExp) {
  expect(reply.ok).toBe(false);
  if (!reply.ok) {
    expect(reply.error.code).toBe(code);
    if (message) expect(reply.error.message).toMatch(message);
  }
}

async function rejects(p: Promise<unknown>, message: RegExp = /./) {
  await expect(p).rejects.toMatchObject({ code: 'BAD_NAME', message: expect.stringMatching(message) });
}

const ESCAPES = ['..', '.', '../elsewhere', '../../elsewhere', 'a/b', 'a\\b', '/etc', '', 'x\u0000y', '.studio'];

describe('run names and ids that would leave runs/', () => {
  it('refuses a new run named "..", ".", a path or a name Windows forbids, with a message saying what to use', async () => {
    const { services, jobs, intact } = studio();
    const start = (name: string) => services.dispatch('runs.start', { modelDir: STORIES, settings: { bits: 2 }, name }, ctx);
    refused(await start('..'), 'INVALID_INPUT', /A run name can't be "\.\."; use letters, digits, "-", "_" and "\."/);
    refused(await start('.'), 'INVALID_INPUT', /A run name can't be "\."/);
    refused(await start('a/b'), 'INVALID_INPUT', /can't contain "\/" or "\\"/);
    refused(await start('a\\b'), 'INVALID_INPUT', /can't contain "\/" or "\\"/);
    refused(await start('.studio'), 'INVALID_INPUT', /can't start or end with a space or a dot/);
    refused(await start('run.'), 'INVALID_INPUT', /can't start or end with a space or a dot/);
    refused(await start('CON'), 'INVALID_INPUT', /device name on Windows/);
    refused(await start('a\u0000b'), 'INVALID_INPUT', /control characters/);
    refused(await start('a b'), 'INVALID_INPUT', /can't contain " "/);
    refused(await start('x'.repeat(121)), 'INVALID_INPUT', /at most 120 characters/);
    // Past the contract, the service refuses it too.
    await rejects(services.runs.start({ modelDir: STORIES, settings: { bits: 2 }, name: '..' }), /can't be "\.\."/);
    expect(jobs.filter((j) => j.kind === 'quantize')).toEqual([]);
    expect(readdirSync(path.join(services.runs.registry.dir))).toEqual(['kept']);
    intact();
    await services.close();
  });

  it('refuses get, reveal, delete, resume and cancel of an id that is not one name inside runs/, touching nothing', async () => {
    const { services, intact } = studio();
    for (const runId of ESCAPES) {
      for (const channel of ['runs.get', 'runs.reveal', 'runs.delete', 'runs.resume', 'runs.cancel']) {
        refused(await services.dispatch(channel, { runId }, ctx), 'INVALID_INPUT');
      }
    }
    // A caller that skips the contract meets the same wall where the path is made.
    for (const runId of ['..', '.', '../elsewhere', '../../elsewhere', 'a/b']) {
      await rejects(services.runs.get(runId));
      await rejects(services.runs.folder(runId));
      await rejects(services.runs.delete(runId));
      await rejects(services.runs.registry.remove(runId));
    }
    intact();
    // The real run is still found and deleted by its id.
    expect((await services.dispatch('runs.get', { runId: 'kept' }, ctx)).ok).toBe(true);
    expect(await services.dispatch('runs.delete', { runId: 'kept' }, ctx)).toEqual({ ok: true, value: { ok: true } });
    expect(existsSync(path.join(services.runs.registry.dir, 'kept'))).toBe(false);
    expect(existsSync(path.join(services.runs.registry.dir, '..', 'settings.json'))).toBe(true);
    await services.close();
  });

  it('lists runs beside a folder the studio could not address by id (made by hand) without failing', async () => {
    const { services, home } = studio();
    mkdirSync(path.join(home, 'runs', 'CON'));
    mkdirSync(path.join(home, 'runs', 'ends-in-space '));
    const list = await services.dispatch('runs.list', {}, ctx);
    expect(list.ok && (list.value as Array<{ runId: string }>).map((r) => r.runId)).toEqual(['kept']);
    await services.close();
  });
});

describe('chat, download and model ids that would leave their folder', () => {
  it('refuses a saved chat id that is a path, at the contract and in the service', async () => {
    const { services, home, intact } = studio();
    for (const chatId of ['..', '../settings', 'a/b', '.', '']) {
      refused(await services.dispatch('chats.delete', { chatId }, ctx), 'INVALID_INPUT');
    }
    await rejects(services.chat.delete('../settings'), /chat id can't contain "\/"/);
    await rejects(services.chat.delete('..'));
    const record = { chatId: '../settings', title: 't', panes: [{ modelDir: '/m', modelName: 'm', messages: [] }], sampling: { temperature: 0.7, topP: 0.95, maxTokens: 8, seed: 0 }, updatedAt: '2026-01-01T00:00:00.000Z' };
    await rejects(services.chat.save(record));
    expect(readdirSync(path.join(home, 'chats'))).toEqual(['keep.json']);
    intact();
    await services.close();
  });

  it('refuses a download id that is a path, and a repo id with "." or ".." parts', async () => {
    const { services, intact } = studio();
    for (const downloadId of ['..', '../x', 'a/b', '']) refused(await services.dispatch('hub.cancelDownload', { downloadId }, ctx), 'INVALID_INPUT');
    for (const repoId of ['../..', 'owner/..', './name', 'owner/.hidden', 'a--b/c', 'owner/na..me']) {
      refused(await services.dispatch('hub.download', { repoId }, ctx), 'INVALID_INPUT', /owner\/name/);
    }
    intact();
    await services.close();
  });

  it('imports a GGUF whose file name is "..gguf" or "...gguf" into a folder inside models/', async () => {
    const { services, home, jobs, intact } = studio();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'quip-gguf-names-'));
    temps.push(dir);
    for (const name of ['..gguf', '...gguf', 'CON.gguf', '.hidden.gguf']) {
      writeFileSync(path.join(dir, name), 'GGUF');
      refused(await services.dispatch('models.importGguf', { file: path.join(dir, name) }, ctx), 'FAKE');
    }
    const targets = jobs.filter((j) => j.kind === 'importGguf').map((j) => (j.params as { outDir: string }).outDir);
    expect(targets.map((t) => path.relative(path.join(home, 'models'), t))).toEqual(['model', 'model', 'model-CON', 'hidden']);
    intact();
    await services.close();
  });
});
