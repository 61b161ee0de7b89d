// `quip inspect` through commander, on stories260k: the JSON is a valid ModelInspection and the table
// shows the figures a person looks for.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterEach, expect, test, vi } from 'vitest';

import { ModelInspection } from '../../contract/model.js';
import { defaultMockRepos, startMockHub } from '../../testing/mock-hub.js';
import { registerInspect } from './inspect.js';
import { runQuip } from '../../testing/cli.js';

const STORIES = path.resolve('../shared/data/models/stories260k');

const runInspect = (...args: string[]) => runQuip([registerInspect], ['inspect', ...args]);
afterEach(() => vi.restoreAllMocks());

test('quip inspect --json prints a valid inspection', async () => {
  const r = ModelInspection.parse(JSON.parse(await runInspect(STORIES, '--json')));
  expect(r.source).toMatchObject({ kind: 'local', path: STORIES });
  expect(r.linears).toHaveLength(35);
  expect(r.parameters.total).toBe(260_032);
});

test('quip inspect prints the architecture, parameters, layers and sizes as tables', async () => {
  const text = await runInspect(STORIES);
  expect(text).toMatch(/attention heads\s+8 \(key\/value heads 4, head_dim 8\)/);
  expect(text).toMatch(/total\s+260,032\s+100\.0%/);
  expect(text).toMatch(/model\.layers\.4\.mlp\.down_proj\s+down\s+64 x 172\s+F32\s+172 x 2\^0 \(\S+\)\s+1 x 2\^6 \(sylvester\)\s+176/);
  // Sizes read as in the studio (app/domain/format.ts), as New run estimates the weight files: at 16
  // bits 260,032 x 2 bytes of tensors and a 4,960-byte header = 525,024 bytes = 512.7 KiB.
  expect(text).toMatch(/^\s+2\s+\d+ KiB\s+2\.538\s+/m);
  expect(text).toMatch(/^\s+16\s+513 KiB\s+16\.000\s+100\.0%/m);
});

test('quip inspect on a folder that is not a model says so', async () => {
  await expect(runInspect(path.resolve('app'))).rejects.toThrow(/has no config\.json/);
});

test('quip inspect <hub id> downloads into the HF cache and inspects the snapshot', async () => {
  const hub = await startMockHub({ repos: defaultMockRepos() });
  const home = await mkdtemp(path.join(os.tmpdir(), 'quip-inspect-hf-'));
  const saved = { ...process.env };
  process.env.HF_HOME = home;
  process.env.HF_ENDPOINT = hub.url;
  delete process.env.HF_HUB_CACHE;
  delete process.env.HF_HUB_OFFLINE;
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const r = ModelInspection.parse(JSON.parse(await runInspect('test-org/stories260k', '--json')));
    expect(r.source).toEqual({
      kind: 'hub',
      path: path.join(home, 'hub', 'models--test-org--stories260k', 'snapshots', hub.commitOf('test-org/stories260k')),
      repoId: 'test-org/stories260k',
      revision: hub.commitOf('test-org/stories260k'),
    });
    expect(r.parameters.total).toBe(260_032);
    await expect(runInspect('test-org/no-such-model')).rejects.toThrow(/no-such-model/);
  } finally {
    stderr.mockRestore();
    process.env = saved;
    await hub.close();
    await rm(home, { recursive: true, force: true });
  }
});
