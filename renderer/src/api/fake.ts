// The one in-memory StudioApi for renderer tests. It implements every channel of app/contract (the
// handler table below is typed over all of them, so a new channel fails to compile here until the
// fake learns it), validates inputs and outputs with the contract's own zod schemas, and serves real
// data: inspections produced by the real inspector (./fixtures), a hub catalogue, and downloads whose
// progress the test drives step by step.
import {
  createStudioApi,
  events,
  requests,
  type AppInfo,
  type DownloadProgress,
  type EventName,
  type EventPayload,
  type HubModel,
  type JobInfo,
  type ModelInspection,
  type ParsedInput,
  type RecentModel,
  type Reply,
  type RequestName,
  type RequestOutput,
  type Settings,
  type StudioApi,
} from '../../../app/contract/index';

type Handlers = { [K in RequestName]: (input: ParsedInput<K>) => RequestOutput<K> | Promise<RequestOutput<K>> };

export interface FakeHubRepo {
  model: HubModel;
  /** Bytes a download of it fetches. */
  bytes: number;
  /** What inspecting it after the download gives. */
  inspection: ModelInspection;
}

export interface FakeStudioOptions {
  face?: AppInfo['face'];
  /** Folders that are models, by path. */
  models?: Record<string, ModelInspection>;
  hub?: FakeHubRepo[];
  sampleModel?: string | null;
  /** What the desktop folder dialog answers (null: the person cancelled). */
  pickedFolder?: string | null;
}

export class FakeFailure extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export interface FakeStudio {
  api: StudioApi;
  /** Every request as it arrived, after validation. */
  calls: Array<{ channel: RequestName; input: unknown }>;
  /** Holds every call of a channel until the returned function releases them (to see loading states). */
  hold(channel: RequestName): () => void;
  /** Makes the next call of a channel fail with this message and code. */
  failNext(channel: RequestName, message: string, code?: string): void;
  emit<E extends EventName>(event: E, payload: EventPayload<E>): void;
  /** Moves a running download forward by `bytes` (emitting progress) and finishes it at its size. */
  advanceDownload(downloadId: string, bytes: number): void;
  /** Ends a running download with an error, as a dropped connection would. */
  interruptDownload(downloadId: string, message: string): void;
  downloads: Map<string, { repoId: string; bytesDone: number; bytesTotal: number; state: DownloadProgress['state'] }>;
  recent: RecentModel[];
}

