// The shared studio services, wired to Electron: utilityProcess jobs, IPC in, events out to windows,
// and the native folder dialog.
import path from 'node:path';
import { app, BrowserWindow, dialog, ipcMain, shell, webContents } from 'electron';

import { createStudioServices } from '../services/studio/index.js';
import type { MainContext } from './context.js';
import { registerStudioIpc, sendToAll } from './ipc.js';
import { electronJobProcesses } from './job-process.js';

export function setupServices(ctx: MainContext): void {
  ctx.services = createStudioServices({
    face: 'electron',
    spawnJob: electronJobProcesses(path.join(ctx.distDir, 'worker.mjs')),
    send: (event, payload) => sendToAll(BrowserWindow.getAllWindows(), event, payload),
    sampleModel: path.join(app.getAppPath(), 'assets', 'models', 'stories260k'),
    reveal: (p) => shell.showItemInFolder(p),
    pickFolder: async (caller) => {
      const id = Number(caller.client.replace('window-', ''));
      const contents = webContents.fromId(id);
      const win = contents ? BrowserWindow.fromWebContents(contents) : null;
      const options = { title: 'Open a model folder', properties: ['openDirectory' as const] };
      const result = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
      return result.canceled ? null : (result.filePaths[0] ?? null);
    },
    pickFile: async (caller, choose) => {
      const id = Number(caller.client.replace('window-', ''));
      const contents = webContents.fromId(id);
      const win = contents ? BrowserWindow.fromWebContents(contents) : null;
      const options: Electron.OpenDialogOptions =
        choose === 'model-folder'
          ? { title: 'Open a model folder', properties: ['openDirectory'] }
          : choose === 'gguf'
            ? { title: 'Import a GGUF file', properties: ['openFile'], filters: [{ name: 'GGUF models', extensions: ['gguf'] }] }
            : { title: 'Choose a text file', properties: ['openFile'], filters: [{ name: 'Text', extensions: ['txt', 'raw', 'text', 'md', 'jsonl'] }, { name: 'All files', extensions: ['*'] }] };
      const result = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
      return result.canceled ? null : (result.filePaths[0] ?? null);
    },
  });
  registerStudioIpc(ipcMain, ctx.services.dispatch);
}

/** Quitting waits for jobs to be cancelled and their processes to go. */
export function setupQuit(ctx: MainContext): void {
  let closing = false;
  app.on('before-quit', (e) => {
    if (closing || !ctx.services) return;
    closing = true;
    e.preventDefault();
    void ctx.services.close().finally(() => app.quit());
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
}
