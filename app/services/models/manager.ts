// Loaded models: one long-lived `modelHost` job process per model folder, shared by the studio's chat,
// the local API and the CLI. Requests to one model wait in a FIFO queue and are served one at a time
// (never failing because another is running); a host that stays idle unloads itself after a while;
// a memory budget unloads the least recently used idle host to make room; a host that dies fails
// the requests it had with a clear error, and the next request loads the model again.
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { type HostEvent, type HostGenerateInput, type HostStats, type LoadedModelInfo } from '../../contract/loaded-models.js';
import type { ChatMessage } from '../../contract/runs.js';
import { UserError } from '../../util/errors.js';
import type { JobClient, JobHandle } from '../jobs/client.js';
import { procResidentBytes } from './memory.js';

export interface ModelManagerOptions {
  jobs: JobClient;
  /** Engine threads of a new host (the studio setting); absent or null: every hardware thread. */
  threads?: () => Promise<number | null | undefined>;
  /** Unload a model unused for this long (default 15 minutes; 0: never). */
  idleMs?: number;
  /** Resident memory all hosts together may use (default half the machine's RAM). */
  memoryBudgetBytes?: number;
  /** KV-cache memory per host (default: the host's, 2 GiB). */
  kvBudgetBytes?: number;
  /** Most positions of one conversation (default: the model's context, at most 32768). */
  maxContext?: number;
  /** Called whenever the loaded set or a host's state changes (for a UI event). */
  onChange?: () => void;
  log?: (message: string) => void;
}

/** A generation request: HostGenerate without its type and id. */
export type GenerateRequest = Omit<HostGenerateInput, 'type' | 'requestId'>;

export interface GenerateOutcome {
  text: string;
  stats: HostStats;
}

export interface GenerateCallbacks {
  onToken?: (text: string, tokens: number) => void;
  /** Cancels the request (queued: it leaves the queue; running: it stops within a decode step). */
  signal?: AbortSignal;
}

export interface GenerateHandle {
  readonly requestId: string;
  /** Resolves with the reply (stopReason 'cancelled' when stopped while generating); rejects with a UserError. */
  readonly result: Promise<GenerateOutcome>;
  cancel(): void;
}

interface Pending {
  requestId: string;
  request: GenerateRequest;
  onToken?: (text: string, tokens: number) => void;
  resolve(o: GenerateOutcome): void;
  reject(err: UserError): void;
  started: boolean;
  cancelled: boolean;
}

interface Host {
  modelDir: string;
  name: string;
  job: JobHandle<unknown>;
  state: 'loading' | 'ready';
  ready: Promise<void>;
  contextLength: number | null;
  loadedAt: Date;
  lastUsedAt: Date;
  residentBytes: number | null;
  queue: Pending[];
  current: Pending | null;
  /** Answers to count / memory requests by request id. */
  replies: Map<string, (e: HostEvent) => void>;
  idleTimer: NodeJS.Timeout | null;
  unloading: boolean;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Bytes of a folder's weight files: what a host maps, before it has loaded. */
async function weightBytes(dir: string): Promise<number> {
  const files = await fs.readdir(dir).catch(() => [] as string[]);
  const sizes = await Promise.all(files.filter((f) => f.endsWith('.safetensors')).map((f) => fs.stat(path.join(dir, f)).then((s) => s.size, () => 0)));
  return sum(sizes);
}

export class ModelManager {
  private readonly hosts = new Map<string, Host>();
  private readonly starting = new Map<string, Promise<Host>>();
  private idleMs: number;
  private budget: number;
  private closed = false;

  constructor(private readonly opts: ModelManagerOptions) {
    this.idleMs = opts.idleMs ?? 15 * 60_000;
    this.budget = opts.memoryBudgetBytes ?? Math.floor(os.totalmem() / 2);
  }

  /** The idle time and memory budget in force. */
  get limits(): { idleMs: number; memoryBudgetBytes: number } {
    return { idleMs: this.idleMs, memoryBudgetBytes: this.budget };
  }

