// The hub client against a real HTTP server on 127.0.0.1 (app/testing/mock-hub.ts) serving the stories260k test
// model: search, download into the standard HF cache layout, cache reuse, resume after a broken
// connection, cancellation, a full disk, and the error messages. Never touches the internet.
import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { projectRoot } from '../../util/paths';
import { downloadModel, type DownloadProgress, type OpenBlobWriter, openFileWriter } from './download';
import { HubError } from './errors';
import { defaultMockRepos, startMockHub, type MockHub } from '../../testing/mock-hub.js';
import { resolveModelDir } from './resolve';
import { searchModels } from './client';
import { resolveHubSettings } from './config';

const STORIES = path.resolve(projectRoot(), '..', 'shared', 'data', 'models', 'stories260k');
const REPO = 'test-org/stories260k';
// The files a model download must bring, and the one file of that folder it must not.
const MODEL_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json'];

let hub: MockHub;
let home: string;
const savedEnv = { ...process.env };

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}
function gitSha1(buf: Buffer): string {
  return createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');
}
/** The cache blob name huggingface_hub would use: the LFS sha256 for big binaries, else the git oid. */
function expectedBlob(name: string): string {
  const buf = readFileSync(path.join(STORIES, name));
  return /\.(safetensors|model)$/.test(name) ? sha256(buf) : gitSha1(buf);
}
const repoDir = () => path.join(home, 'hub', 'models--test-org--stories260k');
const bodyRequests = () => hub.requests.filter((r) => r.method === 'GET' && r.url.includes('/resolve/'));

async function expectHubError(p: Promise<unknown>, code: string): Promise<HubError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HubError);
  expect((err as HubError).code).toBe(code);
  return err as HubError;
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  hub = await startMockHub({
    repos: {
      ...defaultMockRepos(),
      'test-org/stories-embedder': { dir: STORIES, pipelineTag: 'feature-extraction', downloads: 99999 },
      'test-org/sharded': {
        files: {
          'config.json': '{"model_type": "llama"}',
          'model.safetensors.index.json': JSON.stringify({ metadata: {}, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors', c: 'model-00001-of-00002.safetensors' } }),
          'model-00001-of-00002.safetensors': 'shard one bytes',
          'model-00002-of-00002.safetensors': 'shard two bytes',
          'consolidated.safetensors': 'a second copy that must not be fetched',
          'pytorch_model.bin': 'pickle',
          'tokenizer.json': '{}',
          'original/params.json': '{}',
          'modeling_custom.py': 'import os',
          'tokenization_custom.py': 'import os',
        },
      },
      'test-org/no-config': { files: { 'model.safetensors': 'weights without a config' } },
    },
  });
});
afterAll(async () => {
  await hub?.close();
});
beforeEach(async () => {
  home = await fs.mkdtemp(path.join(os.tmpdir(), 'quip-hf-home-'));
  process.env.HF_HOME = home;
  process.env.HF_ENDPOINT = hub.url;
  delete process.env.HF_HUB_CACHE;
  delete process.env.HF_TOKEN;
  delete process.env.HUGGING_FACE_HUB_TOKEN;
  delete process.env.HF_HUB_OFFLINE;
  hub.requests.length = 0;
  hub.faults.cut = undefined;
  hub.faults.stall = undefined;
  hub.faults.bytesPerSecond = undefined;
  hub.faults.corrupt = undefined;
  hub.faults.hang = undefined;
  hub.faults.ignoreRange = undefined;
});
afterEach(async () => {
  process.env = { ...savedEnv };
  await fs.rm(home, { recursive: true, force: true });
});

