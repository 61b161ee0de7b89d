// Settings are resolved once: the service resolves what the user gave when a run starts, the sidecar
// keeps the resolved settings, and the job runs exactly those, on a resume too (whatever the
// defaults are by then). Sidecars written before kept the input beside them: read once the old way.
// The job client here is a stand-in that records what each job was asked to run.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { resolveSettings, type QuantizeSettings } from '../../domain/quantize/index.js';
import { projectRoot } from '../../util/paths.js';
import type { JobClient } from '../jobs/client.js';
import { RunRegistry } from './registry.js';
import { RunService } from './service.js';

const STORIES = path.join(projectRoot(), '..', 'shared', 'data', 'models', 'stories260k');
const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

function service() {
  const home = mkdtempSync(path.join(os.tmpdir(), 'quip-settings-once-'));
  temps.push(home);
  const asked: Array<{ kind: string; params: { settings: QuantizeSettings } }> = [];
  const jobs = {
    run: (kind: string, params: { settings: QuantizeSettings }) => {
      asked.push({ kind, params });
      return { jobId: `job-${asked.length}`, pid: undefined, result: Promise.resolve({ out: '' }), cancel: () => {}, send: () => {} };
    },
  } as unknown as JobClient;
  const runs = new RunService({ home, jobs, emit: () => {}, threads: async () => ({ setting: null, available: 2 }) });
  /** Until the n-th job was asked for and its run has left the queue (the stand-in's jobs finish at once). */
  const settled = async (name: string, n: number) => {
    for (let i = 0; i < 500 && (asked.length < n || runs.jobOf(name) !== null); i++) await new Promise((r) => setTimeout(r, 10));
    expect(asked).toHaveLength(n);
    expect(runs.jobOf(name)).toBeNull();
    await new Promise((r) => setTimeout(r, 100)); // the sidecar writes the queue started without waiting
  };
  return { home, runs, asked, settled };
}

const sidecarFile = (home: string, name: string) => path.join(home, 'runs', '.studio', `${name}.json`);

describe('settings resolved once', () => {
  it('the sidecar keeps the resolved settings and the job runs exactly those, on a resume too', async () => {
    const { home, runs, asked, settled } = service();
    await runs.start({ modelDir: STORIES, settings: { bits: 3, calibSamples: 4, calibCtx: 64 }, name: 'r' });
    await settled('r', 1);
    const stored = JSON.parse(readFileSync(sidecarFile(home, 'r'), 'utf8'));
    expect(stored.version).toBe(2);
    expect(stored.input).toBeUndefined();
    expect(stored.settings).toEqual(resolveSettings({ bits: 3, calibSamples: 4, calibCtx: 64 }));
    expect(asked[0]).toMatchObject({ kind: 'quantize', params: { settings: stored.settings } });

    // Resolved when the studio had other defaults (say rho 0.9 for rvq3): a resume keeps them.
    const earlier = { ...stored.settings, rho: 0.9, calibration: { ...stored.settings.calibration, samples: 7 } };
    writeFileSync(sidecarFile(home, 'r'), JSON.stringify({ ...stored, state: 'cancelled', settings: earlier }));
    await runs.resume('r');
    await settled('r', 2);
    expect(asked[1].params.settings).toEqual(earlier);
  });

  it('a sidecar written before version 2 resolves its input once; a refused input keeps the stored settings', async () => {
    const { home } = service();
    const registry = new RunRegistry(home);
    mkdirSync(path.join(home, 'runs', '.studio'), { recursive: true });
    const base = { name: 'old', modelDir: STORIES, modelName: 'stories260k', state: 'cancelled', error: null, createdAt: '2025-01-01T00:00:00.000Z', finishedAt: null, layersTotal: 35, log: [], fineTune: [] };
    // Stored settings from before row scales: the job resolved the input again on resume, and so does this read, once.
    const stale = { ...resolveSettings({ bits: 4 }), rowScale: false };
    writeFileSync(sidecarFile(home, 'old'), JSON.stringify({ version: 1, ...base, input: { bits: 4 }, settings: stale }));
    const v1 = await registry.readSidecar('old');
    expect(v1).toMatchObject({ version: 2, settings: resolveSettings({ bits: 4 }) });
    expect(v1).not.toHaveProperty('input');
    // Written back as version 2, it keeps those settings from then on.
    await registry.writeSidecar(v1!);
    expect(JSON.parse(readFileSync(sidecarFile(home, 'old'), 'utf8'))).toMatchObject({ version: 2, settings: resolveSettings({ bits: 4 }) });

    const kept = resolveSettings({ bits: 2 });
    writeFileSync(sidecarFile(home, 'refused'), JSON.stringify({ version: 1, ...base, name: 'refused', input: { bits: 2, sigma: 50 }, settings: kept }));
    expect((await registry.readSidecar('refused'))?.settings).toEqual(kept);
  });

  it('an estimate and a start name a wrong setting as the New run form does', async () => {
    const { runs } = service();
    await expect(runs.estimate(STORIES, { calibSamples: 0 })).rejects.toMatchObject({ code: 'BAD_SETTING', message: expect.stringMatching(/^Calibration samples 0 is out of range/) });
    await expect(runs.start({ modelDir: STORIES, settings: { bits: 2, codebook: 'rvq' } })).rejects.toMatchObject({ code: 'UNSUPPORTED_PAIRING', message: expect.not.stringMatching(/--/) });
  });
});