  /**
   * Changes the idle time (0: never) and the memory budget (null: half the machine's RAM) while
   * models are loaded (the studio's settings): idle models re-arm their timers from now, and a
   * smaller budget unloads least recently used idle models at once.
   */
  async setLimits(limits: { idleMs?: number; memoryBudgetBytes?: number | null }): Promise<void> {
    if (limits.idleMs !== undefined && limits.idleMs !== this.idleMs) {
      this.idleMs = limits.idleMs;
      for (const h of this.hosts.values()) if (h.state === 'ready' && !h.current && h.queue.length === 0 && !h.unloading) this.armIdle(h);
    }
    if (limits.memoryBudgetBytes !== undefined) {
      const budget = limits.memoryBudgetBytes ?? Math.floor(os.totalmem() / 2);
      const smaller = budget < this.budget;
      this.budget = budget;
      if (smaller) await this.makeRoom(0, null);
    }
    this.opts.onChange?.();
  }

  /** Loads a model (if it is not loaded) and waits until it serves. */
  async load(modelDir: string): Promise<LoadedModelInfo> {
    const host = await this.host(modelDir);
    await host.ready;
    return this.info(host);
  }

  /** Unloads a model: queued requests fail with UNLOADED, a running one stops. True when it was loaded. */
  async unload(modelDir: string, why = 'it was unloaded'): Promise<boolean> {
    const host = this.hosts.get(path.resolve(modelDir));
    if (!host) return false;
    this.retire(host, new UserError(`${host.name} was unloaded before answering (${why}).`, 'UNLOADED'));
    await host.job.result.catch(() => {});
    return true;
  }

  /** The loaded models with their resident memory, most recently used first. */
  async list(): Promise<LoadedModelInfo[]> {
    const hosts = [...this.hosts.values()].sort((a, b) => b.lastUsedAt.getTime() - a.lastUsedAt.getTime());
    await Promise.all(hosts.map((h) => this.measure(h)));
    return hosts.map((h) => this.info(h));
  }

  /** Requests of a model waiting or running (0 when it is not loaded). */
  pending(modelDir: string): number {
    const host = this.hosts.get(path.resolve(modelDir));
    return host ? host.queue.length + (host.current ? 1 : 0) : 0;
  }

  /** Queues a generation on the model's host (loading it first if needed). */
  generate(modelDir: string, request: GenerateRequest, cb: GenerateCallbacks = {}): GenerateHandle {
    const requestId = randomUUID();
    let pending!: Pending;
    const result = new Promise<GenerateOutcome>((resolve, reject) => {
      pending = { requestId, request, onToken: cb.onToken, resolve, reject, started: false, cancelled: false };
    });
    result.catch(() => {});
    let hostRef: Host | null = null;
    const cancel = () => {
      if (pending.cancelled) return;
      pending.cancelled = true;
      const host = hostRef;
      if (!host) return;
      if (pending.started) host.job.send({ type: 'cancel', requestId });
      else {
        host.queue = host.queue.filter((p) => p !== pending);
        pending.reject(new UserError('The request was cancelled before it started.', 'CANCELLED'));
        this.opts.onChange?.();
      }
    };
    if (cb.signal?.aborted) queueMicrotask(cancel);
    else cb.signal?.addEventListener('abort', cancel, { once: true });
    void result.finally(() => cb.signal?.removeEventListener('abort', cancel)).catch(() => {});
    this.host(modelDir).then(
      (host) => {
        hostRef = host;
        if (pending.cancelled) return pending.reject(new UserError('The request was cancelled before it started.', 'CANCELLED'));
        host.queue.push(pending);
        this.touch(host);
        this.pump(host);
      },
      (err: unknown) => pending.reject(err instanceof UserError ? err : new UserError(String(err), 'INTERNAL')),
    );
    return { requestId, result, cancel };
  }

  /** The prompt's token count against the model's context (loads the model if needed). */
  async count(modelDir: string, request: { messages?: ChatMessage[]; prompt?: string; template?: boolean }): Promise<{ promptTokens: number; contextLength: number }> {
    const host = await this.host(modelDir);
    await host.ready;
    const e = await this.ask(host, { type: 'count', ...request });
    if (e.type === 'count') return { promptTokens: e.promptTokens, contextLength: e.contextLength };
    throw this.failure(e);
  }

  /** Forgets a conversation's KV cache on a loaded model. */
  drop(modelDir: string, conversationId: string): void {
    this.hosts.get(path.resolve(modelDir))?.job.send({ type: 'drop', conversationId });
  }

