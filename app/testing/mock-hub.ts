// A small Hugging Face Hub on 127.0.0.1 for tests, end-to-end runs and `quip bench hub`: a real HTTP
// server that serves folders (or in-memory files) as model repositories through the same endpoints
// the client uses —
// model search, model info (with sha and siblings), the file tree, and /resolve with ETag,
// X-Repo-Commit, Content-Length and Range. Faults can be switched on to make tests realistic:
// cutting the connection part-way through a file, stalling it (open but silent), throttling.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { projectRoot } from '../util/paths.js';

export interface MockRepoSpec {
  /** A folder whose files (top level) become the repository's files. */
  dir?: string;
  /** Files given directly (added to, or replacing, those of `dir`); paths may contain '/'. */
  files?: Record<string, string | Uint8Array>;
  /** A gated repository: its info and file list are public (as on the hub), its files answer 401
   *  without a token and 403 with a token other than this one. */
  gatedToken?: string;
  pipelineTag?: string;
  libraryName?: string;
  downloads?: number;
  likes?: number;
  tags?: string[];
}

export interface MockHubFaults {
  /** Close the connection after `afterBytes` body bytes of a download of `file`, `times` times. */
  cut?: { file: string; afterBytes: number; times: number };
  /** Send `afterBytes` body bytes of a download of `file`, then nothing more while keeping the
   * connection open (a stalled transfer), `times` times. */
  stall?: { file: string; afterBytes: number; times: number };
  /** Serve file bodies at about this many bytes per second. */
  bytesPerSecond?: number;
  /** Answer Range requests with the whole file (200), as some proxies do. */
  ignoreRange?: boolean;
  /** Accept requests and never answer them (a hub that hangs). */
  hang?: boolean;
  /** Serve this file with its last byte flipped (as a broken proxy or disk would), `times` times. */
  corrupt?: { file: string; times: number };
}

export interface MockHubRequest {
  method: string;
  /** Path and query, as received. */
  url: string;
  range: string | null;
  authorization: string | null;
  status: number;
}

export interface MockHub {
  url: string;
  close(): Promise<void>;
  /** Every request received, in order. */
  requests: MockHubRequest[];
  /** Mutable: tests switch faults on and off between calls. */
  faults: MockHubFaults;
  /** The commit hash a repository's main branch points at. */
  commitOf(repoId: string): string;
}

interface ServedFile {
  path: string;
  data: Buffer;
  lfs: boolean;
  sha256: string;
  /** git blob sha1 of the contents (regular files) or of the LFS pointer (LFS files), as the hub lists. */
  oid: string;
  pointerSize: number;
}

interface ServedRepo {
  id: string;
  objectId: string;
  commit: string;
  files: Map<string, ServedFile>;
  spec: MockRepoSpec;
  lastModified: string;
}

// Patterns the hub's default .gitattributes stores with LFS.
const LFS_RE = /\.(safetensors|bin|pt|pth|ckpt|h5|msgpack|onnx|gguf|model|pkl|npz|zip|tar|gz)$/i;

function gitBlobSha1(data: Buffer | string): string {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  return createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');
}

