// The studio's services behind the contract, shared by every face: Electron main (over IPC) and the
// local server (over WebSocket) both call createStudioServices and route requests to `dispatch`.
// Heavy and native work goes to the job process (JobClient); hub downloads run here.
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { AppInfo, EventName, Face, FileChoice, FileRoot, Settings, SimdPath } from '../../contract/channels.js';
import type { LoadedModels } from '../../contract/local-api.js';
import { nameProblem } from '../../contract/limits.js';
import { IMPORT_RECORD_FILE } from '../../engine/gguf/import.js';
import { UserError } from '../../util/errors.js';
import { childPath, sampleModelDir, studioHome } from '../../util/paths.js';
import { createDispatcher, checkedEmit, type CallContext, type Dispatch, type Emit, type StudioHandlers } from '../dispatch.js';
import { cachedSnapshot, downloadModel, looksLikeRepoId, resolveHubSettings, resolveModelDir, searchModels, type HubSettings } from '../hub/index.js';
import { JobClient, type JobProcessFactory } from '../jobs/client.js';
import { Library } from '../library/library.js';
import packageJson from '../../../package.json';
import { Downloads } from './downloads.js';
import { defaultRoots, listFolder } from '../files/browse.js';
import { ChatService } from '../chat/index.js';
import { LocalApiService } from '../api/control.js';
import { studioApiModels } from '../api/studio-models.js';
import { ModelManager } from '../models/manager.js';
import { RunService } from '../runs/service.js';
import { compareTokenKld } from '../runs/token-kld.js';

export interface StudioServicesOptions {
  face: Face;
  /** Starts job processes: child_process.fork (server) or utilityProcess (Electron). */
  spawnJob: JobProcessFactory;
  /** Delivers an event to every connected UI. */
  send: (event: EventName, payload: unknown) => void;
  /** Studio home; defaults to studioHome() (QUIP_STUDIO_HOME). */
  home?: string;
  /** Hub endpoint, token and cache overrides (tests point these at a mock hub). */
  hub?: HubSettings;
  /** The native folder dialog; absent in the browser face. */
  pickFolder?: (ctx: CallContext) => Promise<string | null>;
  /** The native dialog for a model folder, a .gguf or a text file; absent in the browser face. */
  pickFile?: (ctx: CallContext, choose: FileChoice) => Promise<string | null>;
  /** Where the file browser (files.list) may go; default: home, studio home, HF cache, mounted volumes. */
  fileRoots?: FileRoot[];
  /** The built-in sample model folder (default: assets/models/stories260k of this checkout). */
  sampleModel?: string;
  /** A long job's limit (default 30 minutes for an inspection). */
  inspectTimeoutMs?: number;
  /** Shows a file or folder in the file manager (desktop); absent in the browser face. */
  reveal?: (path: string) => void;
}

