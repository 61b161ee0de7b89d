// StudioApi: the one interface the renderer talks to, generated from the channel tables. A transport
// moves envelopes (Electron IPC in the preload, a WebSocket in the browser face); createStudioApi
// turns any transport into the typed, namespaced API, e.g. `studio.models.inspect({ source })`.
import {
  eventNames,
  requestNames,
  type EventName,
  type EventPayload,
  type RequestInput,
  type RequestName,
  type RequestOutput,
} from './channels.js';
import type { FieldProblem } from './field-errors.js';

/** How an error travels: the message is for people, the code is for the UI to branch on. */
export interface WireError {
  message: string;
  code: string;
  /** The input fields a request was refused for, each in the form's words (field-errors.ts). */
  fields?: FieldProblem[];
}

export type Reply = { ok: true; value: unknown } | { ok: false; error: WireError };

export interface StudioTransport {
  invoke(channel: RequestName, input: unknown): Promise<Reply>;
  subscribe(event: EventName, listener: (payload: unknown) => void): () => void;
  /** The browser face's socket: whether the studio server is there (absent over Electron IPC, which
   * lives as long as the window). */
  connection?: ConnectionWatch;
}

/** 'disconnected': the socket closed (the server stopped, or never answered). */
export type ConnectionState = 'connecting' | 'connected' | 'disconnected';
export interface ConnectionWatch {
  state(): ConnectionState;
  /** Called on every change; returns the function that stops it. */
  on(listener: (state: ConnectionState) => void): () => void;
}

/** What the browser face says when its server is gone (the status bar, and every request that fails for it). */
export const SERVER_STOPPED =
  'Disconnected — the studio server stopped. Start it again with `npm start` (or `node dist/server.mjs`), then open the address it prints (a new server has a new address and token, so reloading this page is not enough).';

/** A failed request. In the desktop face errors cross the context bridge, which keeps only the message. */
export class StudioError extends Error {
  constructor(
    message: string,
    readonly code: string = 'ERROR',
    /** The refused input fields (field-errors.ts fieldProblems reads them); absent when none. */
    readonly fields?: FieldProblem[],
  ) {
    super(message);
    this.name = 'StudioError';
  }
}

type Namespace<K> = K extends `${infer NS}.${string}` ? NS : never;
type Method<K, NS extends string> = K extends `${NS}.${infer M}` ? M : never;
type Call<K extends RequestName> =
  undefined extends RequestInput<K>
    ? (input?: RequestInput<K>) => Promise<RequestOutput<K>>
    : (input: RequestInput<K>) => Promise<RequestOutput<K>>;

export type StudioApi = {
  [NS in Namespace<RequestName>]: { [K in RequestName as Method<K, NS>]: Call<K> };
} & {
  /** Subscribe to an event; returns the function that unsubscribes. */
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void;
  /** The browser face's connection to its server; absent in the desktop app. */
  connection?: ConnectionWatch;
};

export function createStudioApi(transport: StudioTransport): StudioApi {
  const api: Record<string, Record<string, unknown>> = {};
  for (const channel of requestNames) {
    const [ns, method] = channel.split('.') as [string, string];
    api[ns] ??= {};
    api[ns][method] = async (input?: unknown) => {
      const reply = await transport.invoke(channel, input);
      if (reply.ok) return reply.value;
      throw new StudioError(reply.error.message, reply.error.code, reply.error.fields);
    };
  }
  const known = new Set<string>(eventNames);
  const on = (event: EventName, listener: (payload: unknown) => void) => {
    if (!known.has(event)) throw new StudioError(`Unknown studio event "${event}".`, 'UNKNOWN_EVENT');
    return transport.subscribe(event, listener);
  };
  return { ...api, on, ...(transport.connection ? { connection: transport.connection } : {}) } as unknown as StudioApi;
}
