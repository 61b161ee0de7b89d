// Downloading a model repository into the Hugging Face cache, resumably. Each file streams into
// blobs/<blob>.incomplete; after an interruption the next attempt continues with an HTTP Range request
// from the length already on disk. The size and hash are checked before the file is renamed to its
// final name, so the cache never holds a corrupt file under a name other tools would trust.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { resolveHubSettings, type ResolvedHubSettings } from './config';
import { blobPath, fileSize, linkSnapshotFile, repoCacheDir, snapshotDir, snapshotFile, writeRef } from './cache';
import { getRepoListing, hubFetch, type HubRequestOptions, type RepoFile, type RepoListing } from './client';
import { cancelledError, describeHubFailure, HubError } from './errors';

export type DownloadState = 'listing' | 'downloading' | 'retrying' | 'verifying' | 'done';

export interface DownloadProgress {
  repoId: string;
  /** The file being fetched (repo-relative path); '' while listing. */
  file: string;
  /** 0-based index of `file` among the files of this download. */
  fileIndex: number;
  fileCount: number;
  /** Bytes present in the cache so far, over all files (including those found already cached). */
  bytesDone: number;
  /** Bytes of all files of this download. */
  bytesTotal: number;
  /** Over the last 3 seconds (a sliding window): 0 before data arrives, and falling to 0 while none does. */
  speedBytesPerSec: number;
  /** null while the speed is unknown. */
  etaSeconds: number | null;
  state: DownloadState;
}

/** Where downloaded bytes go. Injectable so tests can make a disk "fill up" (ENOSPC) honestly. */
export interface BlobWriter {
  write(chunk: Uint8Array): Promise<void>;
  /** Closes the file; `sync` flushes it to disk first (done only for a complete file). */
  close(sync: boolean): Promise<void>;
}
export type OpenBlobWriter = (file: string, mode: 'append' | 'truncate') => Promise<BlobWriter>;

export const openFileWriter: OpenBlobWriter = async (file, mode) => {
  const fh = await fs.open(file, mode === 'append' ? 'a' : 'w');
  return {
    async write(chunk) {
      let off = 0;
      while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
    },
    async close(sync) {
      try {
        if (sync) await fh.sync();
      } finally {
        await fh.close();
      }
    },
  };
};

export interface DownloadOptions extends HubRequestOptions {
  revision?: string;
  onProgress?: (p: DownloadProgress) => void;
  /** Automatic resumes after a broken connection, per file (default 3). */
  retries?: number;
  /** Delay before the first automatic resume, doubled each time (default 500 ms). */
  retryDelayMs?: number;
  /** Minimum milliseconds between two progress events (default 100, i.e. at most 10 a second; the last state is never dropped). */
  progressIntervalMs?: number;
  openWriter?: OpenBlobWriter;
}

export interface DownloadResult {
  repoId: string;
  revision: string;
  commit: string;
  /** snapshots/<commit> in the cache: a folder with the model's files. */
  dir: string;
  files: RepoFile[];
  /** Files whose contents were fetched (the rest were already in the cache). */
  fetched: string[];
}

// What a model folder needs beside its weights. Never code (*.py), never pickles or other formats.
const MODEL_FILES = new Set([
  'config.json',
  'generation_config.json',
  'model.safetensors.index.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'added_tokens.json',
  'chat_template.jinja',
  'chat_template.json',
]);
const OTHER_WEIGHTS_RE = /\.(bin|pt|pth|ckpt|h5|msgpack|onnx|gguf|ggml|pkl|npz|tflite|mlmodel)$/i;

/**
 * The files of a listing worth downloading for our engine: the metadata files above and the
 * safetensors weights. With an index, only the shards it names (repos often also hold a consolidated
 * copy); else model.safetensors; else every top-level *.safetensors. Only top-level files.
 */
