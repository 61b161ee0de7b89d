// The runs store and its batching: run events (replayed from a real stories260k run) reach the store
// in batches at ~15 Hz, never one redraw per event, and end in the same layers the job recorded.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { RunDetail, RunEvent } from '../../../app/contract/index';
import { RunDetail as RunDetailSchema, RunEvent as RunEventSchema } from '../../../app/contract/index';
import { createFakeStudio } from '../api/fake';
import { stories260k } from '../api/fixtures';
import eventsJson from '../api/fixtures/stories260k.run-events.json';
import runsJson from '../api/fixtures/stories260k.runs.json';
import { applyRunEvents, createBatcher, createRunsStore, RUN_FLUSH_MS } from './runs';

const events: RunEvent[] = (eventsJson as unknown[]).map((e) => RunEventSchema.parse(e));
const recorded: RunDetail = RunDetailSchema.parse(runsJson.two);
const DIR = stories260k.source.path;

describe('createBatcher', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('hands over everything pushed within one interval together, in order', () => {
    const batches: number[][] = [];
    const b = createBatcher<number>((batch) => batches.push(batch));
    for (let i = 0; i < 100; i++) b.push(i);
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(RUN_FLUSH_MS);
    expect(batches).toEqual([Array.from({ length: 100 }, (_, i) => i)]);
  });

  it('applies a steady stream of events at 10-20 Hz', () => {
    let applied = 0;
    let items = 0;
    const b = createBatcher<number>((batch) => ((applied += 1), (items += batch.length)));
    // One event every 2 ms for 3 s (500 per second).
    for (let t = 0; t < 3000; t += 2) {
      b.push(t);
      vi.advanceTimersByTime(2);
    }
    b.flush();
    expect(items).toBe(1500);
    expect(applied / 3).toBeGreaterThanOrEqual(10);
    expect(applied / 3).toBeLessThanOrEqual(20);
  });

  it('flush applies at once and leaves nothing behind', () => {
    const batches: string[][] = [];
    const b = createBatcher<string>((batch) => batches.push(batch));
    b.push('a');
    b.flush();
    b.flush();
    vi.advanceTimersByTime(1000);
    expect(batches).toEqual([['a']]);
  });
});

describe('applyRunEvents', () => {
  it('replaying a real run gives the layers, progress and log the job recorded', () => {
    const run = { ...recorded, state: 'queued' as const, layers: [], log: [], layersDone: 0 };
    const out = applyRunEvents({ runs: [run], details: { [run.runId]: run } }, events);
    const d = out.details[run.runId]!;
    expect(d.layers).toEqual(recorded.layers);
    expect(d.layersDone).toBe(35);
    expect(d.state).toBe('done');
    expect(d.log.length).toBe(events.filter((e) => e.body.type === 'log').length);
    expect(out.runs[0]!.state).toBe('done');
    // Pure: the input is not changed.
    expect(run.layers).toEqual([]);
  });

  it('a layer event seen twice (a request and an event racing) is kept once', () => {
    const run = { ...recorded, layers: [] };
    const layer = events.find((e) => e.body.type === 'layer')!;
    const out = applyRunEvents({ runs: [run], details: { [run.runId]: run } }, [layer, layer]);
    expect(out.details[run.runId]!.layers).toHaveLength(1);
  });
});

describe('runs store', () => {
  it('batches a fast run into few store updates and ends with every layer', async () => {
    const fake = createFakeStudio({ models: { [DIR]: stories260k } });
    const store = createRunsStore(fake.api);
    const stop = store.getState().start();
    const run = await store.getState().startRun(DIR, { bits: 2, calibSamples: 8, calibCtx: 128 });
    expect(run?.state).toBe('queued');
    expect(store.getState().selected).toBe(run!.runId);
    await new Promise((r) => setTimeout(r, 0));
    const updates = { n: 0 };
    const unsub = store.subscribe(() => void updates.n++);
    // The real run's events, as fast as they come.
    for (const e of events) fake.runEvent(run!.runId, e.body.type === 'state' ? { type: 'state', run: { ...e.body.run, runId: run!.runId, name: run!.name } } : e.body);
    await vi.waitFor(() => expect(store.getState().details[run!.runId]!.layers).toHaveLength(35));
    unsub();
    // 92 events, but a handful of store updates: the batches and the state changes applied at once.
    expect(updates.n).toBeLessThan(15);
    expect(store.getState().details[run!.runId]!.layers.map((l) => l.name)).toEqual(recorded.layers.map((l) => l.name));
    stop();
  });

  it('cancel, resume, delete and reveal go through the API; failures become a notice', async () => {
    const fake = createFakeStudio({ models: { [DIR]: stories260k }, runs: [recorded] });
    const store = createRunsStore(fake.api);
    store.getState().start();
    await vi.waitFor(() => expect(store.getState().runs).toHaveLength(1));
    await store.getState().reveal(recorded.runId);
    expect(store.getState().revealed).toEqual({ runId: recorded.runId, path: recorded.dir, supported: false });
    await store.getState().resume(recorded.runId);
    expect(store.getState().notice?.message).toMatch(/only an interrupted or cancelled run can be resumed/);
    await store.getState().remove(recorded.runId);
    expect(store.getState().runs).toEqual([]);
    expect(fake.runs.size).toBe(0);
  });
});
