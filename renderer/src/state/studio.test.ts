import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createFakeStudio, type FakeStudio } from '../api/fake';
import { asHubModel, stories260k } from '../api/fixtures';
import { createStudioStore, PROGRESS_FLUSH_MS, type StudioStore } from './studio';

const HUB_ID = 'tiny-org/stories260k';

function setup(): { fake: FakeStudio; store: StudioStore; stop: () => void } {
  const fake = createFakeStudio({
    models: { [stories260k.source.path]: stories260k },
    hub: [{ model: { id: HUB_ID, downloads: 1234, likes: 5, updatedAt: null, pipelineTag: 'text-generation', gated: false, private: false, cached: false }, bytes: 1_000_000, inspection: asHubModel(stories260k, HUB_ID) }],
  });
  const store = createStudioStore(fake.api);
  const stop = store.getState().start();
  return { fake, store, stop };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe('studio store', () => {
  let ctx: ReturnType<typeof setup>;
  beforeEach(() => {
    ctx = setup();
  });
  afterEach(() => {
    ctx.stop();
    vi.useRealTimers();
  });

  it('loads app info on start', async () => {
    await vi.waitFor(() => expect(ctx.store.getState().info.status).toBe('ready'));
    const info = ctx.store.getState().info;
    expect(info.status === 'ready' && info.value.threads).toBe(2);
  });

  it('inspects a folder and records it in the recent list', async () => {
    await ctx.store.getState().inspect(stories260k.source.path);
    const s = ctx.store.getState().inspection;
    expect(s.state.status).toBe('ready');
    // Against the model's own config.json, not the fixture.
    const config = JSON.parse(readFileSync(path.join('..', 'shared', 'data', 'models', 'stories260k', 'config.json'), 'utf8'));
    if (s.state.status === 'ready') {
      expect(s.state.value.architecture.hiddenSize).toBe(config.hidden_size);
      expect(s.state.value.linears).toHaveLength(config.num_hidden_layers * 7);
    }
    await vi.waitFor(() => expect(ctx.store.getState().recent.map((r) => r.path)).toEqual([stories260k.source.path]));
  });

  it('keeps the error of a non-model folder with its code, and the next open still works', async () => {
    await ctx.store.getState().inspect('/tmp/not-a-model');
    const failed = ctx.store.getState().inspection.state;
    expect(failed.status).toBe('error');
    if (failed.status === 'error') {
      expect(failed.error.code).toBe('NOT_A_MODEL');
      expect(failed.error.message).toContain('/tmp/not-a-model');
    }
    await ctx.store.getState().inspect(stories260k.source.path);
    expect(ctx.store.getState().inspection.state.status).toBe('ready');
  });

  it('shows only the answer of the latest open when two overlap', async () => {
    const release = ctx.fake.hold('models.inspect');
    const first = ctx.store.getState().inspect(stories260k.source.path);
    const second = ctx.store.getState().inspect('/tmp/elsewhere');
    expect(ctx.store.getState().inspection).toEqual({ source: '/tmp/elsewhere', state: { status: 'loading' } });
    release();
    await Promise.all([first, second]);
    expect(ctx.store.getState().inspection.source).toBe('/tmp/elsewhere');
    expect(ctx.store.getState().inspection.state.status).toBe('error');
  });

  it('batches download progress: a burst of events is one store update', async () => {
    await ctx.store.getState().download(HUB_ID);
    await settle();
    const [id] = ctx.store.getState().downloadOrder;
    expect(id).toBeDefined();
    await new Promise((r) => setTimeout(r, PROGRESS_FLUSH_MS * 2));
    let updates = 0;
    const off = ctx.store.subscribe(() => updates++);
    for (let i = 0; i < 50; i++) ctx.fake.advanceDownload(id!, 10_000);
    expect(updates).toBe(0);
    await vi.waitFor(() => expect(ctx.store.getState().downloads[id!]?.bytesDone).toBe(500_000));
    expect(updates).toBe(1);
    off();
  });

  it('opens the model when its download finishes', async () => {
    await ctx.store.getState().download(HUB_ID);
    await settle();
    const [id] = ctx.store.getState().downloadOrder;
    ctx.fake.advanceDownload(id!, 1_000_000);
    await vi.waitFor(() => expect(ctx.store.getState().inspection.state.status).toBe('ready'));
    expect(ctx.store.getState().downloads[id!]?.state).toBe('done');
    const s = ctx.store.getState().inspection.state;
    expect(s.status === 'ready' && s.value.source.repoId).toBe(HUB_ID);
  });

  it('cancels a download and resumes from what was kept', async () => {
    await ctx.store.getState().download(HUB_ID);
    await settle();
    const [first] = ctx.store.getState().downloadOrder;
    ctx.fake.advanceDownload(first!, 400_000);
    await ctx.store.getState().cancelDownload(first!);
    await vi.waitFor(() => expect(ctx.store.getState().downloads[first!]?.state).toBe('cancelled'));
    await ctx.store.getState().download(HUB_ID);
    await settle();
    // One row per repository: the resumed download replaces the cancelled one.
    const order = ctx.store.getState().downloadOrder;
    expect(order).toHaveLength(1);
    expect(order[0]).not.toBe(first);
    await vi.waitFor(() => expect(ctx.store.getState().downloads[order[0]!]?.bytesDone).toBe(400_000));
  });

  it('keeps a failed request as a notice instead of throwing', async () => {
    await ctx.store.getState().download('nobody/nothing');
    expect(ctx.store.getState().notice?.message).toMatch(/does not exist/);
    ctx.store.getState().dismissNotice();
    expect(ctx.store.getState().notice).toBeNull();
  });

  it('opens only downloads started here, so opening a hub id cannot loop', async () => {
    await ctx.store.getState().download(HUB_ID);
    await settle();
    const [id] = ctx.store.getState().downloadOrder;
    ctx.fake.advanceDownload(id!, 1_000_000);
    await vi.waitFor(() => expect(ctx.store.getState().inspection.state.status).toBe('ready'));
    // The service resolving the hub id reports a download of its own; it shows, but opens nothing.
    ctx.fake.emit('download.progress', { downloadId: 'resolve-1', repoId: HUB_ID, file: 'config.json', bytesDone: 10, bytesTotal: 10, speedBytesPerSec: 0, etaSeconds: 0, state: 'done' });
    await settle();
    expect(ctx.fake.calls.filter((c) => c.channel === 'models.inspect')).toHaveLength(1);
    expect(ctx.store.getState().downloadOrder).toEqual(['resolve-1']);
  });

  it('stops listening when stopped', async () => {
    await ctx.store.getState().download(HUB_ID);
    await settle();
    const [id] = ctx.store.getState().downloadOrder;
    ctx.stop();
    ctx.fake.advanceDownload(id!, 1_000_000);
    await new Promise((r) => setTimeout(r, PROGRESS_FLUSH_MS * 2));
    expect(ctx.store.getState().downloads[id!]?.state).toBe('running');
  });
});
