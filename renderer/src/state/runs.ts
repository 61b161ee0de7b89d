// Runs in the renderer: the list, the details of the runs on screen (per-layer metrics, fine-tuning
// losses, log), and the live stream of run.event. Events can come far faster than a screen redraws
// (one per layer, ETA, log lines), so they are collected and applied in batches at ~15 Hz
// (createBatcher); a run's state change is applied at once.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { EvaluationInput, QuantizeSettingsInput, RunDetail, RunEstimate, RunEvent, RunSummary, StudioApi } from '../../../app/contract/index';
import { toFailure, type Failure } from './studio';

/** Batched events reach the store at most this often (66 ms = 15 Hz). */
export const RUN_FLUSH_MS = 66;

export interface Batcher<T> {
  push(item: T): void;
  /** Applies what is pending now. */
  flush(): void;
  /** Drops the timer (pending items are applied first). */
  close(): void;
}

/** Collects items and hands them to `apply` together, at most once per `intervalMs`. */
export function createBatcher<T>(apply: (batch: T[]) => void, intervalMs: number = RUN_FLUSH_MS): Batcher<T> {
  let pending: T[] = [];
  let timer: ReturnType<typeof setTimeout> | null = null;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!pending.length) return;
    const batch = pending;
    pending = [];
    apply(batch);
  };
  return {
    push(item) {
      pending.push(item);
      timer ??= setTimeout(flush, intervalMs);
    },
    flush,
    close: flush,
  };
}

export interface RunsState {
  runs: RunSummary[];
  listError: Failure | null;
  /** Details of runs that were opened, by id (live runs keep growing). */
  details: Record<string, RunDetail>;
  detailErrors: Record<string, Failure>;
  /** The run shown on the Run screen. */
  selected: string | null;
  /** Runs chosen on the Compare screen. */
  compared: string[];
  /** A failed action (start, cancel, delete...). */
  notice: Failure | null;
  /** How many batches were applied (for tests of the batching). */
  flushes: number;
  /** Where the last reveal pointed (the browser face shows it instead of opening a file manager). */
  revealed: { runId: string; path: string; supported: boolean } | null;

  start(): () => void;
  refresh(): Promise<void>;
  open(runId: string): Promise<void>;
  select(runId: string | null): void;
  /** `evaluation`: how the perplexity is measured (left out: the studio's defaults). */
  estimate(modelDir: string, settings: QuantizeSettingsInput, evaluation?: EvaluationInput): Promise<RunEstimate>;
  startRun(modelDir: string, settings: QuantizeSettingsInput, name?: string, evaluation?: EvaluationInput): Promise<RunSummary | null>;
  cancel(runId: string): Promise<void>;
  resume(runId: string): Promise<void>;
  remove(runId: string): Promise<void>;
  reveal(runId: string): Promise<void>;
  toggleCompared(runId: string): void;
  dismissNotice(): void;
}

export type RunsStore = StoreApi<RunsState>;

function emptyDetail(run: RunSummary): RunDetail {
  return { ...run, layers: [], fineTune: [], log: [], timings: {} };
}

/** Applies a batch of events to the summaries and the open details (pure; tested). */
export function applyRunEvents(state: Pick<RunsState, 'runs' | 'details'>, batch: RunEvent[]): Pick<RunsState, 'runs' | 'details'> {
  const runs = [...state.runs];
  const details = { ...state.details };
  const touched = new Set<string>();
  const detail = (id: string) => {
    if (!touched.has(id) && details[id]) {
      const d = details[id]!;
      details[id] = { ...d, layers: [...d.layers], fineTune: [...d.fineTune], log: [...d.log] };
      touched.add(id);
    }
    return details[id];
  };
  const summaryAt = (id: string) => runs.findIndex((r) => r.runId === id);
  for (const e of batch) {
    const b = e.body;
    const at = summaryAt(e.runId);
    if (b.type === 'state') {
      if (at >= 0) runs[at] = b.run;
      else runs.unshift(b.run);
      const d = detail(e.runId);
      // A finished run's record replaces the live numbers; layers stay (a fresh get fills the rest).
      if (d) details[e.runId] = { ...d, ...b.run, layers: d.layers, fineTune: d.fineTune, log: d.log, timings: d.timings };
      continue;
    }
    const d = detail(e.runId);
    const s = at >= 0 ? { ...runs[at]! } : null;
    switch (b.type) {
      case 'phase':
        if (s) s.phase = b.phase;
        if (d) d.phase = b.phase;
        break;
      case 'layer':
        if (d && !d.layers.some((l) => l.name === b.layer.name)) d.layers.push(b.layer);
        if (s) s.layersDone = Math.max(s.layersDone, d ? d.layers.length : s.layersDone + 1);
        if (d) d.layersDone = d.layers.length;
        break;
      case 'eta':
        for (const x of [s, d]) {
          if (!x) continue;
          x.layersDone = Math.max(x.layersDone, b.layersDone);
          x.layersTotal = b.layersTotal;
          x.etaSeconds = b.etaSeconds;
        }
        break;
      case 'log':
        d?.log.push(b.line);
        break;
      case 'fineTune':
        d?.fineTune.push(b.epoch);
        break;
    }
    if (s) runs[at] = s;
  }
  return { runs, details };
}

