// Where the studio keeps its data. One home shared by every face (desktop, browser, CLI): the same
// folder Electron uses as userData, overridable with QUIP_STUDIO_HOME.
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { nameProblem } from '../contract/limits.js';
import { UserError } from './errors.js';

export const APP_NAME = 'QuIP# Studio';

export function studioHome(): string {
  const override = process.env.QUIP_STUDIO_HOME;
  if (override) return path.resolve(override);
  const home = os.homedir();
  switch (process.platform) {
    case 'darwin':
      return path.join(home, 'Library', 'Application Support', APP_NAME);
    case 'win32':
      return path.join(process.env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), APP_NAME);
    default:
      return path.join(process.env.XDG_CONFIG_HOME ?? path.join(home, '.config'), APP_NAME);
  }
}

/** The repository (or packaged app) root: the folder holding package.json, found from this module. */
export function projectRoot(): string {
  // Bundles live in dist/, sources in app/util/; both are below the root.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (path.basename(dir) === 'dist' || path.basename(dir) === 'app') return path.dirname(dir);
    dir = path.dirname(dir);
  }
  return process.cwd();
}

/** The studio's built-in sample model (stories260k, shipped in assets/). */
export function sampleModelDir(): string {
  return path.join(projectRoot(), 'assets', 'models', 'stories260k');
}

/**
 * The texts the studio ships (assets/wikitext-2-raw, CC BY-SA 3.0, NOTICE beside them), so every
 * install calibrates and scores on the same words: WikiText-2 validation is the default calibration
 * text, WikiText-2 test the default evaluation text.
 */
export function shippedText(use: 'calibration' | 'evaluation'): string {
  return path.join(projectRoot(), 'assets', 'wikitext-2-raw', use === 'calibration' ? 'wiki.valid.raw' : 'wiki.test.raw');
}

/**
 * parent/segment, for a name or id that came from outside (a run, a chat, an imported model). The
 * contract checks such names already; this is the check where the path is made, so no caller can
 * build a path outside `parent` from one: `segment` must be one safe name (limits.ts nameProblem,
 * e.g. not "..", no "/"), and the result must lie directly inside `parent`. `what` names it in the
 * error, e.g. "run id". Throws a UserError (code BAD_NAME) otherwise.
 */
export function childPath(parent: string, segment: string, what = 'name'): string {
  const problem = nameProblem(segment, what);
  if (problem) throw new UserError(problem, 'BAD_NAME');
  const base = path.resolve(parent);
  const child = path.resolve(base, segment);
  if (path.dirname(child) !== base || path.basename(child) !== segment) {
    throw new UserError(`"${segment}" is not a ${what} inside ${base}.`, 'BAD_NAME');
  }
  return child;
}
