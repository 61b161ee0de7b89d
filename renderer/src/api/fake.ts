// The one in-memory StudioApi for renderer tests. It implements every channel of app/contract (the
// handler table below is typed over all of them, so a new channel fails to compile here until the
// fake learns it), validates inputs and outputs with the contract's own zod schemas, and serves real
// data: inspections produced by the real inspector (./fixtures), a hub catalogue, downloads whose
// progress the test drives step by step, runs whose settings and estimates come from the quantization
// domain (app/domain/quantize: resolveSettings, estimateRun) and whose events the test drives, and chat
// replies the test streams token by token.
import { importNote } from '../../../app/domain/gguf-import';
import { calibrateEstimate, estimateRun, estimateWeightBytes, evaluationTokens, modelParams, predictedGroups, resolveEvaluation, resolveSettings, SETTING_LABELS, SettingsError } from '../../../app/domain/quantize/index';
import {
  createStudioApi,
  events,
  requests,
  Settings as SettingsSchema,
  type ApiRequestLog,
  type ApiStatus,
  type AppInfo,
  type ChatMessage,
  type ChatRecord,
  type ChatStats,
  type DownloadProgress,
  type FileEntry,
  type FieldProblem,
  describeInputIssues,
  settingPath,
  type EventName,
  type EventPayload,
  type HubModel,
  type JobInfo,
  type LoadedModelInfo,
  type LoadedModels,
  type ModelInspection,
  type ParsedInput,
  type RecentModel,
  type Reply,
  type RequestName,
  type RequestOutput,
  type RunDetail,
  type RunEventBody,
  type RunSummary,
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
  /** Runs already in the studio home. */
  runs?: RunDetail[];
  /** GGUF files models.importGguf can import, by path: the imported folder's inspection and whether the source was quantized. */
  ggufFiles?: Record<string, { inspection: ModelInspection; lossy: boolean }>;
  /** What files.list shows: every folder's entries by its path (the first key is the home folder). */
  files?: Record<string, FileEntry[]>;
}

export class FakeFailure extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly fields?: FieldProblem[],
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
  failNext(channel: RequestName, message: string, code?: string, fields?: FieldProblem[]): void;
  emit<E extends EventName>(event: E, payload: EventPayload<E>): void;
  /** Moves a running download forward by `bytes` (emitting progress) and finishes it at its size. */
  advanceDownload(downloadId: string, bytes: number): void;
  /** Ends a running download with an error, as a dropped connection would. */
  interruptDownload(downloadId: string, message: string): void;
  downloads: Map<string, { repoId: string; bytesDone: number; bytesTotal: number; state: DownloadProgress['state'] }>;
  recent: RecentModel[];
  /** Runs by id as the studio home would hold them. */
  runs: Map<string, RunDetail>;
  /** Sends a run event and applies it to the stored run, as the job service does. */
  runEvent(runId: string, body: RunEventBody): void;
  /** Chat replies asked for and not yet finished, by stream id, with what was asked. */
  streams: Map<string, { modelDir: string; text: string; messages: ChatMessage[] }>;
  /** Streams `pieces` as chat.token events, then ends the reply (unless `end` is false). */
  streamReply(streamId: string, pieces: string[], end?: boolean): void;
  chats: Map<string, ChatRecord>;
  /** What chat.count answers: the context of every model and how a conversation is counted (default: words, plus 2 per message). */
  context: { length: number; count(messages: ChatMessage[]): number };
  /** Loaded models by folder (chat.send, chat.count and models.load load one). */
  loaded: Map<string, LoadedModelInfo>;
  /** The local server as the switch sees it. */
  apiServer: ApiStatus;
  /** A request reaching the fake local server: logged and sent as an api.request event. */
  apiRequest(row: Partial<ApiRequestLog>): void;
}

/** The fake's evaluation text (the real studio reads the start of WikiText-2 test). */
export const FAKE_TOKEN_TEXT = ' = Robert Boulter = \n Robert Boulter is an English film , television and theatre actor . He had a guest @-@ starring role on the television series The Bill in 2000 .';
const FAKE_WORDS = [' the', ' a', ' of', ' and', ' actor', ' film', ' role', ' in', ' was', ' he'];

/**
 * Token by token, deterministic: the text split into words (each with its leading space), and per run
 * a KLD that falls with its bits per weight (2 bits ~0.3 nats, 4 bits ~0.03) times a fixed wave over
 * the positions, so a 2-bit row is darker than a 4-bit one everywhere; top-5 lists from a small word
 * list, the run's drifting from the base's as its KLD grows.
 */
