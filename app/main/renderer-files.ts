// Which file of dist/renderer a studio:// request names (no Electron import, so tests can run it):
// the host must be "app", the path must decode and stay inside the renderer folder. Anything else is
// an answer (400 for a URL that does not parse or decode, 404 outside the folder), never a throw.
import path from 'node:path';

/** file: what to read; pathname: the URL's path, for a not-found message. */
export type RendererTarget = { file: string; pathname: string } | { status: 400 | 404; message: string };

export function rendererTarget(root: string, requestUrl: string): RendererTarget {
  let url: URL;
  let rel: string;
  try {
    url = new URL(requestUrl);
    rel = decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname);
  } catch {
    return { status: 400, message: 'Bad request URL.' };
  }
  const base = path.resolve(root);
  const file = path.resolve(base, '.' + rel);
  if (url.host !== 'app' || !file.startsWith(base + path.sep)) return { status: 404, message: 'Not found' };
  return { file, pathname: url.pathname };
}
