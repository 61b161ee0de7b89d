// The studio window: sandboxed renderer with context isolation and no Node, the preload exposing
// window.studio, our pages from studio://app/. Closing a window cancels the jobs it started and stops its chat replies.
import { app, BrowserWindow } from 'electron';

import { RENDERER_ORIGIN, studioWebPreferences, windowClient, type MainContext } from './context.js';

export function createStudioWindow(ctx: MainContext): BrowserWindow {
  const win = new BrowserWindow({
    width: 1280,
    height: 840,
    minWidth: 800,
    minHeight: 560,
    show: false,
    title: 'QuIP# Studio',
    webPreferences: studioWebPreferences(ctx.distDir),
  });
  const client = windowClient(win.webContents.id);
  win.once('ready-to-show', () => win.show());
  win.on('closed', () => {
    // Its queued runs leave the queue first, so none of them starts once its job is cancelled.
    void ctx.services?.runs.cancelOwnedBy(client);
    ctx.services?.jobs.cancelOwnedBy(client);
    // Its replies stop too; the models stay loaded for the other windows and the local server.
    ctx.services?.chat.stopOwnedBy(client);
  });
  void win.loadURL(`${RENDERER_ORIGIN}/index.html`);
  return win;
}

export function setupWindows(ctx: MainContext): void {
  createStudioWindow(ctx);
  // macOS: clicking the dock icon with no window open opens one.
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createStudioWindow(ctx);
  });
  app.on('second-instance', () => {
    const [win] = BrowserWindow.getAllWindows();
    if (win) {
      if (win.isMinimized()) win.restore();
      win.focus();
    } else createStudioWindow(ctx);
  });
}
