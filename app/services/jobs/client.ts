// The studio's side of the job process: starts one process per job, streams its events, and settles
// each job exactly once — with its result, its error, the process's death (crashed / out of memory /
// killed, see exit-reasons.ts), a timeout, or a cancel. Cancel asks the job to stop, then stops the
// process (SIGTERM, then SIGKILL) if it has not within the grace period.
// At most maxProcesses job processes run at once (default: one per core); later jobs wait in a queue,
// in order, as 'queued' jobs that can be cancelled before they start.
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { z } from 'zod';

import type { JobInfo } from '../../contract/channels.js';
import { UserError } from '../../util/errors.js';
import type { JobKinds } from '../../worker/kinds.js';
import type { FromWorker, ToWorker } from '../../worker/protocol.js';
import { describeExit, type ProcessExit } from './exit-reasons.js';

/** One started job process, whatever started it (child_process.fork or Electron utilityProcess). */
export interface JobProcess {
  readonly pid: number | undefined;
  send(msg: ToWorker): void;
  onMessage(listener: (msg: FromWorker) => void): void;
  /** Called once when the process has gone. */
  onExit(listener: (exit: ProcessExit) => void): void;
  /** SIGTERM, or SIGKILL when forced. */
  kill(force: boolean): void;
}

export type JobProcessFactory = (info: { jobId: string; kind: string }) => JobProcess;

export type JobKindName = keyof JobKinds & string;
export type JobParams<K extends JobKindName> = z.input<JobKinds[K]['params']>;
/** What a kind streams as progress data: its events schema, checked in the job process before it is sent. */
export type JobEventData<K extends JobKindName> = z.output<JobKinds[K]['events']>;
export type JobResult<K extends JobKindName> = z.output<JobKinds[K]['result']>;

/** queued comes first when the job waits for a free job process; started when its process runs it. */
export type JobEventType = 'queued' | 'started' | 'progress' | 'log' | 'done' | 'error' | 'cancelled';

/** One step of a job's life as its starter sees it (RunOptions.onEvent). */
export interface JobEvent<D = unknown> {
  jobId: string;
  kind: string;
  type: JobEventType;
  /** Milliseconds since the epoch. */
  at: number;
  /** 0..1 when the job knows how far it is. */
  fraction?: number;
  message?: string;
  /** A user-facing reason for 'error' (e.g. "The job process ran out of memory."). */
  error?: string;
  errorCode?: string;
  /** progress: one of the kind's events (JobEventData). */
  data?: D;
}

export class JobError extends UserError {
  constructor(
    message: string,
    code: string,
    readonly jobId: string,
  ) {
    super(message, code);
    this.name = 'JobError';
  }
}

export interface RunOptions<D = unknown> {
  /** A short line for the jobs list, e.g. "Inspect stories260k". */
  label?: string;
  /** Who started it (a window id); cancelOwnedBy(owner) stops its jobs when the window closes. */
  owner?: string;
  /** Fails the job with code TIMEOUT after this long running (time spent queued does not count). */
  timeoutMs?: number;
  /** Engine threads for this job; absent = every hardware thread. */
  threads?: number;
  /** Cancels the job when aborted. */
  signal?: AbortSignal;
  onEvent?: (e: JobEvent<D>) => void;
}

export interface JobHandle<R> {
  readonly jobId: string;
  /** The job process's pid (undefined when it could not start). */
  readonly pid: number | undefined;
  /** Settles exactly once. Rejects with a JobError (code CANCELLED, CRASHED, OUT_OF_MEMORY, KILLED, TIMEOUT, ...). */
  readonly result: Promise<R>;
  cancel(): void;
  /** Deliver data to the running job (its ctx.onInput). */
  send(data: unknown): void;
}

export interface JobClientOptions {
  spawn: JobProcessFactory;
  /** Every job's events (tests watch them here; the studio listens per job with RunOptions.onEvent). */
  emit?: (e: JobEvent) => void;
  /** How long a cancelled job may take to stop by itself before SIGTERM (and as long again before SIGKILL). */
  graceMs?: number;
  /** Finished jobs kept for jobs.list. */
  keepFinished?: number;
  /** Job processes running at once; more jobs wait their turn. Default: the number of cores (at least 1). */
  maxProcesses?: number;
}

interface Running {
  info: JobInfo;
  owner: string | undefined;
  cancel(): void;
}

/** Job processes at once unless told otherwise: one per core, at least one. */
export function defaultMaxProcesses(): number {
  return Math.max(1, os.availableParallelism());
}

