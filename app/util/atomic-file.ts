// Atomic writes: write a temporary sibling, fsync, then rename over the target, so a reader sees the
// old file or the new one and never a torn one. A full disk fails the write, not the old file.
import { promises as fs } from 'node:fs';
import path from 'node:path';

function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Date.now()}.tmp`);
}

/** `.<name>.<pid>[.<ms>].tmp`: the temporary sibling of an atomic write (here, or the safetensors
 * writer's), which a kill in the middle of the write leaves behind. */
const TEMP_NAME = /^\..+?\.(\d+)(\.\d+)?\.tmp$/;

export function isAtomicTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/** True when no process has this id (its temporary files are stale). */
export function processIsGone(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid > 0x7fffffff) return true; // no process has such an id
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Removes the temporary files of atomic writes in `dir` (not below it). `onlyStale`: only those whose
 * writing process is gone, so a write in flight in another process is left alone. Returns the names
 * removed.
 */
export async function removeTempFiles(dir: string, opts: { onlyStale: boolean }): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const m = TEMP_NAME.exec(entry.name);
    if (!m || entry.isDirectory()) continue;
    if (opts.onlyStale && !processIsGone(Number(m[1]))) continue;
    await fs.rm(path.join(dir, entry.name), { force: true });
    removed.push(entry.name);
  }
  return removed;
}

export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  try {
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw describeWriteError(err, target);
  }
}

export async function writeJsonAtomic(target: string, value: unknown): Promise<void> {
  await writeFileAtomic(target, JSON.stringify(value, null, 2) + '\n');
}

/** Turns ENOSPC and friends into messages a person can act on. */
export function describeWriteError(err: unknown, target: string): Error {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC') return new Error(`The disk is full: could not write ${target}. Free some space and try again.`);
  if (code === 'EACCES' || code === 'EPERM') return new Error(`No permission to write ${target}. Choose another folder.`);
  if (code === 'EROFS') return new Error(`${target} is on a read-only file system. Choose another folder.`);
  return err instanceof Error ? err : new Error(String(err));
}
