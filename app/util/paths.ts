// Where the studio keeps its data. One home shared by every face (desktop, browser, CLI): the same
// folder Electron uses as userData, overridable with QUIP_STUDIO_HOME.
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
