// The studio's "Local server" switch: starts and stops the OpenAI-compatible API (./server.ts) over
// the studio's loaded models, keeps its port, address, CORS origin and key in the studio settings (a
// random key per studio home, made on first use), and keeps the latest requests for the request log.
// Every change goes out as api.statusChanged, every answered request as api.request.
import type { ApiRequestLog, ApiSetInput, ApiStatus } from '../../contract/local-api.js';
import type { Emit } from '../dispatch.js';
import type { Library } from '../library/library.js';
import type { ModelManager } from '../models/manager.js';
import { isLoopback, randomApiKey, startApiServer, type ApiModel, type ApiServer } from './server.js';

/** Rows of the request log kept (and shown). */
const LOG_ROWS = 100;

export interface LocalApiOptions {
  models: ModelManager;
  library: Library;
  /** The models the API offers (every finished run and recent model folder). */
  listModels: () => Promise<ApiModel[]>;
  emit: Emit;
}

export class LocalApiService {
  private server: ApiServer | null = null;
  private error: string | null = null;
  private readonly log: ApiRequestLog[] = [];
  /** start/stop/regenerate one after another, so two quick clicks never start two servers. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: LocalApiOptions) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }

  /** The key of this studio home; made (and saved) the first time it is needed. */
  private async key(): Promise<string> {
    const s = await this.opts.library.settings();
    if (s.apiKey) return s.apiKey;
    return (await this.opts.library.updateSettings({ apiKey: randomApiKey() })).apiKey!;
  }

  async status(): Promise<ApiStatus> {
    const s = await this.opts.library.settings();
    const apiKey = await this.key();
    const running = this.server;
    return {
      running: running !== null,
      baseUrl: running?.baseUrl ?? null,
      host: s.apiHost,
      port: running?.port ?? s.apiPort,
      exposed: running ? running.exposed : !isLoopback(s.apiHost),
      apiKey,
      cors: s.apiCors,
      error: this.error,
      log: [...this.log],
    };
  }

  /** Starts (with the given settings, kept for next time) or stops the server; a running one restarts to take new settings. */
  set(input: ApiSetInput): Promise<ApiStatus> {
    return this.serial(async () => {
      const patch = Object.fromEntries(
        Object.entries({ apiPort: input.port, apiHost: input.host, apiCors: input.cors }).filter(([, v]) => v !== undefined),
      );
      if (Object.keys(patch).length) await this.opts.library.updateSettings(patch);
      await this.stopServer();
      this.error = null;
      if (input.enabled) await this.startServer();
      return this.changed();
    });
  }

  /** A new key; a running server restarts with it (requests with the old key get 401 from then on). */
  regenerateKey(): Promise<ApiStatus> {
    return this.serial(async () => {
      await this.opts.library.updateSettings({ apiKey: randomApiKey() });
      if (this.server) {
        await this.stopServer();
        await this.startServer();
      }
      return this.changed();
    });
  }

  /** Stops the server (the studio is closing). */
  close(): Promise<void> {
    return this.serial(() => this.stopServer());
  }

  private async startServer(): Promise<void> {
    const s = await this.opts.library.settings();
    const apiKey = await this.key();
    try {
      this.server = await startApiServer({
        models: this.opts.models,
        listModels: this.opts.listModels,
        apiKey,
        host: s.apiHost,
        port: s.apiPort,
        cors: s.apiCors,
        onRequest: (row) => this.record(row),
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.error =
        code === 'EADDRINUSE'
          ? `Port ${s.apiPort} is in use by another program; choose another port.`
          : code === 'EADDRNOTAVAIL'
            ? `${s.apiHost} is not an address of this machine; use 127.0.0.1 (this machine only) or 0.0.0.0 (every network).`
            : code === 'EACCES'
              ? `Port ${s.apiPort} needs administrator rights here; choose one above 1024.`
              : `The local server could not start: ${(err as Error).message}`;
      this.server = null;
    }
  }

  private async stopServer(): Promise<void> {
    const s = this.server;
    this.server = null;
    await s?.close();
  }

  private record(row: ApiRequestLog): void {
    const entry: ApiRequestLog = { ...row, ms: Math.round(row.ms * 10) / 10 };
    this.log.unshift(entry);
    this.log.length = Math.min(this.log.length, LOG_ROWS);
    this.opts.emit('api.request', entry);
  }

  private async changed(): Promise<ApiStatus> {
    const status = await this.status();
    this.opts.emit('api.statusChanged', status);
    return status;
  }
}