function serveFile(p: string, data: Buffer): ServedFile {
  const sha256 = createHash('sha256').update(data).digest('hex');
  const lfs = LFS_RE.test(p);
  const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${data.length}\n`;
  return { path: p, data, lfs, sha256, oid: gitBlobSha1(lfs ? pointer : data), pointerSize: Buffer.byteLength(pointer) };
}

async function loadRepo(id: string, spec: MockRepoSpec): Promise<ServedRepo> {
  const files = new Map<string, ServedFile>();
  if (spec.dir) {
    for (const name of (await fs.readdir(spec.dir)).sort()) {
      const full = path.join(spec.dir, name);
      if ((await fs.stat(full)).isFile()) files.set(name, serveFile(name, await fs.readFile(full)));
    }
  }
  for (const [p, content] of Object.entries(spec.files ?? {})) files.set(p, serveFile(p, Buffer.from(content)));
  const commit = createHash('sha1')
    .update([...files.values()].map((f) => `${f.path} ${f.oid}\n`).join(''))
    .update(id)
    .digest('hex');
  return { id, objectId: createHash('md5').update(id).digest('hex').slice(0, 24), commit, files, spec, lastModified: '2025-01-15T12:00:00.000Z' };
}

/** The test repositories the project's tests and e2e runs use, built from ../shared/data. */
export function defaultMockRepos(sharedData = path.resolve(projectRoot(), '..', 'shared', 'data')): Record<string, MockRepoSpec> {
  const stories = path.join(sharedData, 'models', 'stories260k');
  return {
    'test-org/stories260k': { dir: stories, downloads: 1234, likes: 5, libraryName: 'transformers', tags: ['llama', 'safetensors'] },
    'test-org/gated-stories': { dir: stories, gatedToken: 'hf_mock_gated_token', downloads: 10, likes: 1, libraryName: 'transformers', tags: ['llama'] },
    'test-org/pickle-only': {
      files: { 'config.json': '{"model_type": "llama"}', 'pytorch_model.bin': 'not really a pickle', 'modeling_custom.py': 'raise SystemExit' },
      downloads: 3,
      tags: ['pytorch'],
    },
  };
}

function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'invalid' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start >= size || start > end ? 'invalid' : { start, end };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function drainOrClose(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

export async function startMockHub(opts: { repos: Record<string, MockRepoSpec>; faults?: MockHubFaults }): Promise<MockHub> {
  const repos = new Map<string, ServedRepo>();
  for (const [id, spec] of Object.entries(opts.repos)) repos.set(id, await loadRepo(id, spec));
  const requests: MockHubRequest[] = [];
  const faults: MockHubFaults = { ...opts.faults };

  const server = http.createServer((req, res) => {
    const entry: MockHubRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      range: req.headers.range ?? null,
      authorization: req.headers.authorization ?? null,
      status: 0,
    };
    requests.push(entry);
    const send = (status: number, headers: Record<string, string | number>, body?: string | Buffer) => {
      entry.status = status;
      res.writeHead(status, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const json = (status: number, value: unknown, errorCode?: string) =>
      send(status, { 'Content-Type': 'application/json; charset=utf-8', ...(errorCode ? { 'X-Error-Code': errorCode } : {}) }, JSON.stringify(value));
    handle(req, res, entry, send, json).catch((err) => {
      if (!res.headersSent) json(500, { error: String(err) });
      else res.destroy();
    });
  });

  function info(r: ServedRepo) {
    return {
      _id: r.objectId,
      id: r.id,
      modelId: r.id,
      author: r.id.split('/')[0],
      sha: r.commit,
      private: false,
      gated: r.spec.gatedToken ? 'manual' : false,
      disabled: false,
      downloads: r.spec.downloads ?? 0,
      likes: r.spec.likes ?? 0,
      lastModified: r.lastModified,
      pipeline_tag: r.spec.pipelineTag ?? 'text-generation',
      library_name: r.spec.libraryName,
      tags: tagsOf(r),
      siblings: [...r.files.keys()].map((rfilename) => ({ rfilename })),
    };
  }

  // The hub tags repositories by the weight formats it finds in them.
  function tagsOf(r: ServedRepo): string[] {
    const tags = new Set(r.spec.tags ?? []);
    for (const f of r.files.keys()) {
      if (f.endsWith('.safetensors')) tags.add('safetensors');
      if (f.endsWith('.gguf')) tags.add('gguf');
    }
    return [...tags];
  }

  async function handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    entry: MockHubRequest,
    send: (status: number, headers: Record<string, string | number>, body?: string | Buffer) => void,
    json: (status: number, value: unknown, errorCode?: string) => void,
  ): Promise<void> {
    if (faults.hang) return; // the connection stays open until close()
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);

    // Model search.
    if (parts.length === 2 && parts[0] === 'api' && parts[1] === 'models') {
      const q = (url.searchParams.get('search') ?? '').toLowerCase();
      const task = url.searchParams.get('pipeline_tag');
      const author = url.searchParams.get('author');
      const limit = Number(url.searchParams.get('limit') ?? 1000);
      const filters = url.searchParams.getAll('filter');
      const found = [...repos.values()]
        .filter(
          (r) =>
            r.id.toLowerCase().includes(q) &&
            (!task || (r.spec.pipelineTag ?? 'text-generation') === task) &&
            (!author || r.id.startsWith(`${author}/`)) &&
            filters.every((t) => tagsOf(r).includes(t)),
        )
        .sort((a, b) => (b.spec.downloads ?? 0) - (a.spec.downloads ?? 0))
        .slice(0, limit)
        .map((r) => {
          const { siblings: _s, sha: _h, ...rest } = info(r);
          return rest;
        });
      return json(200, found);
    }

    // Which repository, and may the caller see it?
    const isApi = parts[0] === 'api' && parts[1] === 'models';
    const repoParts = isApi ? parts.slice(2) : parts;
    const repoId = repoParts.slice(0, 2).join('/');
    const repo = repos.get(repoId);
    if (!repo || repoParts.length < 2) return json(404, { error: 'Repository not found' }, 'RepositoryNotFound');
    const rest = repoParts.slice(2);
    if (repo.spec.gatedToken && !isApi) {
      const auth = req.headers.authorization;
      if (!auth) return json(401, { error: `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.` }, 'GatedRepo');
      if (auth !== `Bearer ${repo.spec.gatedToken}`) return json(403, { error: `Access to model ${repoId} is restricted and you are not in the authorized list.` }, 'GatedRepo');
    }
    const revisionOk = (rev: string) => rev === 'main' || rev === 'HEAD' || rev === repo.commit;

    if (isApi) {
      if (rest.length === 0) return json(200, info(repo));
      if (rest[0] === 'revision' && rest.length >= 2) {
        const rev = rest.slice(1).join('/');
        return revisionOk(rev) ? json(200, info(repo)) : json(404, { error: `Invalid rev id: ${rev}` }, 'RevisionNotFound');
      }
      if (rest[0] === 'tree' && rest.length >= 2) {
        if (!revisionOk(rest[1])) return json(404, { error: `Invalid rev id: ${rest[1]}` }, 'RevisionNotFound');
        const prefix = rest.slice(2).join('/');
        const recursive = url.searchParams.get('recursive') === 'true';
        const out: unknown[] = [];
        const dirs = new Set<string>();
        for (const f of repo.files.values()) {
          if (prefix && !f.path.startsWith(`${prefix}/`)) continue;
          const rel = prefix ? f.path.slice(prefix.length + 1) : f.path;
          if (!recursive && rel.includes('/')) {
            dirs.add((prefix ? `${prefix}/` : '') + rel.split('/')[0]);
            continue;
          }
          out.push({ type: 'file', oid: f.oid, size: f.data.length, path: f.path, ...(f.lfs ? { lfs: { oid: f.sha256, size: f.data.length, pointerSize: f.pointerSize } } : {}) });
        }
        for (const d of dirs) out.push({ type: 'directory', oid: createHash('sha1').update(d).digest('hex'), size: 0, path: d });
        return json(200, out);
      }
      return json(404, { error: 'Not found' });
    }

    if (rest[0] !== 'resolve' || rest.length < 3) return json(404, { error: 'Not found' });
    if (!revisionOk(rest[1])) return json(404, { error: `Invalid rev id: ${rest[1]}` }, 'RevisionNotFound');
    const file = repo.files.get(rest.slice(2).join('/'));
    if (!file) return json(404, { error: 'Entry not found' }, 'EntryNotFound');

    const size = file.data.length;
    const etag = `"${file.lfs ? file.sha256 : file.oid}"`;
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      ETag: etag,
      'X-Repo-Commit': repo.commit,
      ...(file.lfs ? { 'X-Linked-Etag': etag, 'X-Linked-Size': size } : {}),
    };
    const range = faults.ignoreRange ? null : parseRange(req.headers.range, size);
    if (range === 'invalid') return send(416, { ...headers, 'Content-Range': `bytes */${size}` });
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    const status = range ? 206 : 200;
    entry.status = status;
    res.writeHead(status, { ...headers, 'Content-Length': end - start + 1, ...(range ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}) });
    if (req.method === 'HEAD') return void res.end();

    let body = file.data.subarray(start, end + 1);
    if (faults.corrupt && faults.corrupt.times > 0 && faults.corrupt.file === file.path && end === size - 1) {
      faults.corrupt.times--;
      body = Buffer.from(body);
      body[body.length - 1] ^= 0xff;
    }
    let cut = false;
    if (faults.cut && faults.cut.times > 0 && faults.cut.file === file.path && body.length > faults.cut.afterBytes) {
      faults.cut.times--;
      body = body.subarray(0, faults.cut.afterBytes);
      cut = true;
    }
    let stall = false;
    if (faults.stall && faults.stall.times > 0 && faults.stall.file === file.path && body.length > faults.stall.afterBytes) {
      faults.stall.times--;
      body = body.subarray(0, faults.stall.afterBytes);
      stall = true;
    }
    const chunkSize = 16 * 1024;
    for (let off = 0; off < body.length; off += chunkSize) {
      if (res.destroyed) return;
      const chunk = body.subarray(off, Math.min(off + chunkSize, body.length));
      if (!res.write(chunk)) await drainOrClose(res);
      if (faults.bytesPerSecond) await sleep((chunk.length / faults.bytesPerSecond) * 1000);
    }
    if (stall) return; // open and silent until the client gives up (or close())
    if (cut) {
      // Let the bytes reach the client, then drop the connection mid-body.
      await new Promise<void>((r) => res.write('', () => r()));
      res.socket?.destroy();
      return;
    }
    res.end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    faults,
    commitOf(repoId) {
      const r = repos.get(repoId);
      if (!r) throw new Error(`The mock hub has no repository ${repoId}`);
      return r.commit;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
