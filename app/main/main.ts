// Electron entry (dist/main/main.cjs). The main process only wires things: each concern is one
// setupX() below, called in order. It never loads the native addon; heavy work runs in job processes.
import path from 'node:path';
import { app } from 'electron';

import { studioHome } from '../util/paths.js';
import type { MainContext } from './context.js';
import { setupRendererProtocol, setupRendererScheme } from './protocol.js';
import { setupSecurity } from './security.js';
import { setupQuit, setupServices } from './services.js';
import { setupWindows } from './window.js';

const ctx: MainContext = { distDir: path.resolve(__dirname, '..') };

/** One home for every face: Electron's userData is the studio home the CLI and server use. */
function setupStudioHome(): void {
  app.setPath('userData', studioHome());
}

function setupSingleInstance(): void {
  // A second launch hands over to the first (which focuses its window) and leaves at once.
  if (!app.requestSingleInstanceLock()) app.exit(0);
}

const beforeReady: Array<(ctx: MainContext) => void> = [setupStudioHome, setupSingleInstance, setupSecurity, setupRendererScheme];
const onReady: Array<(ctx: MainContext) => void> = [setupRendererProtocol, setupServices, setupQuit, setupWindows];

for (const setup of beforeReady) setup(ctx);
void app.whenReady().then(() => {
  for (const setup of onReady) setup(ctx);
});
