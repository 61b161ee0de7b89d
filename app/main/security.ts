// Security defaults for every web contents the app ever creates: no new windows, no navigation away
// from our pages, no webviews, no permissions (camera, notifications, ...) but writing the clipboard.
import { app, session } from 'electron';

import { RENDERER_ORIGIN } from './context.js';

export function setupSecurity(): void {
  app.on('web-contents-created', (_e, contents) => {
    contents.setWindowOpenHandler(() => ({ action: 'deny' }));
    contents.on('will-navigate', (e) => e.preventDefault());
    contents.on('will-redirect', (e) => e.preventDefault());
    contents.on('will-attach-webview', (e) => e.preventDefault());
  });
  void app.whenReady().then(() => {
    // The one permission granted: our own pages may write text to the clipboard (the copy buttons of
    // the chat); reading it stays refused.
    const allowed = (permission: string, url: string) => permission === 'clipboard-sanitized-write' && (url === RENDERER_ORIGIN || url.startsWith(`${RENDERER_ORIGIN}/`));
    session.defaultSession.setPermissionRequestHandler((_wc, permission, callback, details) => callback(allowed(permission, details.requestingUrl ?? '')));
    session.defaultSession.setPermissionCheckHandler((_wc, permission, requestingOrigin) => allowed(permission, requestingOrigin));
  });
}
