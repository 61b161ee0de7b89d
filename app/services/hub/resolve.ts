// One entry point for "open this model": a local folder as it is, or a hub id downloaded (or found
// in the cache) and returned as its snapshot folder. `quip inspect` and the studio both call this.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveHubSettings, type HubSettings } from './config';
import { cachedSnapshot, snapshotLooksComplete } from './cache';
import { looksLikeRepoId } from './client';
import { downloadModel, type DownloadOptions, type DownloadProgress } from './download';
import { HubError } from './errors';

export interface ModelDirSource {
  kind: 'local' | 'hub';
  /** The folder holding config.json and the weights. */
  path: string;
  repoId: string | null;
  /** For hub models, the commit hash the revision resolved to. */
  revision: string | null;
}

export interface ResolveModelDirOptions extends HubSettings, Pick<DownloadOptions, 'openWriter' | 'retries' | 'retryDelayMs' | 'progressIntervalMs'> {
  revision?: string;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.stat(p);
    return true;
  } catch {
    return false;
  }
}

export async function resolveModelDir(idOrPath: string, opts: ResolveModelDirOptions = {}): Promise<{ dir: string; source: ModelDirSource }> {
  const input = idOrPath.trim();
  if (!input) throw new HubError('No model given: name a local model folder or a hub id such as HuggingFaceTB/SmolLM2-135M.', 'BAD_MODEL_ID');
  const local = path.resolve(expandHome(input));
  // Anything on disk is the caller's to load (a folder, or a file the model loader will name).
  if (await exists(local)) return { dir: local, source: { kind: 'local', path: local, repoId: null, revision: null } };
  if (!looksLikeRepoId(input)) {
    throw new HubError(`There is no folder at ${local}, and "${input}" is not a hub id either (the form is organisation/name). Check the path.`, 'BAD_MODEL_ID');
  }

  const settings = resolveHubSettings(opts);
  const revision = opts.revision ?? 'main';
  const fromCache = async () => {
    const snap = await cachedSnapshot(settings.cacheDir, input, revision);
    return snap && (await snapshotLooksComplete(snap.dir)) ? snap : null;
  };
  const hubResult = (dir: string, commit: string) => ({ dir, source: { kind: 'hub' as const, path: dir, repoId: input, revision: commit } });

  if (settings.offline) {
    const snap = await fromCache();
    if (snap) return hubResult(snap.dir, snap.commit);
    throw new HubError(
      `HF_HUB_OFFLINE is set and the Hugging Face cache at ${settings.cacheDir} holds no complete copy of ${input} (${revision}). Unset HF_HUB_OFFLINE to download it.`,
      'HUB_NOT_IN_CACHE',
    );
  }
  try {
    const r = await downloadModel(input, { ...opts, revision });
    return hubResult(r.dir, r.commit);
  } catch (err) {
    if (err instanceof HubError && err.code === 'HUB_REPO_NOT_FOUND') {
      // "org/name" may also have been meant as a relative folder.
      throw new HubError(`${err.message} (There is no folder ${local} either.)`, err.code, err.status);
    }
    const hubDown = err instanceof HubError && (err.code === 'HUB_UNREACHABLE' || (err.status ?? 0) >= 500);
    if (!hubDown) throw err;
    // The hub is out of reach or failing: a copy already in the cache is as good as a fresh one.
    const snap = await fromCache();
    if (snap) return hubResult(snap.dir, snap.commit);
    const partial = await cachedSnapshot(settings.cacheDir, input, revision);
    throw new HubError(
      `${err.message.replace(/ (Check the network|Try again later).*$/, '')} The Hugging Face cache at ${settings.cacheDir} holds ${partial ? 'only part of' : 'nothing for'} ${input} (${revision}), so it cannot be opened. Check the network connection or HF_ENDPOINT.`,
      err.code,
      err.status,
    );
  }
}