export function createFakeStudio(opts: FakeStudioOptions = {}): FakeStudio {
  const models = new Map(Object.entries(opts.models ?? {}));
  const hub = new Map((opts.hub ?? []).map((r) => [r.model.id, r]));
  const cached = new Set<string>();
  const listeners = new Map<EventName, Set<(p: unknown) => void>>();
  const failures = new Map<RequestName, FakeFailure>();
  const holds = new Map<RequestName, Promise<void>>();
  const downloads: FakeStudio['downloads'] = new Map();
  const recent: RecentModel[] = [];
  const calls: FakeStudio['calls'] = [];
  let nextDownload = 1;
  let settings: Settings = { threads: null };

  function emit<E extends EventName>(event: E, payload: EventPayload<E>) {
    const parsed = events[event].parse(payload);
    for (const l of listeners.get(event) ?? []) l(parsed);
  }

  function progress(downloadId: string, extra: Partial<DownloadProgress> = {}) {
    const d = downloads.get(downloadId)!;
    emit('download.progress', {
      downloadId,
      repoId: d.repoId,
      file: 'model.safetensors',
      bytesDone: d.bytesDone,
      bytesTotal: d.bytesTotal,
      speedBytesPerSec: d.state === 'running' ? 1024 * 1024 : 0,
      etaSeconds: d.state === 'running' ? (d.bytesTotal - d.bytesDone) / (1024 * 1024) : null,
      state: d.state,
      ...extra,
    });
  }

  function remember(inspection: ModelInspection) {
    const path = inspection.source.path;
    const at = recent.findIndex((r) => r.path === path);
    if (at >= 0) recent.splice(at, 1);
    recent.unshift({
      path,
      repoId: inspection.source.repoId,
      name: inspection.source.repoId ?? path.split('/').filter(Boolean).pop() ?? path,
      family: inspection.architecture.family,
      params: inspection.parameters.total,
      openedAt: new Date().toISOString(),
    });
  }

  const handlers: Handlers = {
    'app.info': () => ({
      version: '0.1.0',
      face: opts.face ?? 'browser',
      cpu: 'Test CPU (AVX2, FMA)',
      avx2: true,
      threads: 2,
      studioHome: '/tmp/quip-studio-test',
      hubEndpoint: 'http://127.0.0.1:9/hub',
      hubCache: '/tmp/quip-studio-test/hf',
      sampleModel: opts.sampleModel === undefined ? null : opts.sampleModel,
    }),
    'models.pickFolder': () => ({ path: opts.face === 'electron' ? (opts.pickedFolder ?? null) : null, supported: opts.face === 'electron' }),
    'models.inspect': ({ source }) => {
      const local = models.get(source);
      if (local) {
        remember(local);
        return local;
      }
      const repo = hub.get(source);
      if (repo && cached.has(source)) {
        remember(repo.inspection);
        return repo.inspection;
      }
      if (repo) throw new FakeFailure(`${source} is not downloaded yet. Download it first.`, 'NOT_DOWNLOADED');
      throw new FakeFailure(`${source} has no config.json, so it is not a Hugging Face model folder. Choose the folder that holds config.json and the .safetensors files.`, 'NOT_A_MODEL');
    },
    'models.recent': () => recent.map((r) => ({ ...r })),
    'models.forget': ({ path }) => {
      const at = recent.findIndex((r) => r.path === path);
      if (at >= 0) recent.splice(at, 1);
      return { ok: true as const };
    },
    'hub.search': ({ query, limit }) =>
      [...hub.values()]
        .filter((r) => r.model.id.toLowerCase().includes(query.toLowerCase()))
        .slice(0, limit)
        .map((r) => ({ ...r.model, cached: cached.has(r.model.id) })),
    'hub.download': ({ repoId }) => {
      const repo = hub.get(repoId);
      if (!repo) throw new FakeFailure(`${repoId} does not exist on the Hugging Face Hub (or it is private). Check the spelling.`, 'REPO_NOT_FOUND');
      // A resumed download starts from what an earlier attempt kept.
      const earlier = [...downloads.values()].filter((d) => d.repoId === repoId).reduce((m, d) => Math.max(m, d.bytesDone), 0);
      const downloadId = `download-${nextDownload++}`;
      downloads.set(downloadId, { repoId, bytesDone: earlier, bytesTotal: repo.bytes, state: 'running' });
      queueMicrotask(() => progress(downloadId));
      return { downloadId };
    },
    'hub.cancelDownload': ({ downloadId }) => {
      const d = downloads.get(downloadId);
      if (!d) throw new FakeFailure(`There is no download ${downloadId}.`, 'NOT_FOUND');
      if (d.state === 'running') {
        d.state = 'cancelled';
        progress(downloadId);
      }
      return { ok: true as const };
    },
    'settings.get': () => settings,
    'settings.update': (patch) => (settings = { ...settings, ...patch }),
    'jobs.list': (): JobInfo[] => [],
    'jobs.cancel': () => ({ cancelled: false }),
  };

  async function invoke(channel: RequestName, input: unknown): Promise<Reply> {
    const spec = requests[channel];
    const parsedInput = spec.input.safeParse(input);
    if (!parsedInput.success) return { ok: false, error: { message: `Bad input for ${channel}: ${parsedInput.error.message}`, code: 'BAD_INPUT' } };
    calls.push({ channel, input: parsedInput.data });
    await holds.get(channel);
    const failure = failures.get(channel);
    if (failure) {
      failures.delete(channel);
      return { ok: false, error: { message: failure.message, code: failure.code } };
    }
    try {
      const handler = handlers[channel] as (input: unknown) => unknown;
      const value = spec.output.parse(await handler(parsedInput.data));
      return { ok: true, value };
    } catch (err) {
      if (err instanceof FakeFailure) return { ok: false, error: { message: err.message, code: err.code } };
      throw err;
    }
  }

  const api = createStudioApi({
    invoke,
    subscribe(event, listener) {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      set.add(listener);
      return () => void set.delete(listener);
    },
  });

  return {
    api,
    calls,
    recent,
    downloads,
    emit,
    hold(channel) {
      let release!: () => void;
      holds.set(channel, new Promise<void>((r) => (release = r)));
      return () => {
        holds.delete(channel);
        release();
      };
    },
    failNext(channel, message, code = 'ERROR') {
      failures.set(channel, new FakeFailure(message, code));
    },
    advanceDownload(downloadId, bytes) {
      const d = downloads.get(downloadId);
      if (!d || d.state !== 'running') throw new Error(`fake: download ${downloadId} is not running`);
      d.bytesDone = Math.min(d.bytesTotal, d.bytesDone + bytes);
      if (d.bytesDone === d.bytesTotal) {
        d.state = 'done';
        cached.add(d.repoId);
        progress(downloadId, { dir: `/tmp/hf/models--${d.repoId.replace('/', '--')}/snapshots/main` });
      } else progress(downloadId);
    },
    interruptDownload(downloadId, message) {
      const d = downloads.get(downloadId);
      if (!d || d.state !== 'running') throw new Error(`fake: download ${downloadId} is not running`);
      d.state = 'error';
      progress(downloadId, { error: message });
    },
  };
}