export class JobClient {
  private readonly jobs = new Map<string, Running>();
  private readonly graceMs: number;
  private readonly keepFinished: number;
  readonly maxProcesses: number;
  /** Jobs waiting for a process slot, oldest first; each launches its process when called. */
  private readonly waiting: Array<{ jobId: string; launch: () => void }> = [];
  private processes = 0;

  constructor(private readonly opts: JobClientOptions) {
    this.graceMs = opts.graceMs ?? 3000;
    this.keepFinished = opts.keepFinished ?? 50;
    this.maxProcesses = Math.max(1, Math.floor(opts.maxProcesses ?? defaultMaxProcesses()));
  }

  /** Starts a job of a kind of app/worker/kinds.ts: its params, events and result are typed from the
   * kind's schemas (the job process checked the events and the result against them). */
  run<K extends JobKindName>(kind: K, params: JobParams<K>, options: RunOptions<JobEventData<K>> = {}): JobHandle<JobResult<K>> {
    return this.start(kind, params, options as RunOptions) as JobHandle<JobResult<K>>;
  }

  /** Untyped form for kinds registered only in a test worker. */
  start(kind: string, params: unknown, options: RunOptions = {}): JobHandle<unknown> {
    const jobId = randomUUID();
    const queued = this.processes >= this.maxProcesses;
    const info: JobInfo = { jobId, kind, label: options.label ?? kind, state: queued ? 'queued' : 'running', startedAt: new Date().toISOString(), endedAt: null, error: null };
    const emit = (e: Omit<JobEvent, 'jobId' | 'kind' | 'at'>) => {
      const event: JobEvent = { jobId, kind, at: Date.now(), ...e };
      options.onEvent?.(event);
      this.opts.emit?.(event);
    };

    let settled = false;
    let cancelRequested = false;
    let exited = false;
    let fatal: string | undefined;
    const timers: NodeJS.Timeout[] = [];
    let resolveResult!: (v: unknown) => void;
    let rejectResult!: (e: unknown) => void;
    const result = new Promise<unknown>((res, rej) => {
      resolveResult = res;
      rejectResult = rej;
    });
    // Nobody may be listening yet; the caller still sees the rejection through `result`.
    result.catch(() => {});

    /** The job's process once launched; null while it waits in the queue. */
    let proc: JobProcess | null = null;
    /** Input sent while queued, delivered once the job runs. */
    const inbox: unknown[] = [];
    const finish = (outcome: { ok: true; value: unknown } | { ok: false; message: string; code: string }) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      options.signal?.removeEventListener('abort', onAbort);
      info.endedAt = new Date().toISOString();
      if (outcome.ok) {
        info.state = 'done';
        emit({ type: 'done' });
        resolveResult(outcome.value);
      } else {
        info.state = outcome.code === 'CANCELLED' ? 'cancelled' : 'error';
        info.error = outcome.code === 'CANCELLED' ? null : outcome.message;
        if (outcome.code === 'CANCELLED') emit({ type: 'cancelled', message: outcome.message });
        else emit({ type: 'error', error: outcome.message, errorCode: outcome.code });
        rejectResult(new JobError(outcome.message, outcome.code, jobId));
      }
      this.retire(jobId);
      // The process has nothing left to do: ask it to go, and make sure it does.
      const p = proc;
      if (p && !exited) {
        try {
          p.send({ type: 'shutdown' });
        } catch {
          // already gone
        }
        const t = setTimeout(() => !exited && p.kill(true), this.graceMs);
        t.unref();
      }
    };

    const cancel = () => {
      if (settled || cancelRequested) return;
      if (!proc) {
        // Still waiting for a slot: it never starts.
        this.unqueue(jobId);
        finish({ ok: false, message: 'The job was cancelled before it started.', code: 'CANCELLED' });
        return;
      }
      const p = proc;
      cancelRequested = true;
      try {
        p.send({ type: 'cancel', id: jobId });
      } catch {
        // gone already; the exit settles it
      }
      timers.push(setTimeout(() => !exited && p.kill(false), this.graceMs));
      timers.push(setTimeout(() => !exited && p.kill(true), 2 * this.graceMs));
    };
    const onAbort = () => cancel();

