// Sandboxed preload: exposes window.studio (the StudioApi generated from the contract) and
// window.studioFiles, which turns a File dropped on the page into its path on disk (drag and drop of
// model folders and GGUF files onto the Models page; a browser never gives a page that path).
import { contextBridge, ipcRenderer, webUtils } from 'electron';

import { createStudioApi } from '../contract/api.js';
import { createIpcTransport } from './bridge.js';

contextBridge.exposeInMainWorld('studio', createStudioApi(createIpcTransport(ipcRenderer)));
contextBridge.exposeInMainWorld('studioFiles', { pathForFile: (file: File): string => webUtils.getPathForFile(file) });