describe('search', () => {
  it('finds text-generation models by name through the hub API', async () => {
    const found = await searchModels({ query: 'stories', limit: 10 });
    expect(found.map((m) => m.id)).toEqual(['test-org/stories260k', 'test-org/gated-stories']); // most downloaded first
    const m = found[0];
    expect(m).toMatchObject({ downloads: 1234, likes: 5, pipelineTag: 'text-generation', libraryName: 'transformers', gated: false });
    expect(m.tags).toContain('llama');
    expect(new Date(m.lastModified).toISOString()).toBe(m.lastModified);
    expect(found[1].gated).toBe('manual');
    const q = new URL(hub.requests[0].url, hub.url).searchParams;
    expect(q.get('search')).toBe('stories');
    expect(q.get('pipeline_tag')).toBe('text-generation');
    expect(q.getAll('filter')).toEqual(['safetensors']);
  });

  it('honours the limit, and lists models without safetensors only when asked', async () => {
    expect(await searchModels({ query: 'test-org', limit: 1 })).toHaveLength(1);
    expect((await searchModels({ query: 'pickle' })).map((m) => m.id)).toEqual([]);
    expect((await searchModels({ query: 'pickle', safetensorsOnly: false })).map((m) => m.id)).toEqual(['test-org/pickle-only']);
  });
});