export function createRunsStore(api: StudioApi): RunsStore {
  return createStore<RunsState>()((set, get) => ({
    runs: [],
    listError: null,
    details: {},
    detailErrors: {},
    selected: null,
    compared: [],
    notice: null,
    flushes: 0,
    revealed: null,

    start() {
      const batcher = createBatcher<RunEvent>((batch) => set((s) => ({ ...applyRunEvents(s, batch), flushes: s.flushes + 1 })));
      const off = api.on('run.event', (e) => {
        batcher.push(e);
        if (e.body.type === 'state') {
          batcher.flush();
          // A run that just finished has its record on disk now: fetch the final numbers.
          if (['done', 'error', 'cancelled'].includes(e.body.run.state) && get().details[e.runId]) void get().open(e.runId);
        }
      });
      void get().refresh();
      return () => {
        off();
        batcher.close();
      };
    },

    async refresh() {
      try {
        set({ runs: await api.runs.list(), listError: null });
      } catch (err) {
        set({ listError: toFailure(err) });
      }
    },

    async open(runId) {
      try {
        const d = await api.runs.get({ runId });
        set((s) => {
          const have = s.details[runId];
          // Layers that arrived by events while the request was out stay.
          const layers = have && have.layers.length > d.layers.length ? have.layers : d.layers;
          const errors = { ...s.detailErrors };
          delete errors[runId];
          return { details: { ...s.details, [runId]: { ...d, layers, layersDone: Math.max(d.layersDone, layers.length) } }, detailErrors: errors };
        });
      } catch (err) {
        set((s) => ({ detailErrors: { ...s.detailErrors, [runId]: toFailure(err) } }));
      }
    },

    select(runId) {
      set({ selected: runId });
      if (runId) void get().open(runId);
    },

    estimate: (modelDir, settings, evaluation) => api.runs.estimate({ modelDir, settings, ...(evaluation ? { evaluation } : {}) }),

    async startRun(modelDir, settings, name, evaluation) {
      try {
        const run = await api.runs.start({ modelDir, settings, ...(name ? { name } : {}), ...(evaluation ? { evaluation } : {}) });
        set((s) => ({
          runs: [run, ...s.runs.filter((r) => r.runId !== run.runId)],
          details: { ...s.details, [run.runId]: s.details[run.runId] ?? emptyDetail(run) },
          selected: run.runId,
        }));
        return run;
      } catch (err) {
        set({ notice: toFailure(err) });
        return null;
      }
    },

    async cancel(runId) {
      try {
        await api.runs.cancel({ runId });
      } catch (err) {
        set({ notice: toFailure(err) });
      }
    },

    async resume(runId) {
      try {
        const run = await api.runs.resume({ runId });
        set((s) => ({ runs: s.runs.map((r) => (r.runId === runId ? run : r)) }));
        await get().open(runId);
      } catch (err) {
        set({ notice: toFailure(err) });
      }
    },

    async remove(runId) {
      try {
        await api.runs.delete({ runId });
        set((s) => {
          const details = { ...s.details };
          delete details[runId];
          return {
            runs: s.runs.filter((r) => r.runId !== runId),
            details,
            compared: s.compared.filter((id) => id !== runId),
            selected: s.selected === runId ? null : s.selected,
          };
        });
      } catch (err) {
        set({ notice: toFailure(err) });
      }
    },

    async reveal(runId) {
      try {
        const r = await api.runs.reveal({ runId });
        set({ revealed: { runId, ...r } });
      } catch (err) {
        set({ notice: toFailure(err) });
      }
    },

    toggleCompared(runId) {
      const on = get().compared.includes(runId);
      set((s) => ({ compared: on ? s.compared.filter((id) => id !== runId) : [...s.compared, runId] }));
      if (!on && !get().details[runId]) void get().open(runId);
    },

    dismissNotice() {
      set({ notice: null });
    },
  }));
}
