// Sandboxed preload: exposes window.studio (the StudioApi generated from the contract) and nothing else.
import { contextBridge, ipcRenderer } from 'electron';

import { createStudioApi } from '../contract/api.js';
import { createIpcTransport } from './bridge.js';

contextBridge.exposeInMainWorld('studio', createStudioApi(createIpcTransport(ipcRenderer)));