describe('download into the Hugging Face cache', () => {
  it('lays out blobs, snapshot symlinks and refs/main exactly as huggingface_hub does, byte-identical', async () => {
    const events: DownloadProgress[] = [];
    const { dir, source } = await resolveModelDir(REPO, { onProgress: (p) => events.push(p), progressIntervalMs: 0 });
    const commit = hub.commitOf(REPO);
    expect(dir).toBe(path.join(repoDir(), 'snapshots', commit));
    expect(source).toEqual({ kind: 'hub', path: dir, repoId: REPO, revision: commit });
    expect(await fs.readFile(path.join(repoDir(), 'refs', 'main'), 'utf8')).toBe(commit);

    expect((await fs.readdir(dir)).sort()).toEqual(MODEL_FILES);
    for (const name of MODEL_FILES) {
      const link = path.join(dir, name);
      expect((await fs.lstat(link)).isSymbolicLink()).toBe(true);
      expect(await fs.readlink(link)).toBe(`../../blobs/${expectedBlob(name)}`);
      expect((await fs.readFile(link)).equals(readFileSync(path.join(STORIES, name)))).toBe(true);
    }
    expect((await fs.readdir(path.join(repoDir(), 'blobs'))).sort()).toEqual(MODEL_FILES.map(expectedBlob).sort());

    const total = MODEL_FILES.reduce((s, n) => s + readFileSync(path.join(STORIES, n)).length, 0);
    const last = events.at(-1)!;
    expect(last).toMatchObject({ repoId: REPO, state: 'done', bytesDone: total, bytesTotal: total, fileCount: MODEL_FILES.length, etaSeconds: 0 });
    // Unthrottled here: every file shows up, in order, and each is verified.
    expect([...new Set(events.filter((e) => e.state === 'downloading').map((e) => e.file))]).toEqual([
      ...MODEL_FILES.filter((f) => f !== 'model.safetensors'),
      'model.safetensors', // weights after the small files
    ]);
    expect(events.filter((e) => e.state === 'verifying')).toHaveLength(MODEL_FILES.length);
    for (let i = 1; i < events.length; i++) expect(events[i].bytesDone).toBeGreaterThanOrEqual(events[i - 1].bytesDone);
    // Never fetched: files a model does not need.
    expect(bodyRequests().some((r) => r.url.includes('reference-greedy-ids'))).toBe(false);
  });

  it('uses the cache on the second call: no file is fetched again, and a lost snapshot link is rebuilt from its blob', async () => {
    await resolveModelDir(REPO);
    const fetched = bodyRequests().length;
    expect(fetched).toBe(MODEL_FILES.length);
    hub.requests.length = 0;
    const r = await downloadModel(REPO);
    expect(r.fetched).toEqual([]);
    expect(bodyRequests()).toHaveLength(0);

    await fs.rm(path.join(r.dir, 'model.safetensors'));
    hub.requests.length = 0;
    const again = await downloadModel(REPO);
    expect(again.fetched).toEqual([]);
    expect(bodyRequests()).toHaveLength(0);
    expect((await fs.readFile(path.join(r.dir, 'model.safetensors'))).equals(readFileSync(path.join(STORIES, 'model.safetensors')))).toBe(true);
  });

  it('reuses a model another Hugging Face tool put in the cache, without fetching a byte', async () => {
    // The layout huggingface_hub writes, made by hand: blobs named by ETag, relative links, refs/main.
    const commit = hub.commitOf(REPO);
    const snap = path.join(repoDir(), 'snapshots', commit);
    await fs.mkdir(path.join(repoDir(), 'blobs'), { recursive: true });
    await fs.mkdir(snap, { recursive: true });
    await fs.mkdir(path.join(repoDir(), 'refs'));
    await fs.writeFile(path.join(repoDir(), 'refs', 'main'), commit);
    for (const name of [...MODEL_FILES, 'pytorch_model.bin']) {
      const blobName = name === 'pytorch_model.bin' ? 'f'.repeat(64) : expectedBlob(name);
      await fs.writeFile(path.join(repoDir(), 'blobs', blobName), name === 'pytorch_model.bin' ? 'x' : readFileSync(path.join(STORIES, name)));
      await fs.symlink(`../../blobs/${blobName}`, path.join(snap, name));
    }
    const { dir } = await resolveModelDir(REPO);
    expect(dir).toBe(snap);
    expect(bodyRequests()).toHaveLength(0);
    expect((await fs.readlink(path.join(snap, 'model.safetensors')))).toBe(`../../blobs/${expectedBlob('model.safetensors')}`);
  });

  it('honours HF_HUB_CACHE over HF_HOME', async () => {
    const cache = path.join(home, 'elsewhere');
    process.env.HF_HUB_CACHE = cache;
    const { dir } = await resolveModelDir(REPO);
    expect(dir.startsWith(path.join(cache, 'models--test-org--stories260k', 'snapshots'))).toBe(true);
  });

  it('with an index, fetches only the shards it names (not a consolidated copy, pickles, code or subfolders)', async () => {
    const r = await downloadModel('test-org/sharded');
    expect(r.fetched.sort()).toEqual(['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'tokenizer.json']);
    expect((await fs.readdir(r.dir)).sort()).toEqual(r.fetched.sort());
    expect(await fs.readFile(path.join(r.dir, 'model-00002-of-00002.safetensors'), 'utf8')).toBe('shard two bytes');
  });
});

describe('resume, cancel, full disk', () => {
  const blob = () => path.join(repoDir(), 'blobs', expectedBlob('model.safetensors'));
  const original = () => readFileSync(path.join(STORIES, 'model.safetensors'));

  it('a connection cut mid-file leaves only an .incomplete; the next call resumes with a Range request', async () => {
    hub.faults.cut = { file: 'model.safetensors', afterBytes: 300_000, times: 1 };
    const err = await expectHubError(downloadModel(REPO, { retries: 0 }), 'DOWNLOAD_INTERRUPTED');
    expect(err.message).toMatch(/broke while downloading model\.safetensors/);
    expect(err.message).toMatch(/again to resume/);
    // What reached the file before the stream failed: at most what the server sent.
    const partial = (await fs.stat(`${blob()}.incomplete`)).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThanOrEqual(300_000);
    expect(await exists(blob())).toBe(false);
    expect(await exists(path.join(repoDir(), 'snapshots', hub.commitOf(REPO), 'model.safetensors'))).toBe(false);
    expect(await exists(path.join(repoDir(), 'refs', 'main'))).toBe(false);

    hub.requests.length = 0;
    const r = await downloadModel(REPO);
    const resumed = bodyRequests().filter((q) => q.url.endsWith('/model.safetensors'));
    expect(resumed).toEqual([expect.objectContaining({ range: `bytes=${partial}-`, status: 206 })]);
    expect(r.fetched).toEqual(['model.safetensors']);
    expect((await fs.readFile(path.join(r.dir, 'model.safetensors'))).equals(original())).toBe(true);
    expect(await exists(`${blob()}.incomplete`)).toBe(false);
  });

  it('starts the file over when the server ignores the Range request', async () => {
    hub.faults.cut = { file: 'model.safetensors', afterBytes: 200_000, times: 1 };
    await expectHubError(downloadModel(REPO, { retries: 0 }), 'DOWNLOAD_INTERRUPTED');
    const partial = (await fs.stat(`${blob()}.incomplete`)).size;
    expect(partial).toBeGreaterThan(0);
    hub.faults.ignoreRange = true;
    hub.requests.length = 0;
    const r = await downloadModel(REPO);
    expect(bodyRequests().find((q) => q.url.endsWith('/model.safetensors'))).toMatchObject({ range: `bytes=${partial}-`, status: 200 });
    expect((await fs.readFile(path.join(r.dir, 'model.safetensors'))).equals(original())).toBe(true);
  });

  it('a whole .incomplete left by a process stopped before the rename is verified and used without a request', async () => {
    await fs.mkdir(path.dirname(blob()), { recursive: true });
    await fs.writeFile(`${blob()}.incomplete`, original());
    const r = await downloadModel(REPO);
    expect(bodyRequests().filter((q) => q.url.endsWith('/model.safetensors'))).toHaveLength(0);
    expect((await fs.readFile(path.join(r.dir, 'model.safetensors'))).equals(original())).toBe(true);
    expect(await exists(`${blob()}.incomplete`)).toBe(false);
  });

  it('resumes by itself within one call when the connection breaks', async () => {
    hub.faults.cut = { file: 'model.safetensors', afterBytes: 123_457, times: 2 };
    const r = await downloadModel(REPO, { retryDelayMs: 5 });
    const ranges = bodyRequests()
      .filter((q) => q.url.endsWith('/model.safetensors'))
      .map((q) => q.range);
    expect(ranges).toHaveLength(3);
    expect(ranges[0]).toBeNull();
    expect(ranges[1]).toMatch(/^bytes=[1-9]\d*-$/);
    expect(ranges[2]).toMatch(/^bytes=[1-9]\d*-$/);
    expect((await fs.readFile(path.join(r.dir, 'model.safetensors'))).equals(original())).toBe(true);
  });

  it('a stalled transfer is dropped after the read timeout and resumed with a Range request; the speed falls to 0 meanwhile', async () => {
    hub.faults.stall = { file: 'model.safetensors', afterBytes: 200_000, times: 1 };
    const events: { t: number; p: DownloadProgress }[] = [];
    const t0 = performance.now();
    const r = await downloadModel(REPO, { readTimeoutMs: 4000, retryDelayMs: 10, progressIntervalMs: 50, onProgress: (p) => events.push({ t: performance.now() - t0, p }) });
    expect((await fs.readFile(path.join(r.dir, 'model.safetensors'))).equals(original())).toBe(true);
    const ranges = bodyRequests().filter((q) => q.url.endsWith('/model.safetensors')).map((q) => [q.range, q.status]);
    expect(ranges).toEqual([[null, 200], ['bytes=200000-', 206]]);
    // The stall: from the last byte of the first request to the retry, nothing arrives; events keep
    // coming (about one a second) and the speed falls to 0 instead of repeating the last rate.
    const mine = events.filter((e) => e.p.file === 'model.safetensors' && e.p.state === 'downloading');
    // The plateau: the bytes done where two events in a row show the same count.
    const plateau = mine.find((e, i) => i > 0 && e.p.bytesDone === mine[i - 1].p.bytesDone)!.p.bytesDone;
    const stalled = mine.filter((e) => e.p.bytesDone === plateau && e.t < 4000 + 1000);
    expect(stalled.length).toBeGreaterThanOrEqual(3);
    expect(stalled.at(-1)!.t - stalled[0].t).toBeGreaterThan(3000);
    // (The first may read 0: under 50 ms of samples is too short to measure.)
    const speeds = stalled.map((e) => e.p.speedBytesPerSec);
    const fromPeak = speeds.slice(speeds.indexOf(Math.max(...speeds)));
    expect(fromPeak[0]).toBeGreaterThan(0);
    expect(fromPeak).toEqual([...fromPeak].sort((a, b) => b - a));
    expect(speeds.at(-1)).toBe(0);
    expect(stalled.at(-1)!.p.etaSeconds).toBeNull();
  }, 30_000);

  it('a transfer that stalls on every try ends in an error that says so and keeps what arrived', async () => {
    hub.faults.stall = { file: 'model.safetensors', afterBytes: 100_000, times: 10 };
    const t0 = performance.now();
    const err = await expectHubError(downloadModel(REPO, { readTimeoutMs: 200, retries: 2, retryDelayMs: 5 }), 'DOWNLOAD_INTERRUPTED');
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(err.message).toMatch(/broke while downloading model\.safetensors of test-org\/stories260k \(the hub sent no data for 200 ms, 3 times\)/);
    expect(err.message).toMatch(/Start the same download again to resume/);
    expect(bodyRequests().filter((q) => q.url.endsWith('/model.safetensors')).map((q) => q.range)).toEqual([null, 'bytes=100000-', 'bytes=200000-']);
    expect((await fs.stat(`${blob()}.incomplete`)).size).toBe(300_000);
    // The read timeout comes from HF_HUB_DOWNLOAD_TIMEOUT (seconds), as in huggingface_hub.
    expect(resolveHubSettings({}, { HF_HUB_DOWNLOAD_TIMEOUT: '12' }).readTimeoutMs).toBe(12_000);
    expect(resolveHubSettings({}, {}).readTimeoutMs).toBe(30_000);
  }, 30_000);

  it('cancels through an AbortSignal, keeps the partial file, and a later call finishes it', async () => {
    hub.faults.bytesPerSecond = 400_000;
    const ac = new AbortController();
    const events: { t: number; p: DownloadProgress }[] = [];
    const p = downloadModel(REPO, {
      signal: ac.signal,
      onProgress: (e) => {
        events.push({ t: performance.now(), p: e });
        if (e.file === 'model.safetensors' && e.state === 'downloading' && e.bytesDone > 200_000) ac.abort();
      },
    });
    const err = await expectHubError(p, 'CANCELLED');
    expect(err.message).toMatch(/cancelled/);
    const partial = (await fs.stat(`${blob()}.incomplete`)).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(original().length);
    expect(await exists(blob())).toBe(false);
    // Throttled: at most one event per 100 ms (10 per second), whatever the number of files and chunks.
    expect(events.length).toBeGreaterThan(3);
    for (let i = 1; i < events.length; i++) expect(events[i].t - events[i - 1].t).toBeGreaterThanOrEqual(90);
    expect(events.some((e) => e.p.speedBytesPerSec > 0 && e.p.etaSeconds !== null)).toBe(true);

    // Resumed slowly: bytes found on disk count as done at once but not as speed.
    hub.faults.bytesPerSecond = 100_000;
    const ac2 = new AbortController();
    const speeds: number[] = [];
    const p2 = downloadModel(REPO, {
      signal: ac2.signal,
      progressIntervalMs: 0,
      onProgress: (e) => {
        speeds.push(e.speedBytesPerSec);
        if (e.bytesDone > partial + 60_000) ac2.abort();
      },
    });
    await expectHubError(p2, 'CANCELLED');
    expect(Math.max(...speeds)).toBeGreaterThan(0);
    expect(Math.max(...speeds)).toBeLessThan(1_000_000);
    const partial2 = (await fs.stat(`${blob()}.incomplete`)).size;
    expect(partial2).toBeGreaterThan(partial);

    hub.faults.bytesPerSecond = undefined;
    hub.requests.length = 0;
    const r = await downloadModel(REPO);
    expect(bodyRequests().find((q) => q.url.endsWith('/model.safetensors'))?.range).toBe(`bytes=${partial2}-`);
    expect((await fs.readFile(path.join(r.dir, 'model.safetensors'))).equals(original())).toBe(true);
  });

  it('a file whose bytes do not match the listed sha256 is thrown away, never put under its final name', async () => {
    hub.faults.corrupt = { file: 'model.safetensors', times: 1 };
    const err = await expectHubError(downloadModel(REPO), 'DOWNLOAD_CORRUPT');
    expect(err.message).toContain(`model.safetensors of ${REPO} is corrupt: its sha256 is`);
    expect(err.message).toContain(expectedBlob('model.safetensors'));
    expect(await exists(blob())).toBe(false);
    expect(await exists(`${blob()}.incomplete`)).toBe(false);
    expect(await exists(path.join(repoDir(), 'snapshots', hub.commitOf(REPO), 'model.safetensors'))).toBe(false);
    const r = await downloadModel(REPO);
    expect((await fs.readFile(path.join(r.dir, 'model.safetensors'))).equals(original())).toBe(true);
  });

  it('two downloads of one model at once fetch each file once and both succeed', async () => {
    hub.faults.bytesPerSecond = 4_000_000;
    const [a, b] = await Promise.all([downloadModel(REPO), downloadModel(REPO)]);
    expect(a.dir).toBe(b.dir);
    expect([...a.fetched, ...b.fetched].sort()).toEqual(MODEL_FILES);
    expect(bodyRequests()).toHaveLength(MODEL_FILES.length);
    expect((await fs.readFile(path.join(a.dir, 'model.safetensors'))).equals(original())).toBe(true);
    expect(await fs.readdir(path.join(home, 'hub', '.locks', 'models--test-org--stories260k'))).toEqual([]);
  });

  it('a full disk (ENOSPC) says how much to free, keeps the .incomplete, and the download resumes', async () => {
    let budget = 500_000; // bytes the "disk" takes before it is full
    const fullDisk: OpenBlobWriter = async (file, mode) => {
      const w = await openFileWriter(file, mode);
      return {
        async write(chunk) {
          const fits = Math.min(chunk.length, budget);
          if (fits > 0) await w.write(chunk.subarray(0, fits));
          budget -= fits;
          if (fits < chunk.length) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        },
        close: (sync) => w.close(sync),
      };
    };
    const err = await expectHubError(downloadModel(REPO, { openWriter: fullDisk }), 'DISK_FULL');
    const cacheDir = path.join(home, 'hub');
    expect(err.message).toContain(`The disk is full while downloading model.safetensors to ${cacheDir}: free `);
    expect(err.message).toMatch(/free \d+ MB and resume/);
    const partial = (await fs.stat(`${blob()}.incomplete`)).size;
    expect(partial).toBeGreaterThan(0);
    expect(await exists(blob())).toBe(false);

    hub.requests.length = 0;
    const r = await downloadModel(REPO);
    expect(bodyRequests().find((q) => q.url.endsWith('/model.safetensors'))?.range).toBe(`bytes=${partial}-`);
    expect((await fs.readFile(path.join(r.dir, 'model.safetensors'))).equals(original())).toBe(true);
  });
});

describe('errors and tokens', () => {
  it('a hub id that does not exist names the endpoint and asks to check the spelling', async () => {
    const err = await expectHubError(resolveModelDir('test-org/no-such-model'), 'HUB_REPO_NOT_FOUND');
    expect(err.message).toContain(`No model named test-org/no-such-model on ${hub.url}. Check the spelling`);
    expect(err.message).toContain(`There is no folder ${path.resolve('test-org/no-such-model')} either`);
  });

  it('a gated repo without a token says to set HF_TOKEN; with one, the token goes as Bearer', async () => {
    const err = await expectHubError(resolveModelDir('test-org/gated-stories'), 'HUB_GATED');
    expect(err.message).toMatch(/gated/);
    expect(err.message).toMatch(/Set HF_TOKEN/);
    expect(bodyRequests()).toHaveLength(0); // known from the model info, before any file request

    process.env.HF_TOKEN = 'hf_wrong';
    const denied = await expectHubError(resolveModelDir('test-org/gated-stories'), 'HUB_GATED');
    expect(denied.message).toMatch(/token in HF_TOKEN has no access/);
    expect(hub.requests.at(-1)).toMatchObject({ status: 403, authorization: 'Bearer hf_wrong' });

    process.env.HF_TOKEN = 'hf_mock_gated_token';
    hub.requests.length = 0;
    const { dir } = await resolveModelDir('test-org/gated-stories');
    expect((await fs.readFile(path.join(dir, 'config.json'))).equals(readFileSync(path.join(STORIES, 'config.json')))).toBe(true);
    expect(hub.requests.length).toBeGreaterThan(MODEL_FILES.length);
    for (const r of hub.requests) expect(r.authorization).toBe('Bearer hf_mock_gated_token');
  });

  it('a repo without safetensors is refused before anything is fetched, and no code is ever fetched', async () => {
    const err = await expectHubError(resolveModelDir('test-org/pickle-only'), 'HUB_NO_SAFETENSORS');
    expect(err.message).toMatch(/no safetensors weights \(it has pytorch_model\.bin\)/);
    expect(err.message).toMatch(/Only safetensors weights are supported/);
    expect(err.message).toMatch(/never executes code/);
    expect(bodyRequests()).toHaveLength(0);
  });

  it('a repo without config.json is not taken for a model', async () => {
    const err = await expectHubError(resolveModelDir('test-org/no-config'), 'HUB_NOT_A_MODEL');
    expect(err.message).toContain('test-org/no-config has no config.json');
    expect(bodyRequests()).toHaveLength(0);
  });

  it('an unknown revision is named', async () => {
    const err = await expectHubError(resolveModelDir(REPO, { revision: 'v9' }), 'HUB_REVISION_NOT_FOUND');
    expect(err.message).toContain('has no revision "v9"');
  });

  it('an unreachable hub with nothing cached says both; with the model cached it opens from the cache', async () => {
    const closed = await startMockHub({ repos: {} });
    const deadUrl = closed.url;
    await closed.close();
    process.env.HF_ENDPOINT = deadUrl;
    const err = await expectHubError(resolveModelDir(REPO, { retries: 0 }), 'HUB_UNREACHABLE');
    expect(err.message).toContain(`Cannot reach the Hugging Face Hub at ${deadUrl}`);
    expect(err.message).toContain(`holds nothing for ${REPO}`);

    process.env.HF_ENDPOINT = hub.url;
    const fresh = await resolveModelDir(REPO);
    process.env.HF_ENDPOINT = deadUrl;
    expect(await resolveModelDir(REPO)).toEqual(fresh);
  });

  it('a hub that accepts the connection and never answers is reported, not waited on forever', async () => {
    hub.faults.hang = true;
    const t0 = performance.now();
    const err = await expectHubError(resolveModelDir(REPO, { answerTimeoutMs: 300 }), 'HUB_UNREACHABLE');
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(err.message).toContain(`The Hugging Face Hub at ${hub.url} did not answer within 300 ms`);
    expect(err.message).toContain(`holds nothing for ${REPO}`);
  });

  it('HF_HUB_OFFLINE=1 uses the cache without a single request, and says so when the cache lacks the model', async () => {
    process.env.HF_HUB_OFFLINE = '1';
    const err = await expectHubError(resolveModelDir(REPO), 'HUB_NOT_IN_CACHE');
    expect(err.message).toMatch(/HF_HUB_OFFLINE is set/);
    delete process.env.HF_HUB_OFFLINE;
    const fresh = await resolveModelDir(REPO);
    process.env.HF_HUB_OFFLINE = '1';
    hub.requests.length = 0;
    expect(await resolveModelDir(REPO)).toEqual(fresh);
    expect(hub.requests).toHaveLength(0);
  });

  it('a local folder is returned as it is; a path that is not there and not a hub id is an error', async () => {
    expect(await resolveModelDir(STORIES)).toEqual({ dir: STORIES, source: { kind: 'local', path: STORIES, repoId: null, revision: null } });
    const err = await expectHubError(resolveModelDir(path.join(home, 'missing', 'model')), 'BAD_MODEL_ID');
    expect(err.message).toContain('There is no folder at');
    expect(hub.requests).toHaveLength(0);
  });
});
