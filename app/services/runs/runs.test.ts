// Runs and chat behind the contract, with real job processes on stories260k: a queued pair of runs
// (one at a time), per-layer events, the run record, a cancel then resume, a CLI-style run found in
// runs/, deletion with files, a killed job process, and a streamed chat reply from the quantized model.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { EventName } from '../../contract/channels.js';
import type { ChatToken, RunEvent } from '../../contract/runs.js';
import { EVAL_DEFAULTS } from '../../domain/quantize/index.js';
import { compareRow } from '../../engine/quantize/compare.js';
import { projectRoot } from '../../util/paths.js';
import { bundleForTest } from '../../testing/bundle.js';
import { nodeJobProcesses } from '../jobs/node-process.js';
import { createStudioServices, type StudioServices } from '../studio/index.js';

const STORIES = path.join(projectRoot(), '..', 'shared', 'data', 'models', 'stories260k');
const ctx = { client: 'test' };
const FAST = { bits: 2, calibSamples: 4, calibCtx: 64 };

let workerPath: string;
const temps: string[] = [];
beforeAll(async () => {
  workerPath = await bundleForTest('app/worker/main.ts', 'worker');
});
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

function studio(): { services: StudioServices; runEvents: RunEvent[]; tokens: ChatToken[]; home: string } {
  const home = mkdtempSync(path.join(os.tmpdir(), 'quip-runs-'));
  temps.push(home);
  const runEvents: RunEvent[] = [];
  const tokens: ChatToken[] = [];
  const services = createStudioServices({
    face: 'browser',
    home,
    spawnJob: nodeJobProcesses({ workerPath }),
    send: (event: EventName, payload: unknown) => {
      if (event === 'run.event') runEvents.push(payload as RunEvent);
      if (event === 'chat.token') tokens.push(payload as ChatToken);
    },
  });
  return { services, runEvents, tokens, home };
}

