// The renderer is served from studio://app/ (dist/renderer), not file://: a standard, secure origin
// that the IPC sender check can recognise, with a strict Content-Security-Policy on every response.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { protocol } from 'electron';

import { RENDERER_SCHEME, type MainContext } from './context.js';
import { rendererTarget } from './renderer-files.js';

export const RENDERER_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'none'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'none'",
].join('; ');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

/** Before ready: the scheme must be registered as privileged before the app starts. */
export function setupRendererScheme(): void {
  protocol.registerSchemesAsPrivileged([{ scheme: RENDERER_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } }]);
}

/** After ready: serve dist/renderer. */
export function setupRendererProtocol(ctx: MainContext): void {
  const root = path.join(ctx.distDir, 'renderer');
  protocol.handle(RENDERER_SCHEME, async (request) => {
    // Everything that can throw (URL parsing, percent-decoding, the read) is inside: a bad request
    // gets an answer, never an exception out of the handler.
    try {
      const target = rendererTarget(root, request.url);
      if (!('file' in target)) return new Response(target.message, { status: target.status });
      const { file, pathname } = target;
      try {
        const body = await fs.readFile(file);
        return new Response(body, {
          headers: { 'Content-Type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream', 'Content-Security-Policy': RENDERER_CSP, 'X-Content-Type-Options': 'nosniff' },
        });
      } catch {
        const hint = file.endsWith('index.html') ? ` The studio UI is not built: run \`npm run build\`.` : '';
        return new Response(`Not found: ${pathname}.${hint}`, { status: 404 });
      }
    } catch (err) {
      return new Response(`The studio could not serve this file: ${err instanceof Error ? err.message : String(err)}`, { status: 500 });
    }
  });
}
