// Where the hub is and who we are to it, read from the same environment variables the Python and JS
// Hugging Face tools use, so a cache and a token set up for them work here too.
import os from 'node:os';
import path from 'node:path';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** Overrides for the environment; every hub function takes these, tests use them instead of env. */
export interface HubSettings {
  /** Base URL of the hub (HF_ENDPOINT). */
  endpoint?: string;
  /** Access token sent as `Authorization: Bearer` (HF_TOKEN). */
  token?: string;
  /** The hub cache folder holding models--org--name folders (HF_HUB_CACHE, HF_HOME/hub). */
  cacheDir?: string;
  /** Use the cache only, never the network (HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /** How long to wait for the hub to start answering a request (default 30 s). */
  answerTimeoutMs?: number;
  /** How long a download may go without receiving a byte before the connection is dropped and the
   * file resumed from where it stopped (HF_HUB_DOWNLOAD_TIMEOUT in seconds; default 30 s). */
  readTimeoutMs?: number;
}

export interface ResolvedHubSettings {
  endpoint: string;
  token: string | undefined;
  cacheDir: string;
  offline: boolean;
  answerTimeoutMs: number;
  readTimeoutMs: number;
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase());
}

/** A positive number of seconds from the environment, in milliseconds; undefined otherwise. */
function secondsEnv(v: string | undefined): number | undefined {
  const n = Number(v);
  return v !== undefined && v.trim() !== '' && Number.isFinite(n) && n > 0 ? n * 1000 : undefined;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

/** The hub cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return path.resolve(expandHome(env.HF_HUB_CACHE));
  if (env.HF_HOME) return path.resolve(expandHome(env.HF_HOME), 'hub');
  const cacheHome = env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : path.join(os.homedir(), '.cache');
  return path.resolve(cacheHome, 'huggingface', 'hub');
}

export function resolveHubSettings(s: HubSettings = {}, env: NodeJS.ProcessEnv = process.env): ResolvedHubSettings {
  const endpoint = (s.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const token = s.token ?? (env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined);
  return {
    endpoint,
    token: token?.trim() || undefined,
    cacheDir: s.cacheDir ? path.resolve(s.cacheDir) : hubCacheDir(env),
    offline: s.offline ?? truthy(env.HF_HUB_OFFLINE),
    answerTimeoutMs: s.answerTimeoutMs ?? 30_000,
    readTimeoutMs: s.readTimeoutMs ?? secondsEnv(env.HF_HUB_DOWNLOAD_TIMEOUT) ?? 30_000,
  };
}
