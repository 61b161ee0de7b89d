// Model files must be regular files: a FIFO, socket or device named model.safetensors (or config.json)
// would block a read forever or stream endless bytes, so it is refused before anything opens it.
import { statSync } from 'node:fs';

import { UserError } from '../util/errors.js';

function kindOf(s: import('node:fs').Stats): string {
  if (s.isDirectory()) return 'a folder';
  if (s.isFIFO()) return 'a named pipe (FIFO)';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Throws a UserError (code `code`) unless `filePath` is a regular file (symbolic links are followed).
 * A missing file is left to the caller's own open, which names it better.
 */
export function assertRegularFile(filePath: string, label: string, code: string): void {
  let s: import('node:fs').Stats;
  try {
    s = statSync(filePath);
  } catch {
    return;
  }
  if (!s.isFile()) throw new UserError(`${label}: ${filePath} is ${kindOf(s)}, not a regular file; the studio reads model files only from regular files. Replace it with the real file.`, code);
}
