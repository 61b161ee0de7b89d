// The job client against real forked job processes: results, events, cancel (cooperative and
// forced), deaths mapped to user-facing reasons, and exactly-once settlement.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { projectRoot } from '../../util/paths.js';
import { bundleForTest } from '../../testing/bundle.js';
import { JobClient, JobError, type JobEvent, type JobProcessFactory } from './client.js';
import { nodeJobProcesses } from './node-process.js';

let fixturePath: string;
let fixture: JobProcessFactory;
let real: JobProcessFactory;

const STORIES = path.resolve(projectRoot(), '..', 'shared', 'data', 'models', 'stories260k');
const addonBuilt = existsSync(process.env.QUIP_NATIVE_PATH ?? path.join(projectRoot(), 'build/native/Release/quip_native.node'));

beforeAll(async () => {
  fixturePath = await bundleForTest('app/testing/fixture-worker.ts', 'fixture-worker');
  fixture = nodeJobProcesses({ workerPath: fixturePath });
  real = nodeJobProcesses({ workerPath: await bundleForTest('app/worker/main.ts', 'worker') });
});

/** Counts every settlement of a promise, to prove it happens exactly once. */
function settlements(p: Promise<unknown>) {
  const seen: string[] = [];
  p.then(
    () => seen.push('resolved'),
    () => seen.push('rejected'),
  );
  return seen;
}

async function failure(p: Promise<unknown>): Promise<JobError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(JobError);
    return err as JobError;
  }
  throw new Error('expected the job to fail');
}

function waitFor(events: JobEvent[], type: JobEvent['type']): Promise<void> {
  return new Promise((resolve) => {
    const t = setInterval(() => {
      if (events.some((e) => e.type === type)) (clearInterval(t), resolve());
    }, 5);
  });
}

