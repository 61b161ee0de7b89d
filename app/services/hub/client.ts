// Talking to the hub's API through @huggingface/hub (search, model info, file tree). The library
// takes a custom fetch; ours adds the token and the cancel signal and turns failures into HubErrors,
// so the library's own error types never reach a person.
import { listFiles, listModels, modelInfo } from '@huggingface/hub';
import { resolveHubSettings, type HubSettings, type ResolvedHubSettings } from './config';
import { describeFetchThrow, describeHubFailure, HubError } from './errors';
import { isCommitHash } from './cache';

export interface HubRequestOptions extends HubSettings {
  signal?: AbortSignal;
}

export interface HubModel {
  /** Repository id, "org/name". */
  id: string;
  downloads: number;
  likes: number;
  /** ISO 8601 date of the last commit. */
  lastModified: string;
  pipelineTag: string | null;
  libraryName: string | null;
  tags: string[];
  /** false, or how access is granted ('auto' | 'manual'): gated models need HF_TOKEN. */
  gated: false | 'auto' | 'manual';
  private: boolean;
}

/** One file of a repository at a commit, as the hub's tree lists it. */
export interface RepoFile {
  path: string;
  size: number;
  /** The cache blob name: the LFS sha256 for LFS files, else the git blob sha1 (both are the hub's ETag). */
  blob: string;
  /** sha256 of the contents, known for LFS files. */
  sha256: string | null;
  /** git blob sha1 of the contents, known for regular (non-LFS) files. */
  gitSha1: string | null;
}

export interface RepoListing {
  repoId: string;
  /** The revision asked for (branch, tag or commit). */
  revision: string;
  /** The commit hash it resolved to. */
  commit: string;
  files: RepoFile[];
  gated: false | 'auto' | 'manual';
  private: boolean;
}

const REPO_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Whether a string has the shape of a hub model id, "org/name". */
export function looksLikeRepoId(s: string): boolean {
  return REPO_ID_RE.test(s) && !s.includes('--') && !s.includes('..') && !s.endsWith('.');
}

export interface HubFetchContext {
  settings: ResolvedHubSettings;
  signal?: AbortSignal;
  repoId?: string;
  revision?: string;
  file?: string;
  /** What is being done, for the cancellation message ("Searching the hub"). */
  what: string;
}

/**
 * A fetch for hub requests: sends the token and the signal; a thrown fetch becomes "cannot reach" or
 * "cancelled", a non-OK answer a HubError built from its status and X-Error-Code. A 206/200/416 of a
 * Range request is left to the caller.
 */
