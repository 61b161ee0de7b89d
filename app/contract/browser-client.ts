// The browser face's StudioApi: the same generated API as the desktop preload, carried over a
// WebSocket to app/server. The server requires the per-launch token; the page got it in its URL
// (?token=...) and as a same-site cookie, and we pass it on in the socket URL.
import { createStudioApi, SERVER_STOPPED, StudioError, type ConnectionState, type Reply, type StudioApi, type StudioTransport } from './api.js';
import type { EventName, RequestName } from './channels.js';
import { MAX_MESSAGE_BYTES } from './limits.js';

/** Messages on the socket. */
export type ClientMessage = { type: 'request'; id: number; channel: RequestName; input: unknown };
export type ServerMessage = { type: 'reply'; id: number; reply: Reply } | { type: 'event'; event: EventName; payload: unknown };

/** The WebSocket path the server answers on. */
export const SOCKET_PATH = '/api';

interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}
type SocketConstructor = new (url: string) => SocketLike;

export interface ConnectOptions {
  /** ws://127.0.0.1:PORT — defaults to the page's own host. */
  url?: string;
  /** Defaults to ?token= of the page's URL. */
  token?: string;
  /** A WebSocket implementation where there is no global one (Node 20 tests pass `ws`). */
  WebSocket?: SocketConstructor;
}

const OPEN = 1;
/** The close code a WebSocket peer sends for a message over its limit ("Message Too Big"). */
const MESSAGE_TOO_BIG = 1009;
const MiB = 1024 * 1024;

function tooLarge(bytes: number | null): string {
  return (
    `This request is too large to send to the studio server${bytes === null ? '' : ` (${(bytes / MiB).toFixed(1)} MiB)`}: ` +
    `the limit is ${MAX_MESSAGE_BYTES / MiB} MiB. Shorten the text and try again.`
  );
}

/** UTF-8 bytes of a text, counted only when it could be over the limit (a UTF-16 unit is at most 3 bytes). */
function overLimit(text: string): number | null {
  if (text.length * 3 <= MAX_MESSAGE_BYTES) return null;
  const bytes = new TextEncoder().encode(text).length;
  return bytes > MAX_MESSAGE_BYTES ? bytes : null;
}

function defaultUrl(): string {
  const loc = (globalThis as { location?: Location }).location;
  if (!loc) throw new StudioError('connectStudio needs a url outside a browser page.', 'NO_URL');
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}`;
}

function defaultToken(): string | undefined {
  const loc = (globalThis as { location?: Location }).location;
  return loc ? (new URLSearchParams(loc.search).get('token') ?? undefined) : undefined;
}

export function createWebSocketTransport(opts: ConnectOptions = {}): StudioTransport & { close(): void } {
  const Socket = opts.WebSocket ?? ((globalThis as { WebSocket?: SocketConstructor }).WebSocket as SocketConstructor);
  const base = (opts.url ?? defaultUrl()).replace(/^http/, 'ws').replace(/\/+$/, '');
  const token = opts.token ?? defaultToken();
  const url = `${base}${SOCKET_PATH}${token ? `?token=${encodeURIComponent(token)}` : ''}`;

  const pending = new Map<number, (reply: Reply) => void>();
  const listeners = new Map<string, Set<(payload: unknown) => void>>();
  let socket: SocketLike | null = null;
  let opened: Promise<SocketLike> | null = null;
  let nextId = 1;
  let closedByUs = false;
  let state: ConnectionState = 'connecting';
  let everConnected = false;
  const watchers = new Set<(s: ConnectionState) => void>();
  const setState = (next: ConnectionState) => {
    if (next === state) return;
    state = next;
    for (const w of [...watchers]) w(next);
  };
  let retry: ReturnType<typeof setTimeout> | null = null;
  /** After a lost connection, try again every 2 s (a hiccup heals; a stopped server stays red). */
  const retryLater = () => {
    if (retry || closedByUs) return;
    retry = setTimeout(() => {
      retry = null;
      void connect().catch(() => retryLater());
    }, 2000);
    (retry as { unref?: () => void }).unref?.();
  };

  function failAll(message: string, code = 'DISCONNECTED') {
    for (const settle of pending.values()) settle({ ok: false, error: { message, code } });
    pending.clear();
  }

  function connect(): Promise<SocketLike> {
    if (opened) return opened;
    opened = new Promise<SocketLike>((resolve, reject) => {
      const s = new Socket(url);
      socket = s;
      let isOpen = false;
      s.onopen = () => {
        isOpen = true;
        everConnected = true;
        setState('connected');
        resolve(s);
      };
      s.onmessage = (ev) => {
        const msg = JSON.parse(String(ev.data)) as ServerMessage;
        if (msg.type === 'reply') {
          const settle = pending.get(msg.id);
          pending.delete(msg.id);
          settle?.(msg.reply);
        } else if (msg.type === 'event') {
          for (const l of listeners.get(msg.event) ?? []) l(msg.payload);
        }
      };
      s.onerror = () => {}; // onclose follows with the outcome
      s.onclose = (ev) => {
        opened = null;
        socket = null;
        if (!isOpen) {
          reject(new StudioError(everConnected ? SERVER_STOPPED : 'Could not connect to the studio server (is it running, and is the token in the page URL right?).', 'DISCONNECTED'));
        }
        // The server closes a socket that sent a message over its limit with 1009: the server is fine.
        const tooBig = (ev as { code?: number } | null)?.code === MESSAGE_TOO_BIG;
        if (tooBig) failAll(tooLarge(null), 'TOO_LARGE');
        else failAll(everConnected ? SERVER_STOPPED : 'Could not connect to the studio server (is it running, and is the token in the page URL right?).');
        if (closedByUs) return;
        if (!tooBig) setState('disconnected');
        // Keep events flowing after a hiccup; a page that closed us stays closed.
        if (isOpen && tooBig) setTimeout(() => void connect().catch(() => retryLater()), 1000);
        else retryLater();
      };
    });
    return opened;
  }

  return {
    async invoke(channel, input) {
      const s = await connect();
      const id = nextId++;
      const text = JSON.stringify({ type: 'request', id, channel, input } satisfies ClientMessage);
      // Refused here rather than sent: the server would close the socket (1009), failing every
      // request in flight with it.
      const bytes = overLimit(text);
      if (bytes !== null) return { ok: false, error: { message: tooLarge(bytes), code: 'TOO_LARGE' } };
      return new Promise<Reply>((resolve) => {
        pending.set(id, resolve);
        if (s.readyState === OPEN) s.send(text);
        else {
          pending.delete(id);
          resolve({ ok: false, error: { message: 'The connection to the studio server is closed.', code: 'DISCONNECTED' } });
        }
      });
    },
    subscribe(event, listener) {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      set.add(listener);
      void connect().catch(() => {});
      return () => void set.delete(listener);
    },
    close() {
      closedByUs = true;
      if (retry) clearTimeout(retry);
      socket?.close();
    },
    connection: {
      state: () => state,
      on(listener) {
        watchers.add(listener);
        return () => void watchers.delete(listener);
      },
    },
  };
}

/** The StudioApi of the browser face. `close()` ends the connection (tests, page unload). */
export function connectStudio(opts: ConnectOptions = {}): StudioApi & { close(): void } {
  const transport = createWebSocketTransport(opts);
  return Object.assign(createStudioApi(transport), { close: () => transport.close() });
}