  /** Unloads everything (app quit, `quip serve` stopping). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.hosts.keys()].map((dir) => this.unload(dir, 'the studio is closing')));
  }

  // ---- inside ---------------------------------------------------------------------------------

  /** The model's host, started (once, however many ask at the same time) when there is none. */
  private host(modelDir: string): Promise<Host> {
    if (this.closed) return Promise.reject(new UserError('The studio is closing; no model can be loaded.', 'CLOSED'));
    const dir = path.resolve(modelDir);
    const existing = this.hosts.get(dir);
    if (existing) return Promise.resolve(existing);
    let starting = this.starting.get(dir);
    if (!starting) {
      starting = (async () => {
        const threads = (await this.opts.threads?.()) ?? undefined;
        await this.makeRoom(await weightBytes(dir), null);
        return this.start(dir, threads);
      })().finally(() => this.starting.delete(dir));
      this.starting.set(dir, starting);
    }
    return starting;
  }

  private start(dir: string, threads: number | undefined): Host {
    const name = path.basename(dir);
    let markReady!: () => void;
    let failLoad!: (err: UserError) => void;
    const ready = new Promise<void>((res, rej) => ((markReady = res), (failLoad = rej)));
    ready.catch(() => {});
    const job = this.opts.jobs.run(
      'modelHost',
      { modelDir: dir, kvBudgetBytes: this.opts.kvBudgetBytes, maxContext: this.opts.maxContext },
      {
        label: `${name} (loaded)`,
        threads,
        // The job process validated each event against the kind's HostEvent schema before sending it.
        onEvent: (e) => {
          if (e.type === 'progress' && e.data !== undefined) this.onHostEvent(host, e.data, markReady);
        },
      },
    );
    const now = new Date();
    const host: Host = {
      modelDir: dir,
      name,
      job,
      state: 'loading',
      ready,
      contextLength: null,
      loadedAt: now,
      lastUsedAt: now,
      residentBytes: null,
      queue: [],
      current: null,
      replies: new Map(),
      idleTimer: null,
      unloading: false,
    };
    this.hosts.set(dir, host);
    this.opts.onChange?.();
    job.result.then(
      () => this.gone(host, null, failLoad),
      (err: { message?: string; code?: string }) => this.gone(host, err, failLoad),
    );
    return host;
  }

  private onHostEvent(host: Host, e: HostEvent, markReady: () => void): void {
    switch (e.type) {
      case 'ready':
        host.state = 'ready';
        host.contextLength = e.contextLength;
        host.residentBytes = e.rssBytes;
        markReady();
        this.opts.log?.(`${host.name} loaded in ${e.loadSeconds.toFixed(1)} s`);
        this.opts.onChange?.();
        this.pump(host);
        void this.measure(host).then(() => this.makeRoom(0, host));
        return;
      case 'token':
        if (host.current?.requestId === e.requestId) host.current.onToken?.(e.text, e.tokens);
        return;
      case 'done':
      case 'error': {
        const p = host.current;
        if (p?.requestId === e.requestId) {
          host.current = null;
          if (e.type === 'done') p.resolve({ text: e.text, stats: e.stats });
          else p.reject(this.failure(e));
          this.touch(host);
          this.pump(host);
          this.opts.onChange?.();
          return;
        }
        host.replies.get(e.requestId)?.(e);
        return;
      }
      default:
        host.replies.get(e.requestId)?.(e);
    }
  }

  private failure(e: HostEvent): UserError {
    return e.type === 'error' ? new UserError(e.error.message, e.error.code) : new UserError(`Unexpected answer ${e.type} from the model host.`, 'INTERNAL');
  }

  /** Sends the next queued request when the host is free. */
  private pump(host: Host): void {
    if (host.state !== 'ready' || host.current || host.unloading) return;
    const next = host.queue.shift();
    if (!next) return this.armIdle(host);
    if (host.idleTimer) clearTimeout(host.idleTimer), (host.idleTimer = null);
    host.current = next;
    next.started = true;
    host.job.send({ type: 'generate', requestId: next.requestId, ...next.request });
    this.opts.onChange?.();
  }

  private touch(host: Host): void {
    host.lastUsedAt = new Date();
  }

  private armIdle(host: Host): void {
    if (host.idleTimer) clearTimeout(host.idleTimer);
    host.idleTimer = null;
    if (!this.idleMs) return;
    host.idleTimer = setTimeout(() => {
      if (!host.current && host.queue.length === 0) void this.unload(host.modelDir, `idle for ${Math.round(this.idleMs / 1000)} s`);
    }, this.idleMs);
    host.idleTimer.unref();
  }