export function fakeTokenKld(chosen: RunDetail[], text: string | null, ctx: number): RequestOutput<'compare.tokenKld'> {
  const source = text?.trim() ? text : FAKE_TOKEN_TEXT;
  const tokens = (source.match(/\s*\S+/g) ?? []).slice(0, ctx);
  const top = (i: number, shift: number) => {
    const ps = [0.5, 0.2, 0.1, 0.05, 0.02].map((p, k) => (k === 0 ? p - shift : k === 1 ? p + shift : p));
    return ps.map((p, k) => ({ text: k === 0 ? tokens[i]! : FAKE_WORDS[(i + k) % FAKE_WORDS.length]!, p }));
  };
  const groups = new Map<string, RunDetail[]>();
  for (const r of chosen) {
    const key = r.modelDir ?? `name:${r.modelName ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return {
    source: text?.trim() ? 'your text' : `WikiText-2 test, first ${tokens.length} tokens`,
    groups: [...groups.values()].map((members) => ({
      modelDir: members[0]!.modelDir ?? '',
      modelName: members[0]!.modelName ?? 'model',
      tokens,
      baseTop: tokens.map((_t, i) => (i === 0 ? null : top(i, 0))),
      runs: members.map((r) => {
        const bpw = r.settings?.targetBpw ?? r.settings?.bits ?? 2;
        const level = 0.3 * Math.pow(10, -(bpw - 2) / 2);
        const kld = tokens.map((_t, i) => (i === 0 ? null : level * (1 + 0.8 * Math.sin(i * 1.3))));
        const scored = kld.filter((x): x is number => x !== null);
        return {
          runId: r.runId,
          dir: r.dir,
          kld,
          top: tokens.map((_t, i) => (i === 0 ? null : top(i, Math.min(0.15, kld[i]! / 2)))),
          meanKld: scored.reduce((a, x) => a + x, 0) / Math.max(1, scored.length),
          sameTop: 1,
        };
      }),
      truncated: false,
      seconds: 0.01,
    })),
  };
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
  let nextJob = 1;
  const calls: FakeStudio['calls'] = [];
  let nextDownload = 1;
  let settings: Settings = SettingsSchema.parse({ apiKey: 'quip-fake-key-0123456789abcdef' });
  const context: FakeStudio['context'] = {
    length: 512,
    count: (messages) => messages.reduce((n, m) => n + 2 + (m.content.trim() ? m.content.trim().split(/\s+/).length : 0), 0),
  };
  const loaded = new Map<string, LoadedModelInfo>();
  let nextKey = 1;
  const apiServer: ApiStatus = { running: false, baseUrl: null, host: '127.0.0.1', port: settings.apiPort, exposed: false, apiKey: settings.apiKey!, cors: null, error: null, log: [] };
  const runs = new Map<string, RunDetail>((opts.runs ?? []).map((r) => [r.runId, structuredClone(r)]));
  const streams: FakeStudio['streams'] = new Map();
  const chats = new Map<string, ChatRecord>();
  let nextRun = 1;
  let nextStream = 1;
  const THREADS = 2;

  /** A run's summary: its detail without the per-layer lists. */
  function summary(r: RunDetail): RunSummary {
    const { layers: _l, fineTune: _f, log: _g, timings: _t, ...rest } = r;
    return structuredClone(rest);
  }

  function modelAt(dir: string): ModelInspection {
    const m = models.get(dir) ?? [...hub.values()].find((r) => cached.has(r.model.id) && r.inspection.source.path === dir)?.inspection;
    if (!m) throw new FakeFailure(`${dir} has no config.json, so it is not a Hugging Face model folder.`, 'NOT_A_MODEL');
    return m;
  }

  function settingsOf<I, O = ReturnType<typeof resolveSettings>>(input: I, resolve: (input: I) => O = resolveSettings as unknown as (input: I) => O): O {
    try {
      return resolve(input);
    } catch (err) {
      if (err instanceof SettingsError) throw new FakeFailure(err.message, err.code, [{ path: settingPath(err.field), label: SETTING_LABELS[err.field], message: err.message }]);
      throw err;
    }
  }

  function setRun(runId: string, change: Partial<RunDetail>) {
    const r = runs.get(runId);
    if (!r) throw new FakeFailure(`There is no run ${runId}.`, 'NOT_FOUND');
    Object.assign(r, change);
    emit('run.event', { runId, at: Date.now(), body: { type: 'state', run: summary(r) } });
    return summary(r);
  }

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
      simd: 'avx2',
      threads: 2,
      studioHome: '/tmp/quip-studio-test',
      hubEndpoint: 'http://127.0.0.1:9/hub',
      hubCache: '/tmp/quip-studio-test/hf',
      sampleModel: opts.sampleModel === undefined ? null : opts.sampleModel,
    }),
    'models.pickFolder': () => ({ path: opts.face === 'electron' ? (opts.pickedFolder ?? null) : null, supported: opts.face === 'electron' }),
    'files.pick': () => ({ path: opts.face === 'electron' ? (opts.pickedFolder ?? null) : null, supported: opts.face === 'electron' }),
    'files.list': ({ dir, choose }) => {
      const tree = opts.files ?? {};
      const home = Object.keys(tree)[0] ?? '/home/user';
      const at = dir ?? home;
      const entries = tree[at];
      if (!entries) throw new FakeFailure(`${at} is outside the folders the studio shows: ${home}. Move the model or text into one of them, or type its path in the field.`, 'OUTSIDE_ROOTS');
      const shown = entries.filter((e) => e.size === null || (choose === 'text' ? e.kind === 'text' : e.kind === 'gguf'));
      return { dir: at, parent: at === home ? null : at.replace(/\/[^/]+$/, '') || '/', roots: [{ path: home, label: 'Home' }], entries: shown, truncated: false };
    },
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
    'models.importGguf': ({ file }) => {
      const gguf = opts.ggufFiles?.[file];
      if (!gguf) throw new FakeFailure(`There is no file at ${file}. Check the path of the .gguf file.`, 'NOT_FOUND');
      const jobId = `job-import-${nextJob++}`;
      emit('models.importProgress', { jobId, file, fraction: null, message: `Import ${file}` });
      remember(gguf.inspection);
      return { inspection: gguf.inspection, lossy: gguf.lossy, note: importNote(gguf.lossy), warnings: [], seconds: 0.5 };
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

    'runs.estimate': ({ modelDir, settings: input, evaluation: evalInput }) => {
      const model = modelAt(modelDir);
      const resolved = settingsOf(input);
      const evaluation = settingsOf(evalInput, resolveEvaluation);
      const threads = resolved.threads ?? settings.threads ?? THREADS;
      const e = estimateRun(model.architecture, resolved, threads, model.architecture.contextLength, evaluationTokens(evaluation, model.architecture.contextLength));
      // The inspection's size at these bits: the real studio's comes from the same estimator.
      const outputBytes = resolved.targetBpw !== null ? estimateWeightBytes(model.architecture, resolved) : (model.sizes.find((x) => x.bits === resolved.bits)?.bytes ?? 0);
      const t = calibrateEstimate(predictedGroups(e, 0), modelParams(model.architecture), [], e.units);
      const time = { seconds: t.seconds, low: t.low, high: t.high, basis: t.basis, observations: t.observations, probing: false, phases: t.groups };
      return { settings: resolved, threads, tokens: e.tokens, seconds: e.seconds, peakBytes: e.peakBytes, time, evaluation, outputBytes, layers: model.linears.length };
    },
    'runs.start': ({ modelDir, settings: input, name }) => {
      const model = modelAt(modelDir);
      const resolved = settingsOf(input);
      const modelName = model.source.repoId ?? modelDir.split('/').filter(Boolean).pop() ?? modelDir;
      const runName = name ?? `${modelName.replace(/\//g, '--')}-${resolved.targetBpw !== null ? `mixed-${resolved.targetBpw}bpw` : `${resolved.bits}bit-${resolved.codebook}`}-${nextRun}`;
      const runId = `run-${nextRun++}`;
      const run: RunDetail = {
        runId,
        name: runName,
        dir: `/tmp/quip-studio-test/runs/${runName}`,
        modelDir,
        modelName,
        settings: resolved,
        state: 'queued',
        phase: null,
        error: null,
        origin: 'studio',
        createdAt: new Date().toISOString(),
        finishedAt: null,
        layersDone: 0,
        layersTotal: model.linears.length,
        etaSeconds: null,
        bitsPerWeight: null,
        bytesOnDisk: null,
        perplexity: null,
        perplexityFull: null,
        seconds: null,
        meanProxyLoss: null,
        layers: [],
        fineTune: [],
        log: [],
        timings: {},
      };
      runs.set(runId, run);
      queueMicrotask(() => emit('run.event', { runId, at: Date.now(), body: { type: 'state', run: summary(run) } }));
      return summary(run);
    },
    'runs.list': () => [...runs.values()].reverse().map(summary),
    'runs.get': ({ runId }) => {
      const r = runs.get(runId);
      if (!r) throw new FakeFailure(`There is no run ${runId}.`, 'NOT_FOUND');
      return structuredClone(r);
    },
    'runs.cancel': ({ runId }) => {
      const r = runs.get(runId);
      if (!r) throw new FakeFailure(`There is no run ${runId}.`, 'NOT_FOUND');
      return r.state === 'queued' || r.state === 'running' ? setRun(runId, { state: 'cancelled', etaSeconds: null }) : summary(r);
    },
    'runs.resume': ({ runId }) => {
      const r = runs.get(runId);
      if (!r) throw new FakeFailure(`There is no run ${runId}.`, 'NOT_FOUND');
      if (r.state !== 'cancelled' && r.state !== 'interrupted' && r.state !== 'error') {
        throw new FakeFailure(`Run ${r.name} is ${r.state}; only an interrupted or cancelled run can be resumed.`, 'NOT_RESUMABLE');
      }
      return setRun(runId, { state: 'queued', error: null });
    },
    'runs.delete': ({ runId }) => {
      if (!runs.delete(runId)) throw new FakeFailure(`There is no run ${runId}.`, 'NOT_FOUND');
      return { ok: true as const };
    },
    'runs.reveal': ({ runId }) => {
      const r = runs.get(runId);
      if (!r) throw new FakeFailure(`There is no run ${runId}.`, 'NOT_FOUND');
      return { path: r.dir, supported: opts.face === 'electron' };
    },
    'compare.tokenKld': ({ runIds, text, ctx }) => fakeTokenKld([...new Set(runIds)].map((id) => {
      const r = runs.get(id);
      if (!r) throw new FakeFailure(`There is no run ${id}.`, 'NOT_FOUND');
      if (r.state !== 'done') throw new FakeFailure(`Run ${r.name} is ${r.state}; token by token compares finished runs.`, 'RUN_NOT_DONE');
      return r;
    }), text ?? null, ctx),

    'chat.send': ({ modelDir, messages }) => {
      modelAt(modelDir);
      load(modelDir);
      const streamId = `stream-${nextStream++}`;
      streams.set(streamId, { modelDir, text: '', messages });
      return { streamId };
    },
    'chat.count': ({ modelDir, messages }) => {
      modelAt(modelDir);
      load(modelDir);
      return { promptTokens: context.count(messages), contextLength: context.length };
    },
    'models.loaded': () => loadedModels(),
    'models.load': ({ modelDir }) => {
      modelAt(modelDir);
      return load(modelDir);
    },
    'models.unload': ({ modelDir }) => {
      const unloaded = loaded.delete(modelDir);
      if (unloaded) emit('models.loadedChanged', loadedModels());
      return { unloaded };
    },
    'api.status': () => structuredClone(apiServer),
    'api.set': ({ enabled, port, host, cors }) => {
      settings = { ...settings, ...(port !== undefined ? { apiPort: port } : {}), ...(host !== undefined ? { apiHost: host } : {}), ...(cors !== undefined ? { apiCors: cors } : {}) };
      Object.assign(apiServer, {
        running: enabled,
        host: settings.apiHost,
        port: settings.apiPort,
        cors: settings.apiCors,
        exposed: !/^(127\.|localhost$|::1$)/.test(settings.apiHost),
        baseUrl: enabled ? `http://${settings.apiHost}:${settings.apiPort}/v1` : null,
      });
      emit('api.statusChanged', structuredClone(apiServer));
      return structuredClone(apiServer);
    },
    'api.regenerateKey': () => {
      settings = { ...settings, apiKey: `quip-fake-key-${nextKey++}-0123456789abcdef` };
      apiServer.apiKey = settings.apiKey!;
      emit('api.statusChanged', structuredClone(apiServer));
      return structuredClone(apiServer);
    },
    'chat.stop': ({ streamId }) => {
      const st = streams.get(streamId);
      if (!st) return { stopped: false };
      finishStream(streamId, 'cancelled');
      return { stopped: true };
    },
    'chats.list': () => [...chats.values()].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt)).map((c) => structuredClone(c)),
    'chats.save': (chat) => {
      chats.set(chat.chatId, structuredClone(chat));
      return chat;
    },
    'chats.delete': ({ chatId }) => {
      if (!chats.delete(chatId)) throw new FakeFailure(`There is no chat ${chatId}.`, 'NOT_FOUND');
      return { ok: true as const };
    },
  };

  function finishStream(streamId: string, stopReason: ChatStats['stopReason']) {
    const st = streams.get(streamId)!;
    streams.delete(streamId);
    const tokens = st.text.length === 0 ? 0 : st.text.split(/(?=\s)/).length;
    const stats: ChatStats = {
      tokens,
      promptTokens: context.count(st.messages),
      tokensPerSecond: tokens ? 50 : 0,
      prefillTokensPerSecond: 500,
      stopReason,
      templated: false,
      reusedTokens: 0,
      timeToFirstTokenMs: tokens ? 12 : null,
      contextLength: context.length,
    };
    emit('chat.token', { streamId, type: 'done', text: st.text, stats });
  }

  function loadedModels(): LoadedModels {
    return { models: [...loaded.values()].reverse(), memoryBudgetBytes: 8 * 2 ** 30, totalMemoryBytes: 16 * 2 ** 30, idleUnloadMinutes: settings.idleUnloadMinutes };
  }

  /** Loads a model folder (as the studio's model manager does for a chat); emits the new list. */
  function load(modelDir: string): LoadedModelInfo {
    const now = new Date().toISOString();
    const had = loaded.get(modelDir);
    const info: LoadedModelInfo = had
      ? { ...had, lastUsedAt: now }
      : { modelDir, name: modelDir.split('/').filter(Boolean).pop() ?? modelDir, state: 'ready', pid: 4000 + loaded.size, residentBytes: 64 * 2 ** 20, contextLength: context.length, loadedAt: now, lastUsedAt: now, queued: 0, busy: false };
    loaded.delete(modelDir);
    loaded.set(modelDir, info);
    if (!had) emit('models.loadedChanged', loadedModels());
    return info;
  }

  async function invoke(channel: RequestName, input: unknown): Promise<Reply> {
    const spec = requests[channel];
    const parsedInput = spec.input.safeParse(input);
    if (!parsedInput.success) {
      // Worded as the real dispatcher words it (app/services/dispatch.ts).
      const { message, fields } = describeInputIssues(channel, parsedInput.error);
      return { ok: false, error: { message, code: 'INVALID_INPUT', fields } };
    }
    calls.push({ channel, input: parsedInput.data });
    await holds.get(channel);
    const failure = failures.get(channel);
    if (failure) {
      failures.delete(channel);
      return { ok: false, error: { message: failure.message, code: failure.code, ...(failure.fields ? { fields: failure.fields } : {}) } };
    }
    try {
      const handler = handlers[channel] as (input: unknown) => unknown;
      const value = spec.output.parse(await handler(parsedInput.data));
      return { ok: true, value };
    } catch (err) {
      if (err instanceof FakeFailure) return { ok: false, error: { message: err.message, code: err.code, ...(err.fields ? { fields: err.fields } : {}) } };
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
    runs,
    streams,
    chats,
    context,
    loaded,
    apiServer,
    apiRequest(row) {
      const entry: ApiRequestLog = { at: new Date().toISOString(), method: 'POST', path: '/v1/chat/completions', status: 200, model: null, ms: 5, ...row };
      apiServer.log.unshift(entry);
      emit('api.request', entry);
    },
    emit,
    runEvent(runId, body) {
      const r = runs.get(runId);
      if (!r) throw new Error(`fake: no run ${runId}`);
      switch (body.type) {
        case 'state':
          Object.assign(r, structuredClone(body.run));
          break;
        case 'phase':
          r.phase = body.phase;
          break;
        case 'layer':
          r.layers.push(body.layer);
          r.layersDone = r.layers.length;
          r.meanProxyLoss = r.layers.reduce((a, l) => a + l.proxyLoss, 0) / r.layers.length;
          break;
        case 'eta':
          Object.assign(r, { layersDone: body.layersDone, layersTotal: body.layersTotal, etaSeconds: body.etaSeconds });
          break;
        case 'log':
          r.log.push(body.line);
          break;
        case 'fineTune':
          r.fineTune.push(body.epoch);
          break;
      }
      emit('run.event', { runId, at: Date.now(), body });
    },
    streamReply(streamId, pieces, end = true) {
      const st = streams.get(streamId);
      if (!st) throw new Error(`fake: stream ${streamId} is not open`);
      for (const text of pieces) {
        st.text += text;
        emit('chat.token', { streamId, type: 'token', text, tokens: st.text.split(/(?=\s)/).length, tokensPerSecond: 50 });
      }
      if (end) finishStream(streamId, 'eos');
    },
    hold(channel) {
      let release!: () => void;
      holds.set(channel, new Promise<void>((r) => (release = r)));
      return () => {
        holds.delete(channel);
        release();
      };
    },
    failNext(channel, message, code = 'ERROR', fields) {
      failures.set(channel, new FakeFailure(message, code, fields));
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
