// Hub failures as messages a person can act on. HTTP statuses and the hub's X-Error-Code header are
// turned into UserErrors here, in one place, so every face (CLI, studio) says the same thing.
import { UserError } from '../../util/errors';

export type HubErrorCode =
  | 'HUB_REPO_NOT_FOUND'
  | 'HUB_REVISION_NOT_FOUND'
  | 'HUB_FILE_NOT_FOUND'
  | 'HUB_AUTH_REQUIRED'
  | 'HUB_GATED'
  | 'HUB_UNREACHABLE'
  | 'HUB_HTTP_ERROR'
  | 'HUB_BAD_RESPONSE'
  | 'HUB_NO_SAFETENSORS'
  | 'HUB_NOT_A_MODEL'
  | 'HUB_NOT_IN_CACHE'
  | 'BAD_MODEL_ID'
  | 'DISK_FULL'
  | 'DOWNLOAD_INTERRUPTED'
  | 'DOWNLOAD_CORRUPT'
  | 'CANCELLED';

export class HubError extends UserError {
  constructor(
    message: string,
    readonly code: HubErrorCode,
    /** HTTP status when the hub answered, else undefined. */
    readonly status?: number,
  ) {
    super(message, code);
    this.name = 'HubError';
  }
}

export interface FailureContext {
  endpoint: string;
  repoId?: string;
  file?: string;
  revision?: string;
  /** Whether a token was sent; decides between "set HF_TOKEN" and "your token has no access". */
  hadToken: boolean;
}

/** Turns a non-OK hub answer into a HubError. `errorCode` is the X-Error-Code header. */
export function describeHubFailure(status: number, errorCode: string | null, ctx: FailureContext): HubError {
  const repo = ctx.repoId ?? 'this repository';
  const tokenHint = ctx.hadToken
    ? 'The token in HF_TOKEN has no access to it: accept its conditions on its page on the hub, or use a token of an account that has access.'
    : 'Set HF_TOKEN to an access token of an account that has access (create one at <endpoint>/settings/tokens), then try again.'.replace(
        '<endpoint>',
        ctx.endpoint,
      );

  if (errorCode === 'GatedRepo') {
    return new HubError(`The model ${repo} on ${ctx.endpoint} is gated: its owners grant access per account. ${tokenHint}`, 'HUB_GATED', status);
  }
  if (errorCode === 'RevisionNotFound') {
    return new HubError(
      `The model ${repo} on ${ctx.endpoint} has no revision "${ctx.revision ?? '?'}". Use a branch name, tag or commit hash that exists (the default is main).`,
      'HUB_REVISION_NOT_FOUND',
      status,
    );
  }
  if (errorCode === 'EntryNotFound') {
    return new HubError(`The model ${repo} on ${ctx.endpoint} has no file ${ctx.file ?? '?'} at revision ${ctx.revision ?? 'main'}.`, 'HUB_FILE_NOT_FOUND', status);
  }
  if (status === 404 || errorCode === 'RepoNotFound' || errorCode === 'RepositoryNotFound') {
    // The hub answers 401 for a repository it will not admit exists to an anonymous caller, so a
    // missing repo and a private one look alike without a token.
    const privateHint = ctx.hadToken ? '' : ' If it is private, set HF_TOKEN to an access token that can read it.';
    return new HubError(
      `No model named ${repo} on ${ctx.endpoint}. Check the spelling (the form is organisation/name, as in the address of its page).${privateHint}`,
      'HUB_REPO_NOT_FOUND',
      status,
    );
  }
  if (status === 401 || status === 403) {
    return new HubError(`The hub at ${ctx.endpoint} refused access to ${repo} (HTTP ${status}): it is private or gated. ${tokenHint}`, 'HUB_AUTH_REQUIRED', status);
  }
  if (status === 429) {
    return new HubError(`The hub at ${ctx.endpoint} is limiting requests (HTTP 429). Wait a minute and try again; setting HF_TOKEN raises the limit.`, 'HUB_HTTP_ERROR', status);
  }
  return new HubError(
    `The hub at ${ctx.endpoint} answered HTTP ${status} for ${ctx.file ? `${repo}/${ctx.file}` : repo}. Try again later.`,
    'HUB_HTTP_ERROR',
    status,
  );
}

function isAbort(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  return name === 'AbortError' || name === 'TimeoutError';
}

export function cancelledError(what: string): HubError {
  return new HubError(`${what} was cancelled.`, 'CANCELLED');
}

/** Network-level failure codes from undici/libuv (ECONNREFUSED, ENOTFOUND, ...), if any. */
function networkErrorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A fetch that threw (no answer at all): cancelled, or the hub cannot be reached. */
export function describeFetchThrow(err: unknown, endpoint: string, what: string): Error {
  if (err instanceof HubError) return err;
  if (isAbort(err)) return cancelledError(what);
  const code = networkErrorCode(err);
  return new HubError(
    `Cannot reach the Hugging Face Hub at ${endpoint}${code ? ` (${code})` : ''}. Check the network connection. Models already downloaded still open from the Hugging Face cache (on the command line, HF_HUB_OFFLINE=1 skips the network and HF_ENDPOINT names another hub).`,
    'HUB_UNREACHABLE',
  );
}
