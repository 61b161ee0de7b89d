// The browser face: serves the built renderer and the studio contract over a WebSocket, on 127.0.0.1
// only, behind a random per-launch token. The token arrives in the URL (?token=...); the page then
// keeps it in a same-site, HttpOnly cookie for its own files and socket. Anything without the token
// gets 401; a foreign Host or Origin (DNS rebinding, another site's page) gets 403.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';

import { SOCKET_PATH, type ClientMessage, type ServerMessage } from '../contract/browser-client.js';
import type { EventName } from '../contract/channels.js';
import { MAX_MESSAGE_BYTES } from '../contract/limits.js';
import { nodeJobProcesses } from '../services/jobs/node-process.js';
import type { JobProcessFactory } from '../services/jobs/client.js';
import type { HubSettings } from '../services/hub/index.js';
import { createStudioServices, type StudioServices } from '../services/studio/index.js';
import { projectRoot } from '../util/paths.js';

export interface ServerOptions {
  /** 0 picks a free port. */
  port?: number;
  /** Studio home (default: studioHome(), i.e. QUIP_STUDIO_HOME or the platform folder). */
  home?: string;
  /** The built renderer (default dist/renderer). */
  rendererDir?: string;
  /** Job process entry (default dist/worker.mjs). */
  workerPath?: string;
  spawnJob?: JobProcessFactory;
  hub?: HubSettings;
}

export interface StudioServer {
  /** http://127.0.0.1:PORT/?token=TOKEN — open this. */
  url: string;
  origin: string;
  port: number;
  token: string;
  services: StudioServices;
  close(): Promise<void>;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json; charset=utf-8',
};

function cookieToken(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

function sameToken(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function startServer(opts: ServerOptions = {}): Promise<StudioServer> {
  const token = randomBytes(32).toString('base64url');
  const rendererDir = path.resolve(opts.rendererDir ?? path.join(projectRoot(), 'dist', 'renderer'));
  const sockets = new Set<WebSocket>();
  let port = 0;
  const cookieName = () => `quip_studio_${port}`; // cookies ignore ports: one name per server

  const services = createStudioServices({
    face: 'browser',
    home: opts.home,
    hub: opts.hub,
    spawnJob: opts.spawnJob ?? nodeJobProcesses({ workerPath: opts.workerPath }),
    send: (event: EventName, payload: unknown) => {
      const text = JSON.stringify({ type: 'event', event, payload } satisfies ServerMessage);
      for (const s of sockets) if (s.readyState === s.OPEN) s.send(text);
    },
  });

  const allowedHosts = () => new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  const allowedOrigins = () => new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);

  /** null when the request may go on, else the status and why. */
  function refuse(req: http.IncomingMessage, url: URL): [number, string] | null {
    if (!allowedHosts().has(req.headers.host ?? '')) return [403, 'This server only answers to 127.0.0.1 and localhost.'];
    const origin = req.headers.origin;
    if (origin !== undefined && !allowedOrigins().has(origin)) return [403, `Requests from ${origin} are not allowed.`];
    const given = url.searchParams.get('token') ?? cookieToken(req.headers.cookie, cookieName());
    if (!sameToken(given ?? undefined, token)) {
      return [401, 'This QuIP# Studio server needs the token it printed when it started: open the full URL it showed (…/?token=…).'];
    }
    return null;
  }

  const csp = () =>
    [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data: blob:",
      "font-src 'self' data:",
      `connect-src 'self' ws://127.0.0.1:${port} ws://localhost:${port}`,
      "object-src 'none'",
      "base-uri 'none'",
      "frame-ancestors 'none'",
      "form-action 'none'",
    ].join('; ');

  async function serveStatic(req: http.IncomingMessage, res: http.ServerResponse, url: URL) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    let rel: string;
    try {
      rel = decodeURIComponent(url.pathname);
    } catch {
      res.writeHead(400).end('Bad path.');
      return;
    }
    const file = path.resolve(rendererDir, '.' + (rel.endsWith('/') ? rel + 'index.html' : rel));
    if (file !== rendererDir && !file.startsWith(rendererDir + path.sep)) {
      res.writeHead(403).end('Outside the renderer folder.');
      return;
    }
    const st = await fs.stat(file).catch(() => null);
    if (!st?.isFile()) {
      const missing = rel === '/' || rel === '/index.html';
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(
        missing ? `The studio UI is not built (${path.join(rendererDir, 'index.html')} is missing). Run \`npm run build\` and restart.` : 'Not found.',
      );
      return;
    }
    const headers: http.OutgoingHttpHeaders = {
      'Content-Type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Content-Length': st.size,
      'Content-Security-Policy': csp(),
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    };
    // Keep the token for the page's own requests (assets, the socket) without putting it in every URL.
    if (url.searchParams.has('token')) headers['Set-Cookie'] = `${cookieName()}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`;
    res.writeHead(200, headers);
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  }

  /** The request's URL, or null for one that does not parse (e.g. "//"). */
  const requestUrl = (req: http.IncomingMessage): URL | null => {
    try {
      return new URL(req.url ?? '/', 'http://127.0.0.1');
    } catch {
      return null;
    }
  };

  const server = http.createServer((req, res) => {
    const url = requestUrl(req);
    if (!url) {
      res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Bad request URL.');
      return;
    }
    const why = refuse(req, url);
    if (why) {
      res.writeHead(why[0], { 'Content-Type': 'text/plain; charset=utf-8' }).end(why[1]);
      return;
    }
    serveStatic(req, res, url).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
      else res.destroy();
    });
  });

  // A message over MAX_MESSAGE_BYTES (limits.ts: the largest legitimate request, a two-pane chat of
  // two full contexts) closes its socket with 1009, which the client reports as "too large".
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  let nextClient = 1;
  server.on('upgrade', (req, socket, head) => {
    // A peer that resets or sends garbage hurts its own connection only, never the server.
    socket.on('error', () => socket.destroy());
    const url = requestUrl(req);
    const why = !url ? ([400, 'Bad request URL.'] as [number, string]) : url.pathname === SOCKET_PATH ? refuse(req, url) : ([404, 'Not found.'] as [number, string]);
    if (why) {
      socket.end(`HTTP/1.1 ${why[0]} ${http.STATUS_CODES[why[0]]}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${why[1]}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      const client = `socket-${nextClient++}`;
      ws.on('close', () => {
        sockets.delete(ws);
        // A closed or reloaded page stops the replies it was streaming (nobody reads them any more).
        services.chat.stopOwnedBy(client);
      });
      // A message over the limit (1009), a malformed or unmasked frame (1002), invalid UTF-8 (1007):
      // ws has already sent this socket's close with that code (and ends it if the peer does not
      // answer). Without a listener the error would be thrown and end the whole server.
      ws.on('error', () => {});
      ws.on('message', (data) => {
        let msg: ClientMessage;
        try {
          msg = JSON.parse(String(data)) as ClientMessage;
        } catch {
          return; // not ours; nothing to answer
        }
        if (msg?.type !== 'request' || typeof msg.id !== 'number') return;
        void services
          .dispatch(String(msg.channel), msg.input, { client })
          .then((reply) => {
            if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'reply', id: msg.id, reply } satisfies ServerMessage));
          })
          .catch((err: unknown) => console.error(`studio server: a reply could not be sent: ${String(err)}`));
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;

  return {
    url: `${origin}/?token=${token}`,
    origin,
    port,
    token,
    services,
    async close() {
      await services.close();
      for (const s of sockets) s.terminate();
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
