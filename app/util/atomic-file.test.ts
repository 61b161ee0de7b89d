// The temporary siblings of atomic writes: recognised by name (ours and the safetensors writer's),
// removed when their process is gone (a resume) or all of them (publishing), nothing else touched.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, expect, it } from 'vitest';

import { isAtomicTempName, processIsGone, removeTempFiles, writeFileAtomic } from './atomic-file.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'quip-atomic-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

it('recognises the temporary names of atomic writes and nothing else', () => {
  expect(isAtomicTempName('.model.safetensors.1234.tmp')).toBe(true);
  expect(isAtomicTempName('.checkpoint.json.1234.1733400000000.tmp')).toBe(true);
  for (const name of ['model.safetensors', 'notes.tmp', '.model.safetensors', 'run.json', '.x.tmp', 'model.safetensors.1234.tmp']) expect(isAtomicTempName(name), name).toBe(false);
});

it('tells a process that is gone from one that runs', () => {
  expect(processIsGone(process.pid)).toBe(false);
  expect(processIsGone(spawnSync(process.execPath, ['-e', '']).pid!)).toBe(true);
  expect(processIsGone(2 ** 40)).toBe(true);
});

it('removes stale temporary files (or all of them), never other files', async () => {
  const dir = path.join(root, 'folder');
  mkdirSync(dir);
  const gone = spawnSync(process.execPath, ['-e', '']).pid!;
  const stale = [`.model.safetensors.${gone}.tmp`, `.checkpoint.json.${gone}.${Date.now()}.tmp`];
  const live = `.block-000.safetensors.${process.pid}.tmp`;
  for (const f of [...stale, live, 'model.safetensors', 'notes.tmp']) writeFileSync(path.join(dir, f), 'x');
  mkdirSync(path.join(dir, `.sub.${gone}.tmp`));
  expect((await removeTempFiles(dir, { onlyStale: true })).sort()).toEqual([...stale].sort());
  expect(readdirSync(dir).sort()).toEqual([`.sub.${gone}.tmp`, live, 'model.safetensors', 'notes.tmp'].sort());
  expect(await removeTempFiles(dir, { onlyStale: false })).toEqual([live]);
  expect(readdirSync(dir).sort()).toEqual([`.sub.${gone}.tmp`, 'model.safetensors', 'notes.tmp'].sort());
  // An atomic write leaves no temporary file behind.
  await writeFileAtomic(path.join(dir, 'config.json'), '{}');
  expect(readdirSync(dir).filter(isAtomicTempName)).toEqual([`.sub.${gone}.tmp`]);
});