describe('job client', () => {
  it.skipIf(!addonBuilt)('runs a real kind in the real job process (cpuInfo from the native core)', async () => {
    const jobs = new JobClient({ spawn: real });
    const info = await jobs.run('cpuInfo', {}).result;
    expect(info.threads).toBeGreaterThan(0);
    expect(info.summary.length).toBeGreaterThan(0);
    expect(jobs.list()[0]).toMatchObject({ kind: 'cpuInfo', state: 'done', error: null });
  });

  it.skipIf(!addonBuilt)('inspects stories260k in the real job process', async () => {
    const jobs = new JobClient({ spawn: real });
    const inspection = await jobs.run('inspect', { path: STORIES }).result;
    expect(inspection.source).toEqual({ kind: 'local', path: STORIES, repoId: null, revision: null });
    expect(inspection.architecture.modelType).toBe('llama');
    expect(inspection.linears).toHaveLength(7 * inspection.architecture.numLayers);
    // A folder without config.json fails with the engine's message, and the client stays usable.
    const err = await failure(jobs.run('inspect', { path: path.dirname(STORIES) }).result);
    expect(err.message).toMatch(/config\.json/);
    expect((await jobs.run('inspect', { path: STORIES }).result).parameters.total).toBe(inspection.parameters.total);
  });

  it('streams events in order and settles with the result sent to the job', async () => {
    const events: JobEvent[] = [];
    const jobs = new JobClient({ spawn: fixture, emit: (e) => events.push(e) });
    const job = jobs.start('hold', { steps: 3 }, { label: 'Hold three steps' });
    const seen = settlements(job.result);
    await waitFor(events, 'log');
    job.send({ hello: 'job' });
    const value = (await job.result) as { received: unknown; pid: number };
    expect(value.received).toEqual({ hello: 'job' });
    expect(value.pid).not.toBe(process.pid);
    expect(events.map((e) => e.type)).toEqual(['started', 'progress', 'progress', 'progress', 'log', 'done']);
    expect(events.filter((e) => e.type === 'progress').map((e) => e.fraction)).toEqual([1 / 3, 2 / 3, 1]);
    expect(events.every((e) => e.jobId === job.jobId && e.kind === 'hold')).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual(['resolved']);
    expect(jobs.list()[0]).toMatchObject({ jobId: job.jobId, label: 'Hold three steps', state: 'done' });
  });

  it('cancels cooperatively', async () => {
    const events: JobEvent[] = [];
    const jobs = new JobClient({ spawn: fixture, emit: (e) => events.push(e) });
    const job = jobs.start('hold', { steps: 1 });
    await waitFor(events, 'log');
    expect(jobs.cancel(job.jobId)).toBe(true);
    const err = await failure(job.result);
    expect(err.code).toBe('CANCELLED');
    expect(events.at(-1)?.type).toBe('cancelled');
    expect(jobs.list()[0]?.state).toBe('cancelled');
    expect(jobs.cancel(job.jobId)).toBe(false); // already over
  });

  it('kills a job that ignores cancel (SIGTERM ignored too, then SIGKILL) and settles it as cancelled', async () => {
    const events: JobEvent[] = [];
    const jobs = new JobClient({ spawn: fixture, graceMs: 150, emit: (e) => events.push(e) });
    const job = jobs.start('ignoreCancel', {});
    await waitFor(events, 'log');
    const started = Date.now();
    job.cancel();
    const err = await failure(job.result);
    expect(err.code).toBe('CANCELLED');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290); // SIGTERM after 150 ms was ignored; SIGKILL after 300 ms
  });

  it('reports a process killed mid-job as KILLED, and the next job works', async () => {
    const events: JobEvent[] = [];
    const jobs = new JobClient({ spawn: fixture, emit: (e) => events.push(e) });
    const job = jobs.start('hold', { steps: 0 });
    await waitFor(events, 'log');
    process.kill(job.pid!, 'SIGKILL'); // from outside, as the OOM killer or a user would
    const err = await failure(job.result);
    expect(err.code).toBe('KILLED');
    expect(err.message).toMatch(/killed/);
    expect(jobs.list().find((j) => j.jobId === job.jobId)).toMatchObject({ state: 'error' });
    const next = jobs.start('hold', { steps: 0 });
    next.send(42);
    expect(((await next.result) as { received: unknown }).received).toBe(42);
  });

  it('maps crashes: abort -> CRASHED, uncaught exception -> CRASHED with its message, exit(3) -> exit code', async () => {
    const jobs = new JobClient({ spawn: fixture });
    const abort = await failure(jobs.start('crash', { how: 'abort' }).result);
    expect(abort.code).toBe('CRASHED');
    expect(abort.message).toMatch(/SIGABRT/);
    const thrown = await failure(jobs.start('crash', { how: 'throw' }).result);
    expect(thrown.code).toBe('CRASHED');
    expect(thrown.message).toContain('boom in a timer');
    const exited = await failure(jobs.start('crash', { how: 'exit' }).result);
    expect(exited.code).toBe('CRASHED');
    expect(exited.message).toContain('code 3');
  });

  it('reports a V8 heap exhaustion as OUT_OF_MEMORY', async () => {
    const small = nodeJobProcesses({ workerPath: fixturePath, execArgv: ['--max-old-space-size=24'] });
    const jobs = new JobClient({ spawn: small });
    const err = await failure(jobs.start('allocate', {}).result);
    expect(err.code).toBe('OUT_OF_MEMORY');
    expect(err.message).toMatch(/ran out of memory/);
  });

  it('rejects unknown kinds, invalid params and results that break their schema, with clear messages', async () => {
    const jobs = new JobClient({ spawn: fixture });
    const unknown = await failure(jobs.start('noSuchKind', {}).result);
    expect(unknown.code).toBe('UNKNOWN_KIND');
    expect(unknown.message).toMatch(/Unknown job kind "noSuchKind"/);
    const invalid = await failure(jobs.start('hold', { steps: 'three' }).result);
    expect(invalid.code).toBe('INVALID_PARAMS');
    expect(invalid.message).toMatch(/steps/);
    const bad = await failure(jobs.start('badResult', {}).result);
    expect(bad.code).toBe('INTERNAL');
    expect(bad.message).toMatch(/n/);
  });

  it('passes on the events a kind declares and fails a job whose event breaks its events schema', async () => {
    const jobs = new JobClient({ spawn: fixture });
    const data: unknown[] = [];
    const job = jobs.start('badEvent', {}, { onEvent: (e) => e.type === 'progress' && data.push(e.data) });
    const bad = await failure(job.result);
    expect(bad.code).toBe('INTERNAL');
    expect(bad.message).toMatch(/step/);
    // The good event came through as declared; the bad one never left the job process.
    expect(data).toEqual([{ step: 1 }]);
  });

  it('times out a job and settles it once', async () => {
    const jobs = new JobClient({ spawn: fixture });
    const job = jobs.start('hold', { steps: 0 }, { timeoutMs: 300 });
    const seen = settlements(job.result);
    const err = await failure(job.result);
    expect(err.code).toBe('TIMEOUT');
    await new Promise((r) => setTimeout(r, 200)); // the kill and exit that follow change nothing
    expect(seen).toEqual(['rejected']);
  });

  it('settles every one of many concurrent jobs exactly once, whatever ends them', async () => {
    const jobs = new JobClient({ spawn: fixture, graceMs: 200, maxProcesses: 6 });
    const handles = Array.from({ length: 6 }, (_, i) => jobs.start('hold', { steps: 1 }, { owner: i % 2 ? 'window-1' : 'window-2' }));
    const seen = handles.map((h) => settlements(h.result));
    await new Promise((r) => setTimeout(r, 500));
    handles[0]!.send('done');
    expect(jobs.cancelOwnedBy('window-1')).toBe(3);
    handles[2]!.cancel();
    handles[2]!.cancel(); // twice changes nothing
    process.kill(handles[4]!.pid!, 'SIGKILL');
    await Promise.allSettled(handles.map((h) => h.result));
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.map((s) => s.length)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(jobs.list().map((j) => j.state).sort()).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled', 'done', 'error']);
  });

  it('runs at most maxProcesses job processes at once; the rest wait as queued, can be cancelled there, and all finish', async () => {
    let alive = 0;
    let peak = 0;
    const counted: JobProcessFactory = (info) => {
      const p = fixture(info);
      alive++;
      peak = Math.max(peak, alive);
      p.onExit(() => alive--);
      return p;
    };
    const events: JobEvent[] = [];
    const handles = new Map<string, ReturnType<JobClient['start']>>();
    // Each job finishes as soon as it runs (its 'log' says it waits for input).
    const jobs = new JobClient({
      spawn: counted,
      maxProcesses: 2,
      emit: (e) => {
        events.push(e);
        if (e.type === 'log') handles.get(e.jobId)?.send(`go ${e.jobId}`);
      },
    });
    expect(new JobClient({ spawn: counted }).maxProcesses).toBeGreaterThanOrEqual(1);
    const started = Array.from({ length: 8 }, (_, i) => jobs.start('hold', { steps: 0 }, { label: `Hold ${i}`, owner: i === 7 ? 'window-9' : undefined }));
    for (const h of started) handles.set(h.jobId, h);
    const seen = started.map((h) => settlements(h.result));
    expect(jobs.list().reverse().map((j) => j.state)).toEqual(['running', 'running', 'queued', 'queued', 'queued', 'queued', 'queued', 'queued']);
    expect(started[5]!.pid).toBeUndefined();
    const of = (h: { jobId: string }) => events.filter((e) => e.jobId === h.jobId).map((e) => e.type);
    expect(of(started[5]!)).toEqual(['queued']);
    // Cancelled while queued (by handle, by id, and with its window): it never starts a process.
    started[5]!.cancel();
    expect(jobs.cancel(started[6]!.jobId)).toBe(true);
    expect(jobs.cancelOwnedBy('window-9')).toBe(1);
    for (const i of [5, 6, 7]) {
      expect((await failure(started[i]!.result)).code).toBe('CANCELLED');
      expect(of(started[i]!)).toEqual(['queued', 'cancelled']);
    }
    const results = await Promise.all(started.slice(0, 5).map((h) => h.result as Promise<{ received: string }>));
    expect(results.map((r) => r.received)).toEqual(started.slice(0, 5).map((h) => `go ${h.jobId}`));
    for (const h of started.slice(2, 5)) expect(of(h)).toEqual(['queued', 'started', 'log', 'done']);
    expect(peak).toBe(2);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.map((s) => s.length)).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    expect(jobs.list().map((j) => j.state).sort()).toEqual(['cancelled', 'cancelled', 'cancelled', 'done', 'done', 'done', 'done', 'done']);
  });

  it('fails with LAUNCH_FAILED when the worker bundle is missing', async () => {
    const jobs = new JobClient({ spawn: nodeJobProcesses({ workerPath: '/nonexistent/worker.mjs' }) });
    const err = await failure(jobs.start('hold', { steps: 0 }).result);
    expect(err.code).toBe('LAUNCH_FAILED');
    expect(err.message).toMatch(/worker\.mjs is missing/);
  });
});