  /** A count or memory request, answered at once by the host. */
  private ask(host: Host, msg: { type: 'count' | 'memory'; [k: string]: unknown }, timeoutMs = 30_000): Promise<HostEvent> {
    const requestId = randomUUID();
    return new Promise<HostEvent>((resolve, reject) => {
      const t = setTimeout(() => (host.replies.delete(requestId), reject(new UserError(`${host.name} did not answer in time.`, 'TIMEOUT'))), timeoutMs);
      t.unref();
      host.replies.set(requestId, (e) => (clearTimeout(t), host.replies.delete(requestId), resolve(e)));
      host.job.send({ ...msg, requestId });
    });
  }

  /** Resident memory: procfs where there is one, else the host's own report; null if neither answers. */
  private async measure(host: Host): Promise<void> {
    if (host.job.pid !== undefined) {
      const proc = await procResidentBytes(host.job.pid);
      if (proc !== null) return void (host.residentBytes = proc);
    }
    if (host.state !== 'ready') return;
    const e = await this.ask(host, { type: 'memory' }, 1000).catch(() => null);
    if (e?.type === 'memory') host.residentBytes = e.rssBytes;
  }

  /** Unloads least recently used idle hosts (never `keep`) until `extra` more bytes fit the budget. */
  private async makeRoom(extra: number, keep: Host | null): Promise<void> {
    const others = [...this.hosts.values()].filter((h) => h !== keep && !h.unloading);
    await Promise.all(others.map((h) => this.measure(h)));
    const resident = (h: Host) => h.residentBytes ?? 0;
    let used = sum([...this.hosts.values()].filter((h) => !h.unloading).map(resident)) + extra;
    const idle = others.filter((h) => h.state === 'ready' && !h.current && h.queue.length === 0).sort((a, b) => a.lastUsedAt.getTime() - b.lastUsedAt.getTime());
    for (const h of idle) {
      if (used <= this.budget) break;
      used -= resident(h);
      this.opts.log?.(`unloading ${h.name} to make room (memory budget ${(this.budget / 2 ** 30).toFixed(1)} GiB)`);
      await this.unload(h.modelDir, 'the memory budget needed the room');
    }
  }

  /** Stops a host: fails what it had, cancels its job. */
  private retire(host: Host, why: UserError): void {
    if (host.unloading) return;
    host.unloading = true;
    if (host.idleTimer) clearTimeout(host.idleTimer);
    for (const p of host.queue.splice(0)) p.reject(why);
    // The one running is stopped by the cancel; its outcome arrives as a failure from gone().
    host.job.cancel();
    if (this.hosts.get(host.modelDir) === host) this.hosts.delete(host.modelDir);
    this.opts.onChange?.();
  }

  /** The host's process ended (unloaded, crashed or failed to load). */
  private gone(host: Host, err: { message?: string; code?: string } | null, failLoad: (e: UserError) => void): void {
    if (host.idleTimer) clearTimeout(host.idleTimer);
    const unloaded = host.unloading;
    host.unloading = true;
    if (this.hosts.get(host.modelDir) === host) this.hosts.delete(host.modelDir);
    const loading = host.state === 'loading';
    const reason = err?.message ?? 'it ended';
    const error = unloaded
      ? new UserError(`${host.name} was unloaded before answering.`, 'UNLOADED')
      : loading
        ? new UserError(`${host.name} could not be loaded: ${reason}`, err?.code ?? 'LOAD_FAILED')
        : new UserError(`The process serving ${host.name} stopped: ${reason} The next request loads the model again.`, err?.code ?? 'CRASHED');
    failLoad(error);
    if (host.current) host.current.reject(error), (host.current = null);
    for (const p of host.queue.splice(0)) p.reject(error);
    for (const r of host.replies.values()) r({ type: 'error', requestId: '', error: { message: error.message, code: error.code } });
    host.replies.clear();
    if (!unloaded) this.opts.log?.(error.message);
    this.opts.onChange?.();
  }

  private info(h: Host): LoadedModelInfo {
    return {
      modelDir: h.modelDir,
      name: h.name,
      state: h.state,
      pid: h.job.pid ?? null,
      residentBytes: h.residentBytes,
      contextLength: h.contextLength,
      loadedAt: h.loadedAt.toISOString(),
      lastUsedAt: h.lastUsedAt.toISOString(),
      queued: h.queue.length,
      busy: h.current !== null,
    };
  }
}
