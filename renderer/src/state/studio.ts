// The one home of server data in the renderer: everything that comes over StudioApi (app info, the
// open model's inspection, recent models, hub results, downloads) lives in this store, fed by requests
// and events. UI-only state (drafts, navigation) lives in the small stores of ./ui.ts instead.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type {
  AppInfo,
  DownloadProgress,
  FieldProblem,
  HubModel,
  ImportProgress,
  ModelInspection,
  RecentModel,
  StudioApi,
} from '../../../app/contract/index';

export interface Failure {
  message: string;
  code: string;
  /** The input fields the studio refused, each named as the form labels it (contract/field-errors.ts). */
  fields?: FieldProblem[];
}

export type Loadable<T> =
  | { status: 'idle' }
  | { status: 'loading' }
  | { status: 'ready'; value: T }
  | { status: 'error'; error: Failure };

export interface InspectionSlot {
  /** What was asked for: a folder or a repo id. */
  source: string | null;
  state: Loadable<ModelInspection>;
}

export interface HubSearchSlot {
  query: string;
  state: Loadable<HubModel[]>;
}

/** The GGUF import of this window (one at a time): its job's progress, then how it ended. */
export interface GgufImportSlot {
  file: string | null;
  status: 'idle' | 'running' | 'done' | 'error' | 'cancelled';
  /** The job's id, known from its first event (cancel needs it). */
  jobId: string | null;
  fraction: number | null;
  message: string | null;
  error: Failure | null;
}

export interface StudioState {
  info: Loadable<AppInfo>;
  recent: RecentModel[];
  inspection: InspectionSlot;
  hub: HubSearchSlot;
  /** Downloads of this session by id, in the order they started. */
  downloads: Record<string, DownloadProgress>;
  downloadOrder: string[];
  /** A request that failed outside the inspection (search, download start, cancel...). */
  notice: Failure | null;
  ggufImport: GgufImportSlot;
  /** Shown above the inspection when the open model was just imported from a GGUF file (the lossy note). */
  importNote: { lossy: boolean; text: string } | null;

  start(): () => void;
  inspect(source: string): Promise<void>;
  pickFolder(): Promise<void>;
  refreshRecent(): Promise<void>;
  forget(path: string): Promise<void>;
  search(query: string): Promise<void>;
  download(repoId: string): Promise<void>;
  cancelDownload(downloadId: string): Promise<void>;
  dismissNotice(): void;
  /** Imports a GGUF file into the studio home's models folder, then shows its inspection. */
  importGguf(file: string): Promise<void>;
  cancelImport(): Promise<void>;
  dismissDownload(downloadId: string): void;
}

export type StudioStore = StoreApi<StudioState>;

/** Download progress reaches the store at most this often (events can come far faster). */
export const PROGRESS_FLUSH_MS = 100;

export function toFailure(err: unknown): Failure {
  if (err instanceof Error) {
    const fields = (err as { fields?: FieldProblem[] }).fields;
    return { message: err.message, code: (err as { code?: string }).code ?? 'ERROR', ...(fields?.length ? { fields } : {}) };
  }
  return { message: String(err), code: 'ERROR' };
}

