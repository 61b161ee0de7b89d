// Hugging Face Hub access: search, listing, resumable downloads into the standard HF cache.
export { resolveHubSettings, hubCacheDir, DEFAULT_ENDPOINT, type HubSettings, type ResolvedHubSettings } from './config';
export { HubError, type HubErrorCode } from './errors';
export { searchModels, getRepoListing, looksLikeRepoId, type HubModel, type RepoFile, type RepoListing, type HubRequestOptions } from './client';
export { repoFolderName, repoCacheDir, cachedSnapshot } from './cache';
export {
  downloadModel,
  selectModelFiles,
  openFileWriter,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadResult,
  type DownloadState,
  type BlobWriter,
  type OpenBlobWriter,
} from './download';
export { resolveModelDir, type ModelDirSource, type ResolveModelDirOptions } from './resolve';