async function call<T>(s: StudioServices, channel: string, input: unknown): Promise<T> {
  const reply = await s.dispatch(channel, input, ctx);
  if (!reply.ok) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
  return reply.value as T;
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 120_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const state = (events: RunEvent[], runId: string) =>
  events.filter((e) => e.runId === runId && e.body.type === 'state').map((e) => (e.body as { run: { state: string } }).run.state);

describe('runs', () => {
  it('estimates time, memory and size before a start, and refuses a non-model folder by name', async () => {
    const { services, home } = studio();
    const est = await call<{ layers: number; outputBytes: number; settings: { codebook: string }; seconds: { total: number }; peakBytes: number }>(services, 'runs.estimate', {
      modelDir: STORIES,
      settings: { bits: 4 },
    });
    expect(est.layers).toBe(35);
    expect(est.settings.codebook).toBe('rvq4');
    expect(est.seconds.total).toBeGreaterThan(0);
    expect(est.peakBytes).toBeGreaterThan(0);
    // 4-bit codes of ~230k linear weights are ~115 KB; the 16-bit embeddings come on top.
    const est2 = await call<{ outputBytes: number }>(services, 'runs.estimate', { modelDir: STORIES, settings: { bits: 2 } });
    expect(est.outputBytes).toBeGreaterThan(est2.outputBytes);
    await expect(call(services, 'runs.start', { modelDir: home, settings: FAST })).rejects.toThrow(/has no config\.json, so it is not a model folder/);
    await expect(call(services, 'runs.estimate', { modelDir: STORIES, settings: { bits: 2, codebook: 'rvq' } })).rejects.toThrow(/rvq.*3 or 4 bits/);
    await services.close();
  });

  it('queues two runs, runs them one at a time with one layer event per linear, and records them', async () => {
    const { services, runEvents, home } = studio();
    const a = await call<{ runId: string; state: string }>(services, 'runs.start', { modelDir: STORIES, settings: FAST, name: 'two-bit' });
    const b = await call<{ runId: string; state: string }>(services, 'runs.start', { modelDir: STORIES, settings: { ...FAST, bits: 4 }, name: 'four-bit' });
    expect(b.state).toBe('queued');
    // Another window queues a run and closes: its run leaves the queue and never starts.
    const third = await services.dispatch('runs.start', { modelDir: STORIES, settings: FAST, name: 'third' }, { client: 'window-2' });
    expect(third.ok).toBe(true);
    await services.runs.cancelOwnedBy('window-2');
    await until('both runs', () => state(runEvents, 'four-bit').includes('done') || state(runEvents, 'four-bit').includes('error'));
    expect(state(runEvents, 'two-bit')).toEqual(['queued', 'running', 'done']);
    expect(state(runEvents, 'four-bit')).toEqual(['queued', 'running', 'done']);
    // The second started only after the first finished.
    const doneA = runEvents.findIndex((e) => e.runId === a.runId && e.body.type === 'state' && e.body.run.state === 'done');
    const runB = runEvents.findIndex((e) => e.runId === b.runId && e.body.type === 'state' && e.body.run.state === 'running');
    expect(runB).toBeGreaterThan(doneA);
    expect(state(runEvents, 'third')).toEqual(['queued', 'cancelled']);
    const layers = runEvents.filter((e) => e.runId === 'two-bit' && e.body.type === 'layer');
    expect(layers).toHaveLength(35);

    const detail = await call<{ layers: Array<{ proxyLoss: number }>; bitsPerWeight: number; bytesOnDisk: number; perplexity: number | null; state: string }>(
      services,
      'runs.get',
      { runId: 'two-bit' },
    );
    expect(detail.state).toBe('done');
    expect(detail.layers).toHaveLength(35);
    expect(detail.layers.every((l) => l.proxyLoss >= 0)).toBe(true);
    expect(detail.bitsPerWeight).toBeGreaterThan(2);
    // The size shown before the start predicts the weight files the run wrote (within 1%); the run's
    // size is their bytes, the same figure `quip compare` prints for the folder.
    const before = await call<{ outputBytes: number; time: { basis: string; low: number; high: number; seconds: number } }>(services, 'runs.estimate', { modelDir: STORIES, settings: FAST });
    // Each finished run's phase timings calibrate later estimates on this machine, shown as a range.
    const rates = JSON.parse(readFileSync(path.join(home, 'machine-rates.json'), 'utf8')) as { observations: Array<{ source: string; label: string }> };
    expect(rates.observations.filter((o) => o.source === 'run').map((o) => o.label)).toEqual(['stories260k 2-bit', 'stories260k 4-bit']);
    expect(before.time.basis).toBe('runs');
    expect(before.time.low).toBeLessThan(before.time.seconds);
    expect(before.time.high).toBeGreaterThan(before.time.seconds);
    expect(Math.abs(before.outputBytes - detail.bytesOnDisk) / detail.bytesOnDisk).toBeLessThan(0.01);
    expect(detail.bytesOnDisk).toBe(statSync(path.join(home, 'runs', 'two-bit', 'model.safetensors')).size);
    expect(compareRow(path.join(home, 'runs', 'two-bit')).bytesOnDisk).toBe(detail.bytesOnDisk);
    // The perplexity says what it was measured on: the studio's defaults, the same as the CLI's.
    const measured = await call<{ perplexityInfo: { text: string; ctx: number; windows: number; stdErr: number; calibratedOnText: boolean } }>(services, 'runs.get', { runId: 'two-bit' });
    expect(measured.perplexityInfo).toMatchObject({ text: 'WikiText-2 test', ctx: EVAL_DEFAULTS.ctx, windows: EVAL_DEFAULTS.windows, calibratedOnText: false });
    expect(measured.perplexityInfo.stdErr).toBeGreaterThan(0);
    const four = await call<{ bitsPerWeight: number; meanProxyLoss: number }>(services, 'runs.get', { runId: 'four-bit' });
    expect(four.bitsPerWeight).toBeGreaterThan(detail.bitsPerWeight);

    // After a restart (new services over the same home) both are listed from disk.
    await services.close();
    const again = createStudioServices({ face: 'browser', home, spawnJob: nodeJobProcesses({ workerPath }), send: () => {} });
    const list = await call<Array<{ name: string; state: string; origin: string }>>(again, 'runs.list', {});
    expect(list.map((r) => [r.name, r.state, r.origin]).sort()).toEqual([
      ['four-bit', 'done', 'studio'],
      ['third', 'cancelled', 'studio'],
      ['two-bit', 'done', 'studio'],
    ]);

    // A chat reply from the quantized model streams as chat.token events.
    const tokens: ChatToken[] = [];
    const chatter = createStudioServices({ face: 'browser', home, spawnJob: nodeJobProcesses({ workerPath }), send: (e, p) => void (e === 'chat.token' && tokens.push(p as ChatToken)) });
    const { streamId } = await call<{ streamId: string }>(chatter, 'chat.send', {
      modelDir: path.join(home, 'runs', 'two-bit'),
      messages: [{ role: 'user', content: 'Once upon a time' }],
      sampling: { temperature: 0, maxTokens: 12 },
    });
    await until('the reply', () => tokens.some((t) => t.streamId === streamId && t.type !== 'token'));
    const done = tokens.find((t) => t.type !== 'token')!;
    expect(done.type, JSON.stringify(done)).toBe('done');
    const pieces = tokens.filter((t) => t.type === 'token').map((t) => (t as { text: string }).text).join('');
    expect(pieces.length).toBeGreaterThan(0);
    expect(done.type === 'done' && done.text).toBe(pieces);

    // Delete removes the files too.
    await call(again, 'runs.delete', { runId: 'two-bit' });
    expect(existsSync(path.join(home, 'runs', 'two-bit'))).toBe(false);
    expect((await call<Array<{ name: string }>>(again, 'runs.list', {})).map((r) => r.name).sort()).toEqual(['four-bit', 'third']);
    await again.close();
    await chatter.close();
  });

  it('a cancelled run keeps its checkpoint and resumes; a killed job process is an error naming the reason', async () => {
    const { services, runEvents, home } = studio();
    await call(services, 'runs.start', { modelDir: STORIES, settings: FAST, name: 'stop-me' });
    await until('two layers', () => runEvents.filter((e) => e.runId === 'stop-me' && e.body.type === 'layer').length >= 8);
    const cancelled = await call<{ state: string }>(services, 'runs.cancel', { runId: 'stop-me' });
    expect(cancelled.state).toBe('cancelled');
    const partial = readdirSync(path.join(home, 'runs')).find((f) => f.startsWith('stop-me.partial-'))!;
    expect(partial).toBeDefined();
    // The same checkpoint as an interrupted CLI run (no studio record beside it): listed, not resumable here.
    cpSync(path.join(home, 'runs', partial), path.join(home, 'runs', partial.replace('stop-me', 'cli-half')), { recursive: true });
    const half = (await call<Array<{ name: string; state: string; origin: string; layersDone: number }>>(services, 'runs.list', {})).find((r) => r.name === 'cli-half')!;
    expect(half).toMatchObject({ state: 'interrupted', origin: 'cli' });
    expect(half.layersDone % 7).toBe(0);
    await expect(call(services, 'runs.resume', { runId: 'cli-half' })).rejects.toThrow(/command line; resume it there/);
    await call(services, 'runs.resume', { runId: 'stop-me' });
    await until('resumed run', () => state(runEvents, 'stop-me').at(-1) === 'done');
    const resumed = await call<{ layers: unknown[]; seconds: number; bytesOnDisk: number }>(services, 'runs.get', { runId: 'stop-me' });
    expect(resumed.layers).toHaveLength(35);
    // Its time counts both sessions, and the CLI's `quip compare` reads the same time and size.
    const record = JSON.parse(readFileSync(path.join(home, 'runs', 'stop-me', 'run.json'), 'utf8')) as { sessions: Array<{ seconds: number }>; startedAt: string; finishedAt: string };
    expect(record.sessions).toHaveLength(2);
    expect(resumed.seconds).toBeCloseTo(record.sessions[0]!.seconds + record.sessions[1]!.seconds, 6);
    expect(resumed.seconds).toBeGreaterThan(record.sessions[1]!.seconds);
    const row = compareRow(path.join(home, 'runs', 'stop-me'));
    expect(row.quantizeSeconds).toBe(resumed.seconds);
    expect(row.bytesOnDisk).toBe(resumed.bytesOnDisk);

    await call(services, 'runs.start', { modelDir: STORIES, settings: FAST, name: 'kill-me' });
    await until('a layer', () => runEvents.some((e) => e.runId === 'kill-me' && e.body.type === 'layer'));
    // Kill the job process from outside, as the system does when memory runs out.
    process.kill(services.runs.jobOf('kill-me')!.pid!, 'SIGKILL');
    await until('the error', () => state(runEvents, 'kill-me').at(-1) === 'error');
    const failed = await call<{ state: string; error: { code: string; message: string } }>(services, 'runs.get', { runId: 'kill-me' });
    expect(failed.error.code).toBe('KILLED');
    expect(failed.error.message).toMatch(/killed/);
    await services.close();
  });

  it('a run of `quip quantize --out <home>/runs/NAME` shows up beside the studio runs', async () => {
    const { services, home } = studio();
    const cli = await bundleForTest('app/cli/main.ts', 'cli');
    const { execFileSync } = await import('node:child_process');
    execFileSync(process.execPath, [cli, 'quantize', STORIES, '--out', path.join(home, 'runs', 'from-cli'), '--bits', '3', '--calib-samples', '4', '--ctx', '64', '--no-eval', '--json'], {
      stdio: 'pipe',
    });
    const list = await call<Array<{ name: string; state: string; origin: string; settings: { codebook: string } | null }>>(services, 'runs.list', {});
    expect(list.map((r) => [r.name, r.state, r.origin, r.settings?.codebook])).toEqual([['from-cli', 'done', 'cli', 'rvq3']]);
    const detail = await call<{ layers: unknown[]; modelDir: string; bitsPerWeight: number }>(services, 'runs.get', { runId: 'from-cli' });
    expect(detail.layers).toHaveLength(35);
    expect(detail.modelDir).toBe(STORIES);
    expect(detail.bitsPerWeight).toBeGreaterThan(3);
    await expect(call(services, 'runs.resume', { runId: 'from-cli' })).rejects.toThrow(/finished/);
    await services.close();
  });

  it('a fine-tuned run streams its epochs live and keeps them in its record', async () => {
    const { services, runEvents, home } = studio();
    await call(services, 'runs.start', { modelDir: STORIES, settings: { ...FAST, finetune: { mode: 'block', epochs: 2, batch: 2 } }, name: 'tuned' });
    await until('the tuned run', () => ['done', 'error'].includes(state(runEvents, 'tuned').at(-1) ?? ''), 180_000);
    const detail = await call<{ state: string; error: unknown; fineTune: Array<{ stage: string; block: number; group: string; epoch: number; trainLoss: number }>; settings: { finetune: { mode: string } } }>(
      services,
      'runs.get',
      { runId: 'tuned' },
    );
    expect(detail.error).toBeNull();
    expect(detail.settings.finetune.mode).toBe('block');
    const live = runEvents.filter((e) => e.runId === 'tuned' && e.body.type === 'fineTune');
    expect(live.length).toBeGreaterThan(0);
    expect(detail.fineTune).toHaveLength(live.length);
    // Every block is tuned after q/k/v, o and gate/up; every loss is a finite number.
    expect(new Set(detail.fineTune.map((e) => `${e.block}.${e.group}`)).size).toBe(5 * 3);
    expect(detail.fineTune.every((e) => e.stage === 'block' && Number.isFinite(e.trainLoss))).toBe(true);
    // After a restart, and without the studio's record beside it (as for a CLI run), the curves come
    // from the run record.
    await services.close();
    rmSync(path.join(home, 'runs', '.studio', 'tuned.json'));
    const again = createStudioServices({ face: 'browser', home, spawnJob: nodeJobProcesses({ workerPath }), send: () => {} });
    const reread = await call<{ fineTune: unknown[]; origin: string }>(again, 'runs.get', { runId: 'tuned' });
    expect(reread.origin).toBe('cli');
    const fromRecord = reread.fineTune as typeof detail.fineTune;
    expect(fromRecord.map((e) => [e.block, e.group, e.epoch])).toEqual(detail.fineTune.map((e) => [e.block, e.group, e.epoch]));
    // (the events carry the losses rounded to 10 digits)
    fromRecord.forEach((e, i) => expect(e.trainLoss).toBeCloseTo(detail.fineTune[i]!.trainLoss, 8));
    await again.close();
  });
});
