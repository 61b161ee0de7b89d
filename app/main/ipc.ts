// Every contract request arrives through one wrapper: it checks that the sender is the main frame of
// one of our windows showing our own pages (VS Code validatedIpcMain, dyad trusted_handle), then hands
// the input to the shared dispatcher, which validates it with zod. Events go to every window.
import type { IpcMainInvokeEvent } from 'electron';

import type { Reply } from '../contract/api.js';
import { requestNames, type EventName } from '../contract/channels.js';
import { ipcEventChannel, ipcRequestChannel } from '../contract/ipc.js';
import type { Dispatch } from '../services/dispatch.js';
import { RENDERER_ORIGIN, windowClient } from './context.js';

export interface IpcMainLike {
  handle(channel: string, listener: (event: IpcMainInvokeEvent, ...args: unknown[]) => Promise<unknown>): void;
}

/** Our main frame, on our origin; never a subframe, a navigated-away page or another site. */
export function isTrustedSender(event: Pick<IpcMainInvokeEvent, 'sender' | 'senderFrame'>): boolean {
  const frame = event.senderFrame;
  if (!frame || frame !== event.sender.mainFrame) return false;
  return frame.url.startsWith(`${RENDERER_ORIGIN}/`);
}

export function registerStudioIpc(ipcMain: IpcMainLike, dispatch: Dispatch, trusted: typeof isTrustedSender = isTrustedSender): void {
  for (const name of requestNames) {
    ipcMain.handle(ipcRequestChannel(name), async (event, input): Promise<Reply> => {
      if (!trusted(event)) {
        return { ok: false, error: { message: `Refused ${name}: the request did not come from the studio's own window.`, code: 'FORBIDDEN' } };
      }
      return dispatch(name, input, { client: windowClient(event.sender.id) });
    });
  }
}

export interface WebContentsLike {
  isDestroyed(): boolean;
  send(channel: string, ...args: unknown[]): void;
}

export function sendToAll(windows: ReadonlyArray<{ webContents: WebContentsLike }>, event: EventName, payload: unknown): void {
  for (const w of windows) if (!w.webContents.isDestroyed()) w.webContents.send(ipcEventChannel(event), payload);
}
