// The preload's StudioTransport over Electron IPC. Only contract channels pass (the allow-lists are
// the contract's own tables); the renderer never sees ipcRenderer itself.
import type { Reply, StudioTransport } from '../contract/api.js';
import { eventNames, requestNames } from '../contract/channels.js';
import { ipcEventChannel, ipcRequestChannel } from '../contract/ipc.js';

export const allowedRequests: ReadonlySet<string> = new Set(requestNames);
export const allowedEvents: ReadonlySet<string> = new Set(eventNames);

/** The part of ipcRenderer the bridge uses. */
export interface IpcRendererLike {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
}

export function createIpcTransport(ipc: IpcRendererLike): StudioTransport {
  return {
    async invoke(channel, input) {
      if (!allowedRequests.has(channel)) return { ok: false, error: { message: `Unknown request "${channel}".`, code: 'UNKNOWN_CHANNEL' } };
      return (await ipc.invoke(ipcRequestChannel(channel), input)) as Reply;
    },
    subscribe(event, listener) {
      if (!allowedEvents.has(event)) throw new Error(`Unknown studio event "${event}".`);
      const channel = ipcEventChannel(event);
      const handler = (_e: unknown, payload: unknown) => listener(payload);
      ipc.on(channel, handler);
      return () => void ipc.removeListener(channel, handler);
    },
  };
}
