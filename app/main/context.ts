// What the setupX() modules of the main process share (no Electron import, so tests can read it).
import path from 'node:path';

import type { StudioServices } from '../services/studio/index.js';

export interface MainContext {
  /** Created by setupServices once Electron is ready. */
  services?: StudioServices;
  /** dist/ of this build (inside app.asar when packaged). */
  distDir: string;
}

/** The studio's own pages are served from this origin (see protocol.ts), never from file://. */
export const RENDERER_SCHEME = 'studio';
export const RENDERER_ORIGIN = `${RENDERER_SCHEME}://app`;

/** The client id a window's requests and jobs carry; closing the window cancels that client's jobs. */
export const windowClient = (webContentsId: number) => `window-${webContentsId}`;

/** The renderer's web preferences: isolated, sandboxed, no Node; only the preload's window.studio. */
export function studioWebPreferences(distDir: string) {
  return {
    preload: path.join(distDir, 'preload', 'preload.cjs'),
    contextIsolation: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    sandbox: true,
    webSecurity: true,
    allowRunningInsecureContent: false,
    webviewTag: false,
    spellcheck: false,
  } as const;
}
