// The browser face's file browser (files.list): what is in one folder, limited to the places a person
// keeps models and texts: the home folder, the studio home (imports and runs), the Hugging Face cache
// and mounted volumes (/media, /mnt, /run/media; /Volumes on macOS). Every path is resolved through
// its symlinks first and refused when it lands outside those roots, so a link cannot lead out of
// them; hidden entries (".name") are never listed. Folders that hold a model (config.json and
// safetensors weights) are marked; files are shown only when they are what is being chosen (.gguf,
// or text for calibration and evaluation).
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { FileChoice, FileEntry, FileRoot, FilesListResult } from '../../contract/channels.js';
import { UserError } from '../../util/errors.js';

/** At most this many entries in one listing (a folder of 100k files would flood the page). */
export const MAX_ENTRIES = 5000;
/** The text files a calibration or evaluation text can be. */
const TEXT_EXTENSIONS = new Set(['.txt', '.raw', '.text', '.md', '.jsonl']);

export interface BrowseOptions {
  /** Candidate roots; those that do not exist are left out. */
  roots: FileRoot[];
}

/** The default roots: home, studio home, the Hugging Face cache, and the platform's mount points. */
export function defaultRoots(o: { studioHome: string; hubCache: string; platform?: NodeJS.Platform; home?: string; user?: string }): FileRoot[] {
  const home = o.home ?? os.homedir();
  const platform = o.platform ?? process.platform;
  const user = o.user ?? os.userInfo().username;
  const mounts: FileRoot[] =
    platform === 'darwin'
      ? [{ path: '/Volumes', label: 'Volumes' }]
      : platform === 'win32'
        ? []
        : [
            { path: '/media', label: 'Mounted volumes (/media)' },
            { path: '/mnt', label: 'Mounted volumes (/mnt)' },
            { path: path.join('/run/media', user), label: 'Mounted volumes (/run/media)' },
          ];
  return [{ path: home, label: 'Home' }, { path: o.studioHome, label: 'Studio home (imports and runs)' }, { path: o.hubCache, label: 'Hugging Face cache' }, ...mounts];
}

async function realRoots(candidates: FileRoot[]): Promise<FileRoot[]> {
  const out: FileRoot[] = [];
  for (const r of candidates) {
    const real = await fs.realpath(r.path).catch(() => null);
    if (real && !out.some((o) => o.path === real)) out.push({ path: real, label: r.label });
  }
  return out;
}

/** The root a real path lies in (the deepest one), or null. */
function rootOf(real: string, roots: FileRoot[]): FileRoot | null {
  let best: FileRoot | null = null;
  for (const r of roots) {
    const rel = path.relative(r.path, real);
    const inside = rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
    if (inside && (!best || r.path.length > best.path.length)) best = r;
  }
  return best;
}

function outside(dir: string, roots: FileRoot[]): UserError {
  return new UserError(
    `${dir} is outside the folders the studio shows: ${roots.map((r) => r.path).join(', ')}. Move the model or text into one of them, or type its path in the field.`,
    'OUTSIDE_ROOTS',
  );
}

async function isModelFolder(dir: string): Promise<boolean> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  return names.includes('config.json') && names.some((n) => n.endsWith('.safetensors') || n === 'model.safetensors.index.json');
}

/** One folder's listing for the file browser. */
export async function listFolder(input: { dir?: string; choose: FileChoice }, o: BrowseOptions): Promise<FilesListResult> {
  const roots = await realRoots(o.roots);
  if (!roots.length) throw new UserError('There is no folder the studio may show on this machine (not even the home folder).', 'NO_ROOTS');
  const asked = input.dir ? path.resolve(input.dir.replace(/^~(?=$|[\\/])/, os.homedir())) : roots[0]!.path;
  const real = await fs.realpath(asked).catch((err: NodeJS.ErrnoException) => {
    throw new UserError(err.code === 'ENOENT' ? `There is no folder ${asked}.` : `${asked} cannot be opened (${err.code ?? err.message}).`, 'NOT_FOUND');
  });
  const root = rootOf(real, roots);
  if (!root) throw outside(asked === real ? asked : `${asked} (${real})`, roots);
  const st = await fs.stat(real);
  if (!st.isDirectory()) throw new UserError(`${asked} is a file, not a folder.`, 'NOT_A_FOLDER');

  const dirents = await fs.readdir(real, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    throw new UserError(`${real} cannot be read (${err.code === 'EACCES' || err.code === 'EPERM' ? 'no permission' : (err.code ?? err.message)}).`, 'UNREADABLE');
  });
  const entries: FileEntry[] = [];
  let truncated = false;
  for (const d of dirents) {
    if (d.name.startsWith('.')) continue;
    if (entries.length >= MAX_ENTRIES) {
      truncated = true;
      break;
    }
    const full = path.join(real, d.name);
    let target = full;
    let stat: import('node:fs').Stats;
    try {
      if (d.isSymbolicLink()) {
        target = await fs.realpath(full);
        if (!rootOf(target, roots)) continue; // a link out of the roots is not shown
      }
      stat = await fs.stat(target);
    } catch {
      continue; // a dangling link or an entry that vanished
    }
    if (stat.isDirectory()) {
      entries.push({ name: d.name, path: full, kind: (await isModelFolder(target)) ? 'model-folder' : 'folder', size: null });
    } else if (stat.isFile()) {
      const ext = path.extname(d.name).toLowerCase();
      if (input.choose === 'text' ? TEXT_EXTENSIONS.has(ext) : ext === '.gguf') {
        entries.push({ name: d.name, path: full, kind: ext === '.gguf' ? 'gguf' : 'text', size: stat.size });
      }
    }
  }
  const folderFirst = (e: FileEntry) => (e.size === null ? 0 : 1);
  entries.sort((a, b) => folderFirst(a) - folderFirst(b) || a.name.localeCompare(b.name, undefined, { sensitivity: 'base', numeric: true }));
  const parent = real === root.path ? null : path.dirname(real);
  return { dir: real, parent, roots, entries, truncated };
}