export function hubFetch(ctx: HubFetchContext, passStatuses: number[] = []): typeof fetch {
  return async (input, init) => {
    const headers = new Headers(init?.headers);
    if (ctx.settings.token) headers.set('Authorization', `Bearer ${ctx.settings.token}`);
    // A hub that accepts the connection and never answers must not hang the app: a timer aborts the
    // request until the headers are in; the body then runs under the caller's signal alone.
    const timeout = new AbortController();
    const timeoutMs = ctx.settings.answerTimeoutMs;
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    let res: Response;
    try {
      res = await fetch(input, { ...init, headers, signal: ctx.signal ? AbortSignal.any([ctx.signal, timeout.signal]) : timeout.signal });
    } catch (err) {
      if (timeout.signal.aborted && !ctx.signal?.aborted) {
        throw new HubError(
          `The Hugging Face Hub at ${ctx.settings.endpoint} did not answer within ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`}. Check the network connection. Models already downloaded still open from the Hugging Face cache (on the command line, HF_HUB_OFFLINE=1 skips the network and HF_ENDPOINT names another hub).`,
          'HUB_UNREACHABLE',
        );
      }
      throw describeFetchThrow(err, ctx.settings.endpoint, ctx.what);
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok && !passStatuses.includes(res.status)) {
      await res.body?.cancel().catch(() => undefined);
      throw describeHubFailure(res.status, res.headers.get('X-Error-Code'), {
        endpoint: ctx.settings.endpoint,
        repoId: ctx.repoId,
        revision: ctx.revision,
        file: ctx.file,
        hadToken: !!ctx.settings.token,
      });
    }
    return res;
  };
}

/** Errors the library throws itself (bad JSON, missing fields) become a HubError naming the hub. */
function wrapLibraryError(err: unknown, endpoint: string, what: string): Error {
  if (err instanceof HubError) return err;
  const name = (err as { name?: string })?.name;
  if (name === 'AbortError') return describeFetchThrow(err, endpoint, what);
  return new HubError(`The hub at ${endpoint} sent an answer this app cannot read (${(err as Error)?.message ?? String(err)}). Check HF_ENDPOINT.`, 'HUB_BAD_RESPONSE');
}

/**
 * Searches model names on the hub: text-generation models, by default only those with safetensors
 * weights (the only format this app loads), most downloaded first.
 */
export async function searchModels(opts: { query: string; limit?: number; safetensorsOnly?: boolean } & HubRequestOptions): Promise<HubModel[]> {
  const settings = resolveHubSettings(opts);
  const what = 'Searching the hub';
  if (settings.offline) throw new HubError('HF_HUB_OFFLINE is set, so the hub cannot be searched. Unset it to search, or open a model from the cache or a folder.', 'HUB_UNREACHABLE');
  const limit = Math.max(1, Math.min(opts.limit ?? 20, 500));
  const out: HubModel[] = [];
  try {
    for await (const m of listModels({
      search: { query: opts.query.trim() || undefined, task: 'text-generation', tags: opts.safetensorsOnly === false ? undefined : ['safetensors'] },
      limit,
      sort: 'downloads',
      additionalFields: ['library_name', 'tags'],
      hubUrl: settings.endpoint,
      fetch: hubFetch({ settings, signal: opts.signal, what }),
    })) {
      out.push({
        id: m.name,
        downloads: m.downloads ?? 0,
        likes: m.likes ?? 0,
        lastModified: Number.isNaN(m.updatedAt.getTime()) ? '' : m.updatedAt.toISOString(),
        pipelineTag: m.task ?? null,
        libraryName: m.library_name ?? null,
        tags: Array.isArray(m.tags) ? m.tags : [],
        gated: m.gated === 'auto' || m.gated === 'manual' ? m.gated : false,
        private: !!m.private,
      });
    }
  } catch (err) {
    throw wrapLibraryError(err, settings.endpoint, what);
  }
  return out;
}

/**
 * Resolves a revision to its commit and lists every file there with size and hash (model info for
 * the commit, then the recursive tree at that commit, so both describe the same state).
 */
export async function getRepoListing(repoId: string, opts: { revision?: string } & HubRequestOptions = {}): Promise<RepoListing> {
  const settings = resolveHubSettings(opts);
  const revision = opts.revision ?? 'main';
  const what = `Looking up ${repoId}`;
  if (!looksLikeRepoId(repoId)) throw new HubError(`"${repoId}" is not a hub model id: the form is organisation/name, e.g. HuggingFaceTB/SmolLM2-135M.`, 'BAD_MODEL_ID');
  const ctx: HubFetchContext = { settings, signal: opts.signal, repoId, revision, what };
  try {
    const info = await modelInfo({ name: repoId, revision, additionalFields: ['sha'], hubUrl: settings.endpoint, fetch: hubFetch(ctx) });
    const commit = info.sha;
    if (typeof commit !== 'string' || !isCommitHash(commit)) {
      throw new HubError(`The hub at ${settings.endpoint} did not say which commit ${repoId}@${revision} is. Check HF_ENDPOINT.`, 'HUB_BAD_RESPONSE');
    }
    const files: RepoFile[] = [];
    for await (const e of listFiles({ repo: { type: 'model', name: repoId }, revision: commit, recursive: true, hubUrl: settings.endpoint, fetch: hubFetch(ctx) })) {
      if (e.type !== 'file') continue;
      const sha256 = e.lfs?.oid ?? null;
      const gitSha1 = sha256 ? null : (e.oid ?? null);
      const blob = sha256 ?? gitSha1;
      if (!blob) throw new HubError(`The hub at ${settings.endpoint} listed ${repoId}/${e.path} without a hash. Check HF_ENDPOINT.`, 'HUB_BAD_RESPONSE');
      files.push({ path: e.path, size: e.lfs?.size ?? e.size, blob, sha256, gitSha1 });
    }
    return { repoId, revision, commit, files, gated: info.gated === 'auto' || info.gated === 'manual' ? info.gated : false, private: !!info.private };
  } catch (err) {
    throw wrapLibraryError(err, settings.endpoint, what);
  }
}
