// The messages between the studio (main process or server) and a job process. Every `run` is
// answered by exactly one `result` or `error` with the same id, unless the process dies first; the
// client (app/services/jobs/client.ts) turns a death before the answer into a user-facing failure.

export interface WorkerError {
  message: string;
  /** UserError codes ('CANCELLED', 'NOT_A_MODEL', ...), 'INVALID_PARAMS', 'UNKNOWN_KIND' or 'INTERNAL'. */
  code: string;
  /** Only for bugs (not UserErrors), for the log. */
  stack?: string;
}

export type ToWorker =
  /** threads: the engine's thread count for this job (the studio setting or --threads); absent = all. */
  | { type: 'run'; id: string; kind: string; params: unknown; threads?: number }
  /** Cooperative cancel: abort the job's signal and set its native cancel flag. */
  | { type: 'cancel'; id: string }
  /** Data for a running job (e.g. the next chat message), delivered to ctx.onInput. */
  | { type: 'input'; id: string; data: unknown }
  /** Leave now; the client sends it once every job of this process has settled. */
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready'; pid: number }
  | { type: 'progress'; id: string; fraction?: number; message?: string; data?: unknown }
  | { type: 'log'; id: string; message: string }
  | { type: 'result'; id: string; value: unknown }
  | { type: 'error'; id: string; error: WorkerError }
  /** An uncaught exception: the process exits right after; it explains the exit. */
  | { type: 'fatal'; message: string };
