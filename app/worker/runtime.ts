// The job process side of the protocol: receives `run` messages, validates the params with the kind's
// zod schema, runs the kind with a context (progress, log, cancel signal + native cancel flag, input)
// and answers with exactly one result or error. What a kind sends as progress data is checked
// against its events schema before it leaves, so the studio receives exactly the declared shapes.
// Works under child_process.fork (process.send) and Electron's utilityProcess (process.parentPort).
import { z } from 'zod';

import { cancelFlag, native } from '../engine/native.js';
import { UserError } from '../util/errors.js';
import type { FromWorker, ToWorker, WorkerError } from './protocol.js';

export interface JobContext<D = unknown> {
  /** Aborted when the studio cancels the job. */
  readonly signal: AbortSignal;
  /** Pass to native routines; element 0 becomes 1 on cancel. */
  readonly cancel: Int32Array;
  /** data: one of the kind's events (checked against its schema; a bad one fails the job as a bug). */
  progress(p: { fraction?: number; message?: string; data?: D }): void;
  log(message: string): void;
  /** Data sent to this job while it runs (jobs.send on the studio side). */
  onInput(listener: (data: unknown) => void): void;
  /** Throws the standard cancellation error when the job was cancelled. */
  throwIfCancelled(): void;
}

/** A kind of job, declared as a channel of the contract is: its params, the events it streams (as
 * progress data) and its result, each a zod schema, with the code that runs it. */
export interface JobKind<P extends z.ZodType = z.ZodType, E extends z.ZodType = z.ZodType, R extends z.ZodType = z.ZodType> {
  params: P;
  events: E;
  result: R;
  run(params: z.output<P>, ctx: JobContext<z.input<E>>): Promise<z.input<R>>;
}

export function defineJobKind<P extends z.ZodType, E extends z.ZodType, R extends z.ZodType>(kind: JobKind<P, E, R>): JobKind<P, E, R> {
  return kind;
}

/** The events schema of a kind that sends no progress data. */
export const NoEvents = z.never();

export function cancelledError(): UserError {
  return new UserError('The job was cancelled.', 'CANCELLED');
}

interface Port {
  send(msg: FromWorker): void;
  onMessage(listener: (msg: ToWorker) => void): void;
}

function parentPort(): Port {
  // Electron utilityProcess: process.parentPort (a MessagePortMain-like object).
  const electronPort = (process as unknown as { parentPort?: { postMessage(m: unknown): void; on(e: 'message', l: (ev: { data: unknown }) => void): void } }).parentPort;
  if (electronPort) {
    return {
      send: (msg) => electronPort.postMessage(msg),
      onMessage: (l) => electronPort.on('message', (ev) => l(ev.data as ToWorker)),
    };
  }
  if (!process.send) throw new Error('The job process must be started by the studio (no IPC channel).');
  return {
    send: (msg) => process.send!(msg),
    onMessage: (l) => process.on('message', (m) => l(m as ToWorker)),
  };
}

function toWorkerError(err: unknown, cancelled: boolean): WorkerError {
  const code = (err as { code?: unknown })?.code;
  if (cancelled || code === 'CANCELLED') return { message: 'The job was cancelled.', code: 'CANCELLED' };
  if (err instanceof UserError) return { message: err.message, code: err.code };
  if (err instanceof z.ZodError) return { message: z.prettifyError(err), code: 'INTERNAL' };
  if (err instanceof Error) return { message: err.message, code: typeof code === 'string' ? code : 'INTERNAL', stack: err.stack };
  return { message: String(err), code: 'INTERNAL' };
}

/** Serve jobs of the given kinds until told to shut down. Call once, from the job process entry. */
export function runWorker(kinds: Record<string, JobKind>): void {
  const port = parentPort();
  const running = new Map<string, { abort: AbortController; flag: Int32Array; inputs: Array<(d: unknown) => void> }>();

  const answer = (msg: FromWorker) => port.send(msg);

  process.on('uncaughtException', (err) => {
    try {
      answer({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
    } finally {
      // Give the message a moment to leave before the process goes.
      setTimeout(() => process.exit(70), 50);
    }
  });
  process.on('unhandledRejection', (err) => {
    throw err;
  });

  async function run(id: string, kindName: string, rawParams: unknown, threads: number | undefined) {
    const kind = Object.hasOwn(kinds, kindName) ? kinds[kindName] : undefined;
    if (!kind) {
      answer({ type: 'error', id, error: { message: `Unknown job kind "${kindName}" (known: ${Object.keys(kinds).join(', ')}).`, code: 'UNKNOWN_KIND' } });
      return;
    }
    const parsed = kind.params.safeParse(rawParams);
    if (!parsed.success) {
      answer({ type: 'error', id, error: { message: `Invalid parameters for job "${kindName}": ${z.prettifyError(parsed.error)}`, code: 'INVALID_PARAMS' } });
      return;
    }
    if (threads !== undefined) {
      try {
        native().setThreads(threads);
      } catch (err) {
        answer({ type: 'error', id, error: toWorkerError(err, false) });
        return;
      }
    }
    const state = { abort: new AbortController(), flag: cancelFlag(), inputs: [] as Array<(d: unknown) => void> };
    running.set(id, state);
    const ctx: JobContext = {
      signal: state.abort.signal,
      cancel: state.flag,
      progress: (p) => answer({ type: 'progress', id, ...p, ...(p.data !== undefined ? { data: kind.events.parse(p.data) } : {}) }),
      log: (message) => answer({ type: 'log', id, message }),
      onInput: (l) => void state.inputs.push(l),
      throwIfCancelled: () => {
        if (state.abort.signal.aborted) throw cancelledError();
      },
    };
    try {
      const value = kind.result.parse(await kind.run(parsed.data, ctx));
      answer({ type: 'result', id, value });
    } catch (err) {
      answer({ type: 'error', id, error: toWorkerError(err, state.abort.signal.aborted) });
    } finally {
      running.delete(id);
    }
  }

  port.onMessage((msg) => {
    switch (msg.type) {
      case 'run':
        void run(msg.id, msg.kind, msg.params, msg.threads);
        break;
      case 'cancel': {
        const job = running.get(msg.id);
        if (job) {
          Atomics.store(job.flag, 0, 1);
          job.abort.abort();
        }
        break;
      }
      case 'input':
        for (const l of running.get(msg.id)?.inputs ?? []) l(msg.data);
        break;
      case 'shutdown':
        process.exit(0);
    }
  });
  answer({ type: 'ready', pid: process.pid });
}
