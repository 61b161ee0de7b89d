// The library in a temporary studio home (QUIP_STUDIO_HOME): recent models and settings persist
// across instances, stay in order without duplicates, survive concurrent writes and damaged files.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { Library, RECENT_FILE, SETTINGS_FILE } from './library.js';

let home: string;
const saved = process.env.QUIP_STUDIO_HOME;

beforeEach(() => {
  home = mkdtempSync(path.join(os.tmpdir(), 'quip-library-'));
  process.env.QUIP_STUDIO_HOME = home;
});
afterEach(() => {
  if (saved === undefined) delete process.env.QUIP_STUDIO_HOME;
  else process.env.QUIP_STUDIO_HOME = saved;
  rmSync(home, { recursive: true, force: true });
});

const model = (name: string, at: string) => ({ path: `/models/${name}`, repoId: null, name, family: 'Llama', params: 1000, openedAt: at });

describe('library', () => {
  it('lives in QUIP_STUDIO_HOME and persists recent models across instances, newest first', async () => {
    const lib = new Library();
    expect(lib.home).toBe(home);
    expect(await lib.recent()).toEqual([]);
    await lib.remember(model('a', '2026-01-01T00:00:00.000Z'));
    await lib.remember(model('b', '2026-01-02T00:00:00.000Z'));
    expect(existsSync(path.join(home, RECENT_FILE))).toBe(true);
    const again = new Library();
    expect((await again.recent()).map((m) => m.name)).toEqual(['b', 'a']);
    // Opening a again moves it to the top instead of adding it twice.
    await again.remember({ ...model('a', '2026-01-03T00:00:00.000Z'), params: 2000 });
    expect((await new Library().recent()).map((m) => [m.name, m.params])).toEqual([
      ['a', 2000],
      ['b', 1000],
    ]);
  });

  it('forgets a model by path (relative paths are resolved)', async () => {
    const lib = new Library();
    await lib.remember({ ...model('x', '2026-01-01T00:00:00.000Z'), path: path.join(home, 'x') });
    await lib.remember(model('y', '2026-01-01T00:00:00.000Z'));
    await lib.forget(path.relative(process.cwd(), path.join(home, 'x')));
    expect((await lib.recent()).map((m) => m.name)).toEqual(['y']);
  });

  it('keeps every one of many concurrent remembers', async () => {
    const lib = new Library();
    await Promise.all(Array.from({ length: 12 }, (_, i) => lib.remember(model(`m${i}`, new Date(2026, 0, i + 1).toISOString()))));
    const names = (await lib.recent()).map((m) => m.name);
    expect(names).toHaveLength(12);
    expect(names[0]).toBe('m11');
  });

  it('caps the list at 30 models', async () => {
    const lib = new Library();
    for (let i = 0; i < 33; i++) await lib.remember(model(`m${i}`, new Date(2026, 0, 1, 0, i).toISOString()));
    const recent = await lib.recent();
    expect(recent).toHaveLength(30);
    expect(recent.at(-1)?.name).toBe('m3');
  });

  it('sets a damaged file aside, says so, and starts empty', async () => {
    writeFileSync(path.join(home, RECENT_FILE), '{"version": 1, "models": [ {"path": ');
    const warnings: string[] = [];
    const lib = new Library(home, (m) => warnings.push(m));
    expect(await lib.recent()).toEqual([]);
    expect(warnings[0]).toMatch(/recent-models\.json was damaged and has been moved to .*damaged-/);
    expect(readdirSync(home).some((f) => f.startsWith(`${RECENT_FILE}.damaged-`))).toBe(true);
    await lib.remember(model('fresh', '2026-01-01T00:00:00.000Z'));
    expect((await new Library().recent()).map((m) => m.name)).toEqual(['fresh']);
  });

  it('stores settings, changing only the fields given', async () => {
    const lib = new Library();
    // The defaults: all threads, loaded models unloaded after 15 idle minutes, half the RAM for them,
    // the local API off-machine never (127.0.0.1), no CORS, its key made on first use.
    const defaults = { threads: null, idleUnloadMinutes: 15, memoryBudgetBytes: null, apiKey: null, apiPort: 11435, apiHost: '127.0.0.1', apiCors: null };
    expect(await lib.settings()).toEqual(defaults);
    await lib.updateSettings({ threads: 4 });
    expect(JSON.parse(readFileSync(path.join(home, SETTINGS_FILE), 'utf8'))).toMatchObject({ threads: 4 });
    expect(await new Library().updateSettings({})).toEqual({ ...defaults, threads: 4 });
    expect(await new Library().updateSettings({ threads: null, idleUnloadMinutes: 5 })).toEqual({ ...defaults, idleUnloadMinutes: 5 });
  });
});
