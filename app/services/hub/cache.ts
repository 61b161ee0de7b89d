// The standard Hugging Face cache layout, shared with huggingface_hub (Python) and huggingface.js:
//   <cache>/models--<org>--<name>/blobs/<etag>              file contents, named by git oid or LFS sha256
//   <cache>/models--<org>--<name>/snapshots/<commit>/<file>  relative symlink to ../../blobs/<etag>
//   <cache>/models--<org>--<name>/refs/<revision>            the commit hash the revision pointed to
// so a model fetched by another tool is found here and the other way round.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../util/atomic-file';

const COMMIT_RE = /^[0-9a-f]{40}$/;
const BLOB_RE = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;

export function isCommitHash(revision: string): boolean {
  return COMMIT_RE.test(revision);
}

export function repoFolderName(repoId: string): string {
  return `models--${repoId.split('/').join('--')}`;
}

export function repoCacheDir(cacheDir: string, repoId: string): string {
  return path.join(cacheDir, repoFolderName(repoId));
}

/** A repo-relative file path we are willing to place under a snapshot: no absolute paths, no "..". */
export function checkRepoPath(file: string): string {
  const parts = file.split('/');
  if (!file || file.startsWith('/') || file.includes('\\') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new Error(`The hub listed a file with an unsafe name: ${JSON.stringify(file)}`);
  }
  return file;
}

export function blobPath(repoDir: string, blob: string): string {
  if (!BLOB_RE.test(blob)) throw new Error(`The hub gave an unexpected file hash: ${JSON.stringify(blob)}`);
  return path.join(repoDir, 'blobs', blob);
}

export function snapshotDir(repoDir: string, commit: string): string {
  if (!isCommitHash(commit)) throw new Error(`Not a commit hash: ${JSON.stringify(commit)}`);
  return path.join(repoDir, 'snapshots', commit);
}

export function snapshotFile(repoDir: string, commit: string, file: string): string {
  return path.join(snapshotDir(repoDir, commit), ...checkRepoPath(file).split('/'));
}

function refPath(repoDir: string, revision: string): string {
  return path.join(repoDir, 'refs', ...checkRepoPath(revision).split('/'));
}

export async function readRef(repoDir: string, revision: string): Promise<string | null> {
  try {
    const commit = (await fs.readFile(refPath(repoDir, revision), 'utf8')).trim();
    return isCommitHash(commit) ? commit : null;
  } catch {
    return null;
  }
}

/** Records that `revision` pointed at `commit` (written without newline, as huggingface_hub does). */
export async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const target = refPath(repoDir, revision);
  if ((await readRef(repoDir, revision)) === commit) return;
  await writeFileAtomic(target, commit);
}

/** Size of a regular file (following symlinks), or -1 when there is none. */
export async function fileSize(p: string): Promise<number> {
  try {
    const st = await fs.stat(p);
    return st.isFile() ? st.size : -1;
  } catch {
    return -1;
  }
}

/**
 * Points snapshots/<commit>/<file> at blobs/<blob>: a relative symlink, or, where symlinks are not
 * allowed (Windows without developer mode), a hard link, and failing that a copy.
 */
export async function linkSnapshotFile(repoDir: string, commit: string, file: string, blob: string): Promise<string> {
  const target = snapshotFile(repoDir, commit, file);
  const source = blobPath(repoDir, blob);
  await fs.mkdir(path.dirname(target), { recursive: true });
  // Made under a temporary name and renamed over the target, so two downloads linking the same
  // file at once both succeed and a reader never sees the name missing.
  const tmp = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    try {
      await fs.symlink(path.relative(path.dirname(target), source), tmp);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'EACCES' && code !== 'ENOTSUP' && code !== 'EINVAL' && code !== 'ENOSYS') throw err;
      try {
        await fs.link(source, tmp);
      } catch {
        await fs.copyFile(source, tmp);
      }
    }
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  return target;
}

/** The snapshot a revision (branch, tag or commit) points to in the cache, if there is one. */
export async function cachedSnapshot(cacheDir: string, repoId: string, revision: string): Promise<{ commit: string; dir: string } | null> {
  const repoDir = repoCacheDir(cacheDir, repoId);
  const commit = isCommitHash(revision) ? revision : await readRef(repoDir, revision);
  if (!commit) return null;
  const dir = snapshotDir(repoDir, commit);
  try {
    return (await fs.stat(dir)).isDirectory() ? { commit, dir } : null;
  } catch {
    return null;
  }
}

/**
 * Whether a snapshot folder holds a loadable model: config.json and its safetensors weights (every
 * shard the index names, or at least one file when there is no index). Used when the hub cannot be
 * asked what the revision contains.
 */
export async function snapshotLooksComplete(dir: string): Promise<boolean> {
  if ((await fileSize(path.join(dir, 'config.json'))) < 0) return false;
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  if ((await fileSize(indexFile)) >= 0) {
    try {
      const index = JSON.parse(await fs.readFile(indexFile, 'utf8')) as { weight_map?: Record<string, string> };
      const shards = new Set(Object.values(index.weight_map ?? {}));
      if (shards.size === 0) return false;
      for (const shard of shards) if ((await fileSize(path.join(dir, ...checkRepoPath(shard).split('/')))) < 0) return false;
      return true;
    } catch {
      return false;
    }
  }
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  for (const n of names) if (n.endsWith('.safetensors') && (await fileSize(path.join(dir, n))) >= 0) return true;
  return false;
}
