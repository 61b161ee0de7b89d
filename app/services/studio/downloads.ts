// Hub downloads the studio runs (in main or the server: network and file IO only, no addon), each
// with an id, a cancel, and download.progress events in the contract's shape.
import { randomUUID } from 'node:crypto';

import type { DownloadProgress as ContractProgress } from '../../contract/channels.js';
import type { DownloadProgress as HubProgress } from '../hub/index.js';
import type { Emit } from '../dispatch.js';

type Runner<T> = (hooks: { onProgress: (p: HubProgress) => void; signal: AbortSignal }) => Promise<T>;

interface Active {
  key: string;
  abort: AbortController;
  done: Promise<unknown>;
}

export class Downloads {
  private readonly active = new Map<string, Active>();

  constructor(private readonly emit: Emit) {}

  /**
   * Runs a download, or joins the one already running for the same key (repo@revision). Events go
   * out only once the runner reports progress, so a model found complete in the cache makes none.
   */
  track<T extends { dir: string }>(repoId: string, revision: string | undefined, run: Runner<T>): { downloadId: string; done: Promise<T> } {
    const key = `${repoId}@${revision ?? 'main'}`;
    for (const [downloadId, a] of this.active) if (a.key === key) return { downloadId, done: a.done as Promise<T> };

    const downloadId = randomUUID();
    const abort = new AbortController();
    const sent: { last: ContractProgress | null } = { last: null };
    const send = (p: ContractProgress) => {
      sent.last = p;
      this.emit('download.progress', p);
    };
    const done = (async () => {
      try {
        const result = await run({
          signal: abort.signal,
          onProgress: (p) =>
            send({ downloadId, repoId, file: p.file, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, speedBytesPerSec: p.speedBytesPerSec, etaSeconds: p.etaSeconds, state: 'running' }),
        });
        if (sent.last) send({ ...sent.last, bytesDone: sent.last.bytesTotal, etaSeconds: 0, state: 'done', dir: result.dir });
        return result;
      } catch (err) {
        const cancelled = abort.signal.aborted || (err as { code?: string })?.code === 'CANCELLED';
        const base = sent.last ?? { downloadId, repoId, file: '', bytesDone: 0, bytesTotal: 0, speedBytesPerSec: 0, etaSeconds: null };
        send({ ...base, speedBytesPerSec: 0, etaSeconds: null, state: cancelled ? 'cancelled' : 'error', ...(cancelled ? {} : { error: err instanceof Error ? err.message : String(err) }) });
        throw err;
      } finally {
        this.active.delete(downloadId);
      }
    })();
    done.catch(() => {}); // the caller of hub.download follows it through events only
    this.active.set(downloadId, { key, abort, done });
    return { downloadId, done };
  }

  cancel(downloadId: string): boolean {
    const a = this.active.get(downloadId);
    a?.abort.abort();
    return !!a;
  }

  async cancelAll(): Promise<void> {
    const all = [...this.active.values()];
    for (const a of all) a.abort.abort();
    await Promise.allSettled(all.map((a) => a.done));
  }
}