export interface StudioServices {
  dispatch: Dispatch;
  handlers: StudioHandlers;
  jobs: JobClient;
  library: Library;
  downloads: Downloads;
  runs: RunService;
  chat: ChatService;
  /** Loaded models (one long-lived job process each): chat and the local API both go through it. */
  models: ModelManager;
  /** The OpenAI-compatible local server behind the "Local server" switch. */
  api: LocalApiService;
  /** Cancel downloads and jobs and wait for them. */
  close(): Promise<void>;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

export function createStudioServices(opts: StudioServicesOptions): StudioServices {
  const home = opts.home ?? studioHome();
  const emit: Emit = checkedEmit(opts.send);
  const jobs = new JobClient({ spawn: opts.spawnJob });
  const library = new Library(home);
  const downloads = new Downloads(emit);
  const hub = () => resolveHubSettings(opts.hub ?? {});
  const sample = opts.sampleModel ?? sampleModelDir();
  const threadSetting = async () => (await library.settings()).threads;
  const runs = new RunService({
    home,
    jobs,
    emit,
    threads: async () => ({ setting: await threadSetting(), available: (await cpuInfo()).threads }),
  });
  // Loaded models live in their own job processes for as long as they stay loaded: a client of their
  // own, so they never hold the short jobs' process slots (maxProcesses) and the memory budget, not a
  // process count, bounds them.
  const modelJobs = new JobClient({ spawn: opts.spawnJob, maxProcesses: Number.MAX_SAFE_INTEGER });
  // The loaded-models panel follows every change (a load, an unload, a busy host), a few per second at most.
  let loadedTimer: NodeJS.Timeout | null = null;
  const loadedChanged = () => {
    if (loadedTimer) return;
    loadedTimer = setTimeout(() => {
      loadedTimer = null;
      loadedModels().then((v) => emit('models.loadedChanged', v), () => {});
    }, 100);
    loadedTimer.unref?.();
  };
  const models = new ModelManager({ jobs: modelJobs, threads: threadSetting, onChange: loadedChanged });
  const applyModelSettings = (s: Settings) => models.setLimits({ idleMs: s.idleUnloadMinutes * 60_000, memoryBudgetBytes: s.memoryBudgetBytes });
  void library.settings().then(applyModelSettings, () => {});
  async function loadedModels(): Promise<LoadedModels> {
    const { idleMs, memoryBudgetBytes } = models.limits;
    return { models: await models.list(), memoryBudgetBytes, totalMemoryBytes: os.totalmem(), idleUnloadMinutes: Math.round(idleMs / 60_000) };
  }
  const chat = new ChatService(home, jobs, emit, threadSetting, models);
  const api = new LocalApiService({
    models,
    library,
    emit,
    listModels: () =>
      studioApiModels({
        runs,
        library,
        // The chat offers the sample model without opening it; whatever is loaded is served too.
        others: async () => [...(existsSync(path.join(sample, 'config.json')) ? [sample] : []), ...(await models.list()).map((m) => m.modelDir)],
      }),
  });

  // The CPU as the native core sees it, asked once from a job process (main never loads the addon).
  let cpu: Promise<{ summary: string; simd: SimdPath; threads: number }> | null = null;
  const cpuInfo = () =>
    (cpu ??= jobs
      .run('cpuInfo', {}, { label: 'Read CPU features' })
      .result.catch(() => ({ summary: `${os.cpus()[0]?.model ?? 'unknown CPU'} (native core not loaded)`, simd: 'scalar' as const, threads: os.availableParallelism() })));

  /** A folder on disk, or a hub id resolved (downloaded if needed, with progress events) to its snapshot. */
  async function locate(source: string, revision: string | undefined) {
    const local = path.resolve(expandHome(source));
    const st = await fs.stat(local).catch(() => null);
    if (st) return { path: st.isDirectory() ? local : path.dirname(local), repoId: null, revision: null };
    if (!looksLikeRepoId(source)) {
      throw new UserError(`There is no folder at ${local}, and "${source}" is not a Hugging Face repo id (owner/name) either. Check the path.`, 'NOT_FOUND');
    }
    const { done } = downloads.track(source, revision, ({ onProgress, signal }) => resolveModelDir(source, { ...opts.hub, revision, onProgress, signal }));
    const { dir, source: resolved } = await done;
    return { path: dir, repoId: resolved.repoId, revision: resolved.revision };
  }

  /**
   * Where a GGUF file is imported: <home>/models/<file name without .gguf>. Importing the same file
   * again replaces its earlier import; another file with the same name gets a numbered folder.
   */
  async function importTarget(file: string): Promise<{ outDir: string; force: boolean }> {
    // One safe folder name from the file's name: no leading dots ("..gguf" must not name models/..),
    // no trailing ones, no Windows device name, short enough for a numbered sibling.
    let base = path.basename(file).replace(/\.gguf$/i, '').replace(/[^\w.-]+/g, '-').replace(/^[.-]+|[.-]+$/g, '').slice(0, 120);
    if (!base || nameProblem(base, 'model folder name')) base = `model${base ? `-${base}` : ''}`;
    const models = path.join(home, 'models');
    for (let n = 1; ; n++) {
      const outDir = childPath(models, n === 1 ? base : `${base}-${n}`, 'model folder name');
      if (!existsSync(outDir)) return { outDir, force: false };
      const record = await fs.readFile(path.join(outDir, IMPORT_RECORD_FILE), 'utf8').then((t) => JSON.parse(t) as { source?: { path?: string } }, () => null);
      if (record?.source?.path === file) return { outDir, force: true };
    }
  }

  const handlers: StudioHandlers = {
    'app.info': async (): Promise<AppInfo> => {
      const [c, settings] = await Promise.all([cpuInfo(), library.settings()]);
      const h = hub();
      return {
        version: packageJson.version,
        face: opts.face,
        cpu: c.summary,
        simd: c.simd,
        threads: settings.threads ?? c.threads,
        studioHome: home,
        hubEndpoint: h.endpoint,
        hubCache: h.cacheDir,
        sampleModel: existsSync(path.join(sample, 'config.json')) ? sample : null,
      };
    },
    'models.pickFolder': async (_input, ctx) =>
      opts.pickFolder ? { path: await opts.pickFolder(ctx), supported: true } : { path: null, supported: false },
    'files.pick': async ({ choose }, ctx) => (opts.pickFile ? { path: await opts.pickFile(ctx, choose), supported: true } : { path: null, supported: false }),
    'files.list': async (input) => listFolder(input, { roots: opts.fileRoots ?? defaultRoots({ studioHome: home, hubCache: hub().cacheDir }) }),
    'models.inspect': async ({ source, revision }, ctx) => {
      const where = await locate(source, revision);
      const name = where.repoId ?? path.basename(where.path);
      const { threads } = await library.settings();
      const inspection = await jobs.run('inspect', where, { label: `Inspect ${name}`, owner: ctx.client, threads: threads ?? undefined, timeoutMs: opts.inspectTimeoutMs ?? 30 * 60_000 })
        .result;
      await library.remember({
        path: inspection.source.path,
        repoId: inspection.source.repoId,
        name: inspection.source.repoId ?? path.basename(inspection.source.path),
        family: inspection.architecture.family,
        params: inspection.parameters.total,
      });
      return inspection;
    },
    'models.importGguf': async ({ file }, ctx) => {
      const source = path.resolve(expandHome(file));
      const st = await fs.stat(source).catch(() => null);
      if (!st) throw new UserError(`There is no file at ${source}. Check the path of the .gguf file.`, 'NOT_FOUND');
      if (!st.isFile()) throw new UserError(`${source} is a folder; give the path of a .gguf file inside it.`, 'NOT_A_GGUF');
      const target = await importTarget(source);
      await fs.mkdir(path.dirname(target.outDir), { recursive: true });
      const { threads } = await library.settings();
      const label = `Import ${path.basename(source)}`;
      const result = await jobs.run('importGguf', { file: source, ...target }, {
        label,
        owner: ctx.client,
        threads: threads ?? undefined,
        timeoutMs: opts.inspectTimeoutMs ?? 30 * 60_000,
        onEvent: (e) => {
          if (e.type === 'started' || e.type === 'progress') emit('models.importProgress', { jobId: e.jobId, file: source, fraction: e.fraction ?? null, message: e.message ?? label });
        },
      }).result;
      const inspection = result.inspection;
      await library.remember({ path: inspection.source.path, repoId: null, name: path.basename(inspection.source.path), family: inspection.architecture.family, params: inspection.parameters.total });
      return result;
    },
    'models.recent': async () => library.recent(),
    'models.forget': async ({ path: p }) => {
      await library.forget(p);
      return { ok: true as const };
    },
    'hub.search': async ({ query, limit }) => {
      const h = hub();
      const found = await searchModels({ ...opts.hub, query, limit });
      return Promise.all(
        found.map(async (m) => ({
          id: m.id,
          downloads: m.downloads,
          likes: m.likes,
          updatedAt: m.lastModified || null,
          pipelineTag: m.pipelineTag,
          gated: m.gated !== false,
          private: m.private,
          cached: (await cachedSnapshot(h.cacheDir, m.id, 'main').catch(() => null)) !== null,
        })),
      );
    },
    'hub.download': async ({ repoId, revision }) => {
      const { downloadId } = downloads.track(repoId, revision, ({ onProgress, signal }) => downloadModel(repoId, { ...opts.hub, revision, onProgress, signal }));
      return { downloadId };
    },
    'hub.cancelDownload': async ({ downloadId }) => {
      if (!downloads.cancel(downloadId)) throw new UserError(`No download with id ${downloadId} is running.`, 'NOT_FOUND');
      return { ok: true as const };
    },
    'settings.get': async () => library.settings(),
    'settings.update': async (patch) => {
      const next = await library.updateSettings(patch);
      if (patch.idleUnloadMinutes !== undefined || patch.memoryBudgetBytes !== undefined) await applyModelSettings(next);
      return next;
    },
    'jobs.list': async () => jobs.list(),
    'jobs.cancel': async ({ jobId }) => ({ cancelled: jobs.cancel(jobId) }),
    'runs.estimate': async ({ modelDir, settings, evaluation }) => runs.estimate(path.resolve(expandHome(modelDir)), settings, evaluation),
    'runs.start': async ({ modelDir, settings, evaluation, name }, ctx) => runs.start({ modelDir: path.resolve(expandHome(modelDir)), settings, evaluation, name }, ctx.client),
    'runs.list': async () => runs.list(),
    'runs.get': async ({ runId }) => runs.get(runId),
    'runs.cancel': async ({ runId }) => runs.cancel(runId),
    'runs.resume': async ({ runId }, ctx) => runs.resume(runId, ctx.client),
    'runs.delete': async ({ runId }) => {
      await runs.delete(runId);
      return { ok: true as const };
    },
    'runs.reveal': async ({ runId }) => {
      const dir = await runs.folder(runId);
      if (!opts.reveal) return { path: dir, supported: false };
      opts.reveal(dir);
      return { path: dir, supported: true };
    },
    'compare.tokenKld': async (input) => compareTokenKld(runs, jobs, input),
    'chat.send': async (input, ctx) => ({ streamId: await chat.send(input, ctx.client) }),
    'chat.stop': async ({ streamId }) => ({ stopped: chat.stop(streamId) }),
    'chat.count': async (input) => chat.count({ ...input, modelDir: path.resolve(expandHome(input.modelDir)) }),
    'models.loaded': async () => loadedModels(),
    'models.load': async ({ modelDir }) => models.load(path.resolve(expandHome(modelDir))),
    'models.unload': async ({ modelDir }) => ({ unloaded: await models.unload(path.resolve(expandHome(modelDir))) }),
    'api.status': async () => api.status(),
    'api.set': async (input) => api.set(input),
    'api.regenerateKey': async () => api.regenerateKey(),
    'chats.list': async () => chat.list(),
    'chats.save': async (record) => chat.save(record),
    'chats.delete': async ({ chatId }) => {
      await chat.delete(chatId);
      return { ok: true as const };
    },
  };

  return {
    dispatch: createDispatcher(handlers),
    handlers,
    jobs,
    library,
    downloads,
    runs,
    chat,
    models,
    api,
    async close() {
      await Promise.all([downloads.cancelAll(), runs.shutdown(), api.close().then(() => models.close()).then(() => modelJobs.shutdown()), jobs.shutdown()]);
    },
  };
}
