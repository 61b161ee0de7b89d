// Electron IPC channel names of the contract, shared by the preload and main (no Electron import here).
import type { EventName, RequestName } from './channels.js';

export const ipcRequestChannel = (name: RequestName) => `studio:${name}`;
export const ipcEventChannel = (name: EventName) => `studio-event:${name}`;