export function createStudioStore(api: StudioApi): StudioStore {
  // Each request to inspect gets a ticket; only the latest one may write its answer.
  let inspectTicket = 0;
  let searchTicket = 0;
  // Downloads the person started here; only these open their model when done. (Opening a hub id
  // resolves it through the same download machinery, which must not open it again.)
  const started = new Set<string>();

  const store = createStore<StudioState>()((set, get) => {
    /** Applies a batch of progress events (the latest per download wins). */
    function applyProgress(batch: DownloadProgress[]) {
      const finished: DownloadProgress[] = [];
      set((s) => {
        const downloads = { ...s.downloads };
        let order = [...s.downloadOrder];
        for (const p of batch) {
          const before = downloads[p.downloadId];
          if (!order.includes(p.downloadId)) {
            // One row per repository: a resumed or repeated download replaces the earlier row.
            const earlier = order.filter((id) => downloads[id]?.repoId === p.repoId);
            for (const id of earlier) delete downloads[id];
            order = [...order.filter((id) => !earlier.includes(id)), p.downloadId];
          }
          downloads[p.downloadId] = p;
          if (p.state === 'done' && before?.state !== 'done' && started.has(p.downloadId)) finished.push(p);
        }
        return { downloads, downloadOrder: order };
      });
      for (const p of finished) {
        // A model that just arrived is what the person wants to see next.
        void get().inspect(p.repoId);
      }
      // The hub results say which models are in the cache; ask again now that one more is.
      const hub = get().hub;
      if (finished.length > 0 && hub.state.status === 'ready') void get().search(hub.query);
    }

    return {
      info: { status: 'idle' },
      recent: [],
      inspection: { source: null, state: { status: 'idle' } },
      hub: { query: '', state: { status: 'idle' } },
      downloads: {},
      downloadOrder: [],
      notice: null,
      ggufImport: { file: null, status: 'idle', jobId: null, fraction: null, message: null, error: null },
      importNote: null,

      start() {
        let pending = new Map<string, DownloadProgress>();
        let timer: ReturnType<typeof setTimeout> | null = null;
        const flush = () => {
          timer = null;
          const batch = [...pending.values()];
          pending = new Map();
          if (batch.length) applyProgress(batch);
        };
        const off = api.on('download.progress', (p) => {
          pending.set(p.downloadId, p);
          // Ends of a download are applied at once; running updates wait for the next flush.
          if (p.state !== 'running') {
            if (timer) clearTimeout(timer);
            flush();
          } else if (!timer) timer = setTimeout(flush, PROGRESS_FLUSH_MS);
        });
        const offImports = api.on('models.importProgress', (e: ImportProgress) => {
          const slot = get().ggufImport;
          if (slot.status !== 'running' || (slot.jobId !== null && slot.jobId !== e.jobId)) return;
          set({ ggufImport: { ...slot, jobId: e.jobId, fraction: e.fraction ?? slot.fraction, message: e.message } });
        });
        set({ info: { status: 'loading' } });
        api.app.info().then(
          (info) => set({ info: { status: 'ready', value: info } }),
          (err) => set({ info: { status: 'error', error: toFailure(err) } }),
        );
        void get().refreshRecent();
        return () => {
          off();
          offImports();
          if (timer) clearTimeout(timer);
        };
      },

      async inspect(source) {
        const ticket = ++inspectTicket;
        set({ inspection: { source, state: { status: 'loading' } }, importNote: null });
        try {
          const value = await api.models.inspect({ source });
          if (ticket !== inspectTicket) return;
          set({ inspection: { source, state: { status: 'ready', value } } });
        } catch (err) {
          if (ticket !== inspectTicket) return;
          set({ inspection: { source, state: { status: 'error', error: toFailure(err) } } });
        }
        void get().refreshRecent();
      },

      async pickFolder() {
        try {
          const picked = await api.models.pickFolder();
          if (picked.path) await get().inspect(picked.path);
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },

      async refreshRecent() {
        try {
          set({ recent: await api.models.recent() });
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },

      async forget(path) {
        try {
          await api.models.forget({ path });
          await get().refreshRecent();
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },

      async search(query) {
        const ticket = ++searchTicket;
        set({ hub: { query, state: { status: 'loading' } } });
        try {
          const value = await api.hub.search({ query });
          if (ticket === searchTicket) set({ hub: { query, state: { status: 'ready', value } } });
        } catch (err) {
          if (ticket === searchTicket) set({ hub: { query, state: { status: 'error', error: toFailure(err) } } });
        }
      },

      async download(repoId) {
        try {
          const { downloadId } = await api.hub.download({ repoId });
          started.add(downloadId);
          // A download that finished before its id came back (tiny files) opens now.
          if (get().downloads[downloadId]?.state === 'done') void get().inspect(repoId);
          // Show the bar at once; events fill in sizes as they come.
          if (!get().downloads[downloadId]) {
            applyProgress([{ downloadId, repoId, file: '', bytesDone: 0, bytesTotal: 0, speedBytesPerSec: 0, etaSeconds: null, state: 'running' }]);
          }
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },

      async cancelDownload(downloadId) {
        try {
          await api.hub.cancelDownload({ downloadId });
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },

      async importGguf(file) {
        if (get().ggufImport.status === 'running') return;
        set({ ggufImport: { file, status: 'running', jobId: null, fraction: null, message: 'Starting…', error: null } });
        try {
          const r = await api.models.importGguf({ file });
          // The imported folder replaces whatever inspection was open or loading.
          ++inspectTicket;
          set({
            ggufImport: { ...get().ggufImport, status: 'done', fraction: 1, message: null },
            inspection: { source: r.inspection.source.path, state: { status: 'ready', value: r.inspection } },
            importNote: { lossy: r.lossy, text: r.note },
          });
        } catch (err) {
          const failure = toFailure(err);
          set({ ggufImport: { ...get().ggufImport, status: failure.code === 'CANCELLED' ? 'cancelled' : 'error', error: failure } });
        }
        void get().refreshRecent();
      },

      async cancelImport() {
        const { jobId, status } = get().ggufImport;
        if (status !== 'running' || !jobId) return;
        try {
          await api.jobs.cancel({ jobId });
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },

      dismissNotice() {
        set({ notice: null });
      },

      dismissDownload(downloadId) {
        set((s) => {
          const downloads = { ...s.downloads };
          delete downloads[downloadId];
          return { downloads, downloadOrder: s.downloadOrder.filter((id) => id !== downloadId) };
        });
      },
    };
  });
  return store;
}