export function selectModelFiles(listing: RepoListing, indexWeightMap?: Record<string, string>): RepoFile[] {
  const top = listing.files.filter((f) => !f.path.includes('/'));
  const byName = new Map(top.map((f) => [f.path, f]));
  const safetensors = top.filter((f) => f.path.endsWith('.safetensors'));
  if (safetensors.length === 0) {
    const others = top.filter((f) => OTHER_WEIGHTS_RE.test(f.path)).map((f) => f.path);
    throw new HubError(
      `The model ${listing.repoId} has no safetensors weights${others.length ? ` (it has ${others.slice(0, 4).join(', ')}${others.length > 4 ? ', ...' : ''})` : ''}. ` +
        'Only safetensors weights are supported (pickle formats such as .bin and .pt can run code when loaded, and this app never executes code from a repository). Look for a safetensors version of the model.',
      'HUB_NO_SAFETENSORS',
    );
  }
  if (!byName.has('config.json')) {
    throw new HubError(`The model ${listing.repoId} has no config.json, so it is not a Hugging Face transformers model this app can load.`, 'HUB_NOT_A_MODEL');
  }
  let weights: RepoFile[];
  if (indexWeightMap) {
    weights = [];
    for (const shard of [...new Set(Object.values(indexWeightMap))].sort()) {
      const f = byName.get(shard);
      if (!f) throw new HubError(`model.safetensors.index.json of ${listing.repoId} names the shard ${shard}, which the repository does not have.`, 'HUB_FILE_NOT_FOUND');
      weights.push(f);
    }
  } else if (byName.has('model.safetensors')) {
    weights = [byName.get('model.safetensors')!];
  } else {
    weights = safetensors;
  }
  const meta = top.filter((f) => MODEL_FILES.has(f.path));
  return [...meta, ...weights];
}

/** The speed is the bytes of the last few seconds over their time. */
const SPEED_WINDOW_MS = 3000;

/**
 * Progress with speed over a sliding window, throttled to one event per interval. An event that
 * falls inside the interval is not lost: the latest state goes out when the interval ends, so a
 * change of file or state (e.g. 'verifying' a large shard) shows within one interval.
 */
class ProgressReporter {
  private samples: { t: number; bytes: number }[] = [];
  private lastEmit = -Infinity;
  private pending: NodeJS.Timeout | undefined;
  /** While bytes are awaited, an event at least every second, so the speed falls to 0 in a stall
   * instead of showing the last rate while nothing arrives. */
  private heartbeat: NodeJS.Timeout | undefined;
  bytesDone = 0;
  current = { file: '', fileIndex: 0, state: 'listing' as DownloadState };

  constructor(
    private readonly repoId: string,
    private readonly fileCount: () => number,
    private readonly bytesTotal: () => number,
    private readonly intervalMs: number,
    private readonly onProgress?: (p: DownloadProgress) => void,
  ) {}

  set(file: string, fileIndex: number, state: DownloadState): void {
    this.current = { file, fileIndex, state };
    if (state === 'downloading' && this.onProgress) this.heartbeat ??= setInterval(() => this.current.state === 'downloading' && this.emit(false), 1000).unref();
    this.emit(state === 'done');
  }

  /** Bytes that arrived over the network: they count toward the speed. */
  add(n: number): void {
    this.bytesDone += n;
    this.emit(false);
  }

  /** Bytes found on disk (cached files, a partial file resumed) or given back: done, but not speed. */
  credit(n: number): void {
    this.bytesDone += n;
    for (const s of this.samples) s.bytes += n;
    this.emit(false);
  }

  /** Forget the speed history (after a pause such as a retry delay). */
  resetSpeed(): void {
    this.samples = [];
  }