    /** Starts the job's process (now, or when a slot frees up); it holds a slot until it exits. */
    const launch = () => {
      if (settled) return;
      info.state = 'running';
      let p: JobProcess;
      try {
        p = this.opts.spawn({ jobId, kind });
      } catch (err) {
        const message = `The job process could not be started: ${err instanceof Error ? err.message : String(err)}`;
        info.state = 'error';
        info.error = message;
        info.endedAt = new Date().toISOString();
        settled = true;
        options.signal?.removeEventListener('abort', onAbort);
        rejectResult(new JobError(message, 'LAUNCH_FAILED', jobId));
        this.retire(jobId);
        return;
      }
      proc = p;
      this.processes++;

      p.onMessage((msg) => {
        if (settled) return;
        switch (msg.type) {
          case 'ready':
            break;
          case 'progress':
            emit({ type: 'progress', fraction: msg.fraction, message: msg.message, data: msg.data });
            break;
          case 'log':
            emit({ type: 'log', message: msg.message });
            break;
          case 'result':
            if (msg.id === jobId) finish({ ok: true, value: msg.value });
            break;
          case 'error':
            if (msg.id === jobId) finish({ ok: false, message: msg.error.message, code: cancelRequested ? 'CANCELLED' : msg.error.code });
            break;
          case 'fatal':
            fatal = msg.message;
            break;
        }
      });
      p.onExit((exit) => {
        exited = true;
        // The slot is free once the process has gone, not when its job settled.
        this.processes--;
        this.pump();
        if (settled) return;
        if (cancelRequested) return finish({ ok: false, message: 'The job was cancelled.', code: 'CANCELLED' });
        const why = describeExit({ ...exit, fatal: exit.fatal ?? fatal });
        finish({ ok: false, ...why });
      });

      if (options.timeoutMs) {
        timers.push(
          setTimeout(() => {
            finish({ ok: false, message: `The job took longer than ${Math.round(options.timeoutMs! / 1000)} s and was stopped.`, code: 'TIMEOUT' });
            p.kill(true);
          }, options.timeoutMs),
        );
      }
      emit({ type: 'started', message: info.label });
      p.send({ type: 'run', id: jobId, kind, params, ...(options.threads ? { threads: options.threads } : {}) });
      for (const data of inbox.splice(0)) p.send({ type: 'input', id: jobId, data });
    };

    this.jobs.set(jobId, { info, owner: options.owner, cancel });
    if (options.signal?.aborted) queueMicrotask(cancel);
    else options.signal?.addEventListener('abort', onAbort);
    if (queued) {
      this.waiting.push({ jobId, launch });
      emit({ type: 'queued', message: `${info.label} (waiting: ${this.maxProcesses} job process${this.maxProcesses === 1 ? '' : 'es'} at most run at once)` });
    } else launch();

    return {
      jobId,
      get pid() {
        return proc?.pid;
      },
      result,
      cancel,
      send: (data) => {
        if (settled) return;
        if (proc) proc.send({ type: 'input', id: jobId, data });
        else inbox.push(data);
      },
    };
  }

  /** Launches waiting jobs while there are free slots. */
  private pump(): void {
    while (this.processes < this.maxProcesses && this.waiting.length) this.waiting.shift()!.launch();
  }

  private unqueue(jobId: string): void {
    const i = this.waiting.findIndex((w) => w.jobId === jobId);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  /** Jobs of this session, newest first. */
  list(): JobInfo[] {
    return [...this.jobs.values()].map((j) => ({ ...j.info })).reverse();
  }

  /** Cancel a queued or running job; false when there is none (or it is over). */
  cancel(jobId: string): boolean {
    const job = this.jobs.get(jobId);
    if (!job || !active(job)) return false;
    job.cancel();
    return true;
  }

  /** Cancel every queued or running job started by this owner (a closed window). */
  cancelOwnedBy(owner: string): number {
    let n = 0;
    for (const job of [...this.jobs.values()]) if (job.owner === owner && active(job)) (job.cancel(), n++);
    return n;
  }

  /** Cancel everything and wait until every job has settled (app quit, server close). */
  async shutdown(): Promise<void> {
    // The queued first, so none of them takes a slot a cancelled running job frees.
    const all = [...this.jobs.values()].filter(active);
    for (const j of all.filter((j) => j.info.state === 'queued')) j.cancel();
    for (const j of all.filter((j) => j.info.state === 'running')) j.cancel();
    const deadline = Date.now() + 3 * this.graceMs;
    while (Date.now() < deadline && [...this.jobs.values()].some(active)) await new Promise((r) => setTimeout(r, 20));
  }

  private retire(_jobId: string) {
    const finished = [...this.jobs.entries()].filter(([, j]) => !active(j));
    for (const [id] of finished.slice(0, Math.max(0, finished.length - this.keepFinished))) this.jobs.delete(id);
  }
}

function active(job: Running): boolean {
  return job.info.state === 'queued' || job.info.state === 'running';
}
