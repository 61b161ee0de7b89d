// Which StudioApi this page talks to: the desktop preload exposes one as window.studio (over IPC);
// in the browser face we open the WebSocket to the local server with the token from the page URL.
import { connectStudio, type StudioApi } from '../../../app/contract/index';

export function connectToStudio(): StudioApi {
  const desktop = (globalThis as { studio?: StudioApi }).studio;
  return desktop ?? connectStudio();
}