  /** Drops a pending event; called when the download ends, by success or failure. */
  stop(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private emit(force: boolean): void {
    if (!this.onProgress) return;
    const now = performance.now();
    const wait = this.lastEmit + this.intervalMs - now;
    if (!force && wait > 0) {
      this.pending ??= setTimeout(() => {
        this.pending = undefined;
        this.emit(true);
      }, wait).unref();
      return;
    }
    clearTimeout(this.pending);
    this.pending = undefined;
    this.lastEmit = now;
    const speed = this.speed(now);
    const total = this.bytesTotal();
    const remaining = Math.max(0, total - this.bytesDone);
    const known = this.current.state !== 'listing';
    this.onProgress({
      repoId: this.repoId,
      file: this.current.file,
      fileIndex: this.current.fileIndex,
      fileCount: this.fileCount(),
      bytesDone: this.bytesDone,
      bytesTotal: total,
      speedBytesPerSec: Math.round(speed),
      etaSeconds: !known ? null : remaining === 0 ? 0 : speed > 0 ? Math.ceil(remaining / speed) : null,
      state: this.current.state,
    });
  }

  private speed(now: number): number {
    this.samples.push({ t: now, bytes: this.bytesDone });
    while (this.samples.length > 2 && now - this.samples[0].t > SPEED_WINDOW_MS) this.samples.shift();
    const first = this.samples[0];
    const dt = (now - first.t) / 1000;
    return dt > 0.05 ? (this.bytesDone - first.bytes) / dt : 0;
  }
}

function resolveUrl(endpoint: string, repoId: string, commit: string, file: string): string {
  return `${endpoint}/${repoId}/resolve/${commit}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

interface Hasher {
  hash: Hash;
  expected: string;
  kind: string;
}

/**
 * The running hash of the .incomplete file's first `length` bytes, kept across resume attempts so a
 * file is hashed while it arrives; the prefix is read back from disk only when it is not known.
 */
interface RunningDigest {
  hasher: Hasher | null;
  length: number;
}

function newHasher(f: RepoFile): Hasher | null {
  if (f.sha256) return { hash: createHash('sha256'), expected: f.sha256, kind: 'sha256' };
  if (f.gitSha1) {
    // A git blob id is sha1("blob <size>\0" + contents).
    const hash = createHash('sha1');
    hash.update(`blob ${f.size}\0`);
    return { hash, expected: f.gitSha1, kind: 'git sha1' };
  }
  return null;
}

/** Restarts `digest` from the first `length` bytes on disk. */
async function rehash(digest: RunningDigest, f: RepoFile, file: string, length: number): Promise<void> {
  digest.hasher = newHasher(f);
  digest.length = length;
  if (!digest.hasher || length === 0) return;
  const stream = createReadStream(file, { start: 0, end: length - 1 });
  for await (const chunk of stream) digest.hasher.hash.update(chunk as Buffer);
}

function mb(bytes: number): string {
  return `${Math.max(1, Math.ceil(bytes / 1e6))} MB`;
}

/** Errors from writing the .incomplete file: a full disk is the one a person can fix. */
function describeWriteFailure(err: unknown, file: string, cacheDir: string, bytesStillNeeded: number, incomplete: string): Error {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new HubError(
      `The disk is full while downloading ${file} to ${cacheDir}: free ${mb(bytesStillNeeded)} and resume (start the same download again; what was fetched so far is kept in ${incomplete}).`,
      'DISK_FULL',
    );
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new HubError(`Cannot write to the Hugging Face cache at ${cacheDir} (${code}). Set HF_HOME or HF_HUB_CACHE to a folder you can write.`, 'HUB_HTTP_ERROR');
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** A failure worth another try from the bytes already on disk; the message says what happened. */
class Retryable extends Error {}
class Stalled extends Error {}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

interface FetchBlobArgs {
  settings: ResolvedHubSettings;
  listing: { repoId: string; commit: string };
  file: RepoFile;
  repoDir: string;
  signal?: AbortSignal;
  progress: ProgressReporter;
  openWriter: OpenBlobWriter;
  retries: number;
  retryDelayMs: number;
  bytesStillNeeded: () => number;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `fn` holding <cache>/.locks/<repo folder>/<blob>.quip.lock, so two downloads of one blob (two
 * studio windows, the CLI beside the studio) never append to the same .incomplete. The file holds the
 * owner's pid; one left by a dead process is taken over. (huggingface_hub flocks <blob>.lock beside
 * it; ours has its own name so neither tool disturbs the other's locks.)
 */
async function withBlobLock<T>(a: FetchBlobArgs, what: string, fn: () => Promise<T>): Promise<T> {
  const lockFile = path.join(a.settings.cacheDir, '.locks', path.basename(a.repoDir), `${a.file.blob}.quip.lock`);
  await fs.mkdir(path.dirname(lockFile), { recursive: true });
  for (;;) {
    try {
      const fh = await fs.open(lockFile, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number.parseInt(await fs.readFile(lockFile, 'utf8').catch(() => ''), 10);
    const age = Date.now() - ((await fs.stat(lockFile).catch(() => null))?.mtimeMs ?? Date.now());
    if (Number.isInteger(owner) && owner > 0 ? !processAlive(owner) : age > 10_000) {
      await fs.rm(lockFile, { force: true });
      continue;
    }
    await sleep(100, a.signal, what);
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockFile, { force: true });
  }
}

/** Fetches one file into blobs/<blob>, resuming from blobs/<blob>.incomplete; false if another download got it first. */
async function fetchBlob(a: FetchBlobArgs): Promise<boolean> {
  const what = `Downloading ${a.listing.repoId}/${a.file.path}`;
  const finalPath = blobPath(a.repoDir, a.file.blob);
  await fs.mkdir(path.dirname(finalPath), { recursive: true });
  return withBlobLock(a, what, async () => {
    // Someone else may have finished it while we waited for the lock.
    if ((await fileSize(finalPath)) === a.file.size) {
      a.progress.credit(a.file.size);
      return false;
    }
    await fetchBlobLocked(a, finalPath, what);
    return true;
  });
}

async function fetchBlobLocked(a: FetchBlobArgs, finalPath: string, what: string): Promise<void> {
  const { settings, file, progress } = a;
  const incomplete = `${finalPath}.incomplete`;
  const url = resolveUrl(settings.endpoint, a.listing.repoId, a.listing.commit, file.path);
  const fetchFile = hubFetch({ settings, signal: a.signal, repoId: a.listing.repoId, revision: a.listing.commit, file: file.path, what }, [416]);

  const digest: RunningDigest = { hasher: newHasher(file), length: 0 };
  let counted = 0; // bytes of this file already added to the progress total
  const count = (have: number, fromNetwork = false) => {
    if (fromNetwork) progress.add(have - counted);
    else progress.credit(have - counted);
    counted = have;
  };

  for (let attempt = 0; ; attempt++) {
    if (a.signal?.aborted) throw cancelledError(what);
    let have = Math.max(0, await fileSize(incomplete));
    if (have > file.size) {
      await fs.rm(incomplete, { force: true });
      have = 0;
    }
    count(have);
    try {
      if (have < file.size || file.size === 0) await streamInto(a, url, fetchFile, incomplete, have, count, digest);
      break;
    } catch (err) {
      if (!(err instanceof Retryable)) throw err;
      if (attempt >= a.retries) {
        const done = Math.max(0, await fileSize(incomplete));
        const why = /^the hub sent no data/.test(err.message) ? ` (${err.message}, ${a.retries + 1} time${a.retries ? 's' : ''})` : '';
        throw new HubError(
          `The connection to ${settings.endpoint} broke while downloading ${file.path} of ${a.listing.repoId}${why} (${mb(done)} of ${mb(file.size)} done). ` +
            `Start the same download again to resume; the part already fetched is kept in ${incomplete}.`,
          'DOWNLOAD_INTERRUPTED',
        );
      }
      progress.set(file.path, progress.current.fileIndex, 'retrying');
      await sleep(a.retryDelayMs * 2 ** attempt, a.signal, what);
      progress.resetSpeed();
      progress.set(file.path, progress.current.fileIndex, 'downloading');
    }
  }

  // Verify size and hash, then rename it into place.
  progress.set(file.path, progress.current.fileIndex, 'verifying');
  const size = await fileSize(incomplete);
  if (size !== file.size) {
    await fs.rm(incomplete, { force: true });
    throw new HubError(`${file.path} of ${a.listing.repoId} arrived with ${size} bytes where the hub lists ${file.size}. It was removed; try again.`, 'DOWNLOAD_CORRUPT');
  }
  if (digest.length !== size) await rehash(digest, file, incomplete, size);
  const hasher = digest.hasher;
  if (hasher) {
    const got = hasher.hash.digest('hex');
    if (got !== hasher.expected) {
      await fs.rm(incomplete, { force: true });
      throw new HubError(
        `${file.path} of ${a.listing.repoId} is corrupt: its ${hasher.kind} is ${got}, the hub lists ${hasher.expected}. It was removed; try again.`,
        'DOWNLOAD_CORRUPT',
      );
    }
  }
  await fs.rename(incomplete, finalPath);
}

async function streamInto(
  a: FetchBlobArgs,
  url: string,
  fetchFile: typeof fetch,
  incomplete: string,
  have: number,
  count: (have: number, fromNetwork?: boolean) => void,
  digest: RunningDigest,
): Promise<void> {
  const { file } = a;
  const what = `Downloading ${a.listing.repoId}/${file.path}`;
  let res: Response;
  try {
    res = await fetchFile(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {} });
  } catch (err) {
    // No answer, or a server error: worth another try from where we are.
    if (err instanceof HubError && (err.code === 'HUB_UNREACHABLE' || (err.status ?? 0) >= 500)) throw new Retryable(err.message);
    throw err;
  }
  if (res.status === 416) {
    // Our partial file is not a prefix the server recognises: start over.
    await res.body?.cancel().catch(() => undefined);
    await fs.rm(incomplete, { force: true });
    count(0);
    throw new Retryable('range not satisfiable');
  }
  let mode: 'append' | 'truncate' = 'truncate';
  if (have > 0 && res.status === 206) {
    const start = /bytes (\d+)-/.exec(res.headers.get('Content-Range') ?? '')?.[1];
    if (start === undefined || Number(start) !== have) {
      await res.body?.cancel().catch(() => undefined);
      throw new HubError(`The hub at ${a.settings.endpoint} answered a resume request for ${file.path} with the wrong range. Try again.`, 'HUB_BAD_RESPONSE');
    }
    mode = 'append';
  } else {
    have = 0; // a 200 answer is the whole file: the server ignored our Range
    count(0);
  }

  a.progress.set(file.path, a.progress.current.fileIndex, 'downloading');
  let writer: BlobWriter;
  try {
    writer = await a.openWriter(incomplete, mode);
  } catch (err) {
    await res.body?.cancel().catch(() => undefined);
    throw describeWriteFailure(err, file.path, a.settings.cacheDir, a.bytesStillNeeded(), incomplete);
  }
  let written = have;
  let ok = false;
  try {
    if (digest.length !== have) await rehash(digest, file, incomplete, have);
    if (!res.body) throw new Retryable('empty body');
    const reader = res.body.getReader();
    const idleMs = a.settings.readTimeoutMs;
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      // A connection that stays open and sends nothing would otherwise be waited on forever: after
      // idleMs without a byte it is dropped and the file resumed from what is on disk.
      let idle: NodeJS.Timeout | undefined;
      try {
        r = await Promise.race([
          reader.read(),
          new Promise<never>((_, reject) => {
            idle = setTimeout(() => reject(new Stalled()), idleMs);
          }),
        ]);
      } catch (err) {
        if (a.signal?.aborted) throw cancelledError(what);
        if (err instanceof Stalled) {
          await reader.cancel().catch(() => undefined);
          throw new Retryable(`the hub sent no data for ${formatMs(idleMs)}`);
        }
        throw new Retryable((err as Error)?.message ?? 'connection lost');
      } finally {
        clearTimeout(idle);
      }
      if (r.done) break;
      const chunk = r.value;
      if (written + chunk.length > file.size) {
        await reader.cancel().catch(() => undefined);
        throw new HubError(`The hub sent more than the ${file.size} bytes it lists for ${file.path} of ${a.listing.repoId}. Try again later.`, 'DOWNLOAD_CORRUPT');
      }
      try {
        await writer.write(chunk);
      } catch (err) {
        digest.length = -1; // part of the chunk may be on disk
        await reader.cancel().catch(() => undefined);
        throw describeWriteFailure(err, file.path, a.settings.cacheDir, a.bytesStillNeeded(), incomplete);
      }
      digest.hasher?.hash.update(chunk);
      digest.length += chunk.length;
      written += chunk.length;
      count(written, true);
    }
    if (written !== file.size) throw new Retryable('connection closed early');
    ok = true;
  } finally {
    try {
      await writer.close(ok);
    } catch (err) {
      if (ok) throw describeWriteFailure(err, file.path, a.settings.cacheDir, a.bytesStillNeeded(), incomplete);
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancelledError(what));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(cancelledError(what));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Whether the cache already holds `f` for this commit; links the snapshot entry if only the blob is there. */
async function ensureCached(repoDir: string, commit: string, f: RepoFile): Promise<boolean> {
  if ((await fileSize(snapshotFile(repoDir, commit, f.path))) === f.size) return true;
  if ((await fileSize(blobPath(repoDir, f.blob))) === f.size) {
    await linkSnapshotFile(repoDir, commit, f.path, f.blob);
    return true;
  }
  return false;
}

/**
 * Downloads the model files of a hub repository at a revision into the cache and returns its
 * snapshot folder. Files already in the cache (from us or any other HF tool) are not fetched again.
 */
export async function downloadModel(repoId: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const settings = resolveHubSettings(opts);
  const revision = opts.revision ?? 'main';
  const what = `Downloading ${repoId}`;
  let files: RepoFile[] = [];
  const progress = new ProgressReporter(
    repoId,
    () => files.length,
    () => files.reduce((s, f) => s + f.size, 0),
    opts.progressIntervalMs ?? 100,
    opts.onProgress,
  );
  try {
    progress.set('', 0, 'listing');
    if (settings.offline) throw new HubError(`HF_HUB_OFFLINE is set, so ${repoId} cannot be downloaded. Unset it to download.`, 'HUB_UNREACHABLE');
    const listing = await getRepoListing(repoId, { ...opts, revision });
    const repoDir = repoCacheDir(settings.cacheDir, repoId);
    const common = {
      settings,
      listing,
      repoDir,
      signal: opts.signal,
      progress,
      openWriter: opts.openWriter ?? openFileWriter,
      retries: opts.retries ?? 3,
      retryDelayMs: opts.retryDelayMs ?? 500,
      bytesStillNeeded: () => Math.max(0, files.reduce((s, f) => s + f.size, 0) - progress.bytesDone),
    };
    const fetched: string[] = [];
    const fetchIntoSnapshot = async (f: RepoFile) => {
      // The hub shows a gated repo's files to anyone but serves them only with a token: say so
      // before the first request rather than after it.
      if (listing.gated && !settings.token) {
        throw describeHubFailure(401, 'GatedRepo', { endpoint: settings.endpoint, repoId, revision, file: f.path, hadToken: false });
      }
      if (await fetchBlob({ ...common, file: f })) fetched.push(f.path);
      await linkSnapshotFile(repoDir, listing.commit, f.path, f.blob);
    };

    // The index decides which shards to fetch, so it comes first.
    const indexEntry = listing.files.find((f) => f.path === 'model.safetensors.index.json');
    let weightMap: Record<string, string> | undefined;
    if (indexEntry) {
      files = [indexEntry];
      if (!(await ensureCached(repoDir, listing.commit, indexEntry))) await fetchIntoSnapshot(indexEntry);
      try {
        weightMap = (JSON.parse(await fs.readFile(snapshotFile(repoDir, listing.commit, indexEntry.path), 'utf8')) as { weight_map?: Record<string, string> }).weight_map;
      } catch {
        weightMap = undefined;
      }
      if (!weightMap || typeof weightMap !== 'object') {
        throw new HubError(`model.safetensors.index.json of ${repoId} is not valid JSON with a weight_map, so its shards are unknown.`, 'HUB_BAD_RESPONSE');
      }
    }
    files = selectModelFiles(listing, weightMap);
    progress.bytesDone = 0;

    for (let i = 0; i < files.length; i++) {
      const f = files[i];
      if (opts.signal?.aborted) throw cancelledError(what);
      progress.current = { file: f.path, fileIndex: i, state: 'downloading' };
      if (await ensureCached(repoDir, listing.commit, f)) {
        progress.credit(f.size);
        continue;
      }
      await fetchIntoSnapshot(f);
    }
    await writeRef(repoDir, revision, listing.commit);
    progress.set(files.at(-1)?.path ?? '', Math.max(0, files.length - 1), 'done');
    return { repoId, revision, commit: listing.commit, dir: snapshotDir(repoDir, listing.commit), files, fetched };
  } finally {
    progress.stop();
  }
}
