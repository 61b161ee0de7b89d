// The OpenAI-compatible local API over the loaded models (node:http, no framework): GET /v1/models,
// POST /v1/chat/completions and POST /v1/completions, streamed as server-sent events or answered
// whole. Binds 127.0.0.1 unless told otherwise; every request needs `Authorization: Bearer <key>`;
// no CORS unless enabled. Requests to one model queue in the ModelManager (served one at a time); a
// client that disconnects cancels its generation.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import type { HostStats } from '../../contract/loaded-models.js';
import type { ChatMessage } from '../../contract/runs.js';
import { UserError } from '../../util/errors.js';
import type { GenerateRequest, ModelManager } from '../models/manager.js';
import { ApiError, ChatCompletionRequest, CompletionRequest, invalidField, type ApiErrorBody } from './schemas.js';

export interface ApiModel {
  /** What clients name it ("model" field): a run name or a model folder's name. */
  id: string;
  dir: string;
  /** Unix seconds. */
  created?: number;
}

export interface ApiRequestLog {
  at: string;
  method: string;
  path: string;
  status: number;
  model: string | null;
  ms: number;
  promptTokens?: number;
  completionTokens?: number;
  /** Why a request failed (its error message). */
  error?: string;
}

export interface ApiServerOptions {
  models: ModelManager;
  /** The models the API offers, asked on every request (so new runs appear without a restart). */
  listModels: () => Promise<ApiModel[]> | ApiModel[];
  apiKey: string;
  /** Default 127.0.0.1. Anything else is reachable from other machines: pass it only when asked. */
  host?: string;
  /** 0 picks a free port (default 0). */
  port?: number;
  /** Access-Control-Allow-Origin for browsers: an origin, or '*'; absent: no CORS headers. */
  cors?: string | null;
  /** Largest request body (default 4 MiB). */
  maxBodyBytes?: number;
  /** Every request, once answered (the studio's request log). */
  onRequest?: (entry: ApiRequestLog) => void;
}

export interface ApiServer {
  /** e.g. http://127.0.0.1:8080/v1 */
  baseUrl: string;
  host: string;
  port: number;
  /** Whether it listens beyond this machine's loopback. */
  exposed: boolean;
  close(): Promise<void>;
}

export function randomApiKey(): string {
  return `quip-${randomBytes(24).toString('base64url')}`;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Compares keys in constant time (hashes first, so neither length nor content leaks). */
function sameKey(given: string, key: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(key).digest();
  return timingSafeEqual(a, b);
}

const CONTEXT_CODES = new Set(['CONTEXT_FULL']);

/** A model host's failure as the API's error. */
function apiErrorOf(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const code = (err as { code?: string })?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code && CONTEXT_CODES.has(code)) return new ApiError(400, message, 'invalid_request_error', 'context_length_exceeded', 'messages');
  if (code === 'INVALID_REQUEST') return new ApiError(400, message, 'invalid_request_error', 'invalid_value', null);
  if (err instanceof UserError) return new ApiError(503, message, 'server_error', code?.toLowerCase() ?? null, null);
  return new ApiError(500, message, 'server_error', null, null);
}

function finishReason(stats: HostStats): 'stop' | 'length' {
  return stats.stopReason === 'max-tokens' || stats.stopReason === 'context-full' ? 'length' : 'stop';
}

function contentText(content: string | Array<{ text: string }> | null): string {
  if (content === null) return '';
  return typeof content === 'string' ? content : content.map((p) => p.text).join('');
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  if (!opts.apiKey) throw new UserError('The local API needs an API key.', 'NO_API_KEY');
  const host = opts.host ?? '127.0.0.1';
  const maxBody = opts.maxBodyBytes ?? 4 * 1024 * 1024;

  const server = http.createServer((req, res) => {
    const t0 = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const log: ApiRequestLog = { at: new Date().toISOString(), method: req.method ?? 'GET', path: url.pathname, status: 0, model: null, ms: 0 };
    res.on('finish', () => {
      log.status = res.statusCode;
      log.ms = performance.now() - t0;
      opts.onRequest?.(log);
    });
    if (opts.cors) {
      res.setHeader('Access-Control-Allow-Origin', opts.cors);
      res.setHeader('Vary', 'Origin');
    }
    handle(req, res, url, log).catch((err: unknown) => {
      const e = apiErrorOf(err);
      log.error = e.message;
      if (res.destroyed) return;
      if (!res.headersSent) sendJson(res, e.status, e.body());
      else if (!res.writableEnded) {
        // Mid-stream: the error as one last event, then the stream ends.
        res.end(`data: ${JSON.stringify(e.body())}\n\n`);
      }
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL, log: ApiRequestLog): Promise<void> {
    if (req.method === 'OPTIONS' && opts.cors) {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
        'Access-Control-Allow-Headers': 'Authorization, Content-Type',
        'Access-Control-Max-Age': '600',
      });
      return void res.end();
    }
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(auth);
    if (!m) throw new ApiError(401, 'Missing API key: send it as "Authorization: Bearer <key>" (quip serve printed the key).', 'invalid_request_error', 'invalid_api_key');
    if (!sameKey(m[1].trim(), opts.apiKey)) throw new ApiError(401, 'Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key');

    const path = url.pathname.replace(/\/+$/, '');
    if (req.method === 'GET' && path === '/v1/models') {
      const list = await opts.listModels();
      return sendJson(res, 200, { object: 'list', data: list.map(modelObject) });
    }
    const one = /^\/v1\/models\/(.+)$/.exec(path);
    if (req.method === 'GET' && one) {
      const id = decodeURIComponent(one[1]);
      const found = (await opts.listModels()).find((x) => x.id === id);
      if (!found) throw notFound(id);
      return sendJson(res, 200, modelObject(found));
    }
    if (path === '/v1/chat/completions' || path === '/v1/completions') {
      if (req.method !== 'POST') throw new ApiError(405, `Use POST for ${path}.`, 'invalid_request_error', 'method_not_allowed');
      const body = await readJson(req);
      return path === '/v1/chat/completions' ? chat(body, req, res, log) : completion(body, req, res, log);
    }
    throw new ApiError(404, `Unknown endpoint ${req.method} ${url.pathname}. This server offers GET /v1/models, POST /v1/chat/completions and POST /v1/completions.`, 'invalid_request_error', 'unknown_url');
  }

  function modelObject(x: ApiModel) {
    return { id: x.id, object: 'model', created: x.created ?? 0, owned_by: 'quip-studio' };
  }

  function notFound(id: string): ApiError {
    return new ApiError(404, `The model '${id}' does not exist here. GET /v1/models lists the ones this server offers.`, 'invalid_request_error', 'model_not_found', 'model');
  }

  async function resolve(id: string): Promise<ApiModel> {
    const found = (await opts.listModels()).find((x) => x.id === id);
    if (!found) throw notFound(id);
    return found;
  }

  async function readJson(req: http.IncomingMessage): Promise<unknown> {
    const declared = Number(req.headers['content-length'] ?? 0);
    const tooLarge = () => new ApiError(413, `The request body is larger than ${maxBody} bytes.`, 'invalid_request_error', 'request_too_large');
    if (declared > maxBody) {
      req.resume();
      throw tooLarge();
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > maxBody) {
        req.resume();
        throw tooLarge();
      }
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new ApiError(400, `The request body is not valid JSON: ${(err as Error).message}`, 'invalid_request_error', 'invalid_json');
    }
  }

  /** Cancels the generation when the client goes away before the answer is complete. */
  function disconnectSignal(res: http.ServerResponse): AbortSignal {
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    return ac.signal;
  }

  async function chat(raw: unknown, _req: http.IncomingMessage, res: http.ServerResponse, log: ApiRequestLog) {
    const parsed = ChatCompletionRequest.safeParse(raw);
    if (!parsed.success) throw invalidField(parsed.error);
    const b = parsed.data;
    log.model = b.model;
    const model = await resolve(b.model);
    const messages: ChatMessage[] = b.messages.map((m) => ({ role: m.role === 'developer' ? 'system' : m.role, content: contentText(m.content) }));
    const request: GenerateRequest = {
      messages,
      template: true,
      ...sampling(b, b.max_completion_tokens ?? b.max_tokens),
    };
    await respond(model, request, b, res, log, 'chat');
  }

  async function completion(raw: unknown, _req: http.IncomingMessage, res: http.ServerResponse, log: ApiRequestLog) {
    const parsed = CompletionRequest.safeParse(raw);
    if (!parsed.success) throw invalidField(parsed.error);
    const b = parsed.data;
    log.model = b.model;
    const model = await resolve(b.model);
    const prompt = typeof b.prompt === 'string' ? b.prompt : b.prompt[0];
    // OpenAI's legacy default is 16 tokens.
    await respond(model, { prompt, template: false, ...sampling(b, b.max_tokens ?? 16) }, b, res, log, 'text');
  }

  function sampling(b: ChatCompletionRequest | CompletionRequest, maxTokens: number | null | undefined) {
    return {
      temperature: b.temperature ?? 1,
      topP: b.top_p ?? 1,
      // Absent: until the model ends its turn or the context is full.
      maxTokens: Math.min(maxTokens ?? 1 << 20, 1 << 20),
      seed: b.seed === null || b.seed === undefined ? randomBytes(4).readUInt32LE() : b.seed >>> 0,
      stop: b.stop === null || b.stop === undefined ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop,
    };
  }

  async function respond(
    model: ApiModel,
    request: GenerateRequest,
    b: ChatCompletionRequest | CompletionRequest,
    res: http.ServerResponse,
    log: ApiRequestLog,
    kind: 'chat' | 'text',
  ) {
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const signal = disconnectSignal(res);
    const param = kind === 'chat' ? 'messages' : 'prompt';
    const failed = (err: unknown): never => {
      const e = apiErrorOf(err);
      throw e.code === 'context_length_exceeded' ? new ApiError(e.status, e.message, e.type, e.code, param) : e;
    };
    const usage = (s: HostStats) => ({ prompt_tokens: s.promptTokens, completion_tokens: s.tokens, total_tokens: s.promptTokens + s.tokens });
    const base = { id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created, model: model.id, system_fingerprint: null };
    const choice = (delta: Record<string, unknown> | string, finish: string | null) =>
      kind === 'chat' ? { index: 0, delta, logprobs: null, finish_reason: finish } : { index: 0, text: delta, logprobs: null, finish_reason: finish };

    if (!b.stream) {
      const { text, stats } = await opts.models.generate(model.dir, request, { signal }).result.catch(failed);
      log.promptTokens = stats.promptTokens;
      log.completionTokens = stats.tokens;
      const reason = finishReason(stats);
      return sendJson(res, 200, {
        id,
        object: kind === 'chat' ? 'chat.completion' : 'text_completion',
        created,
        model: model.id,
        system_fingerprint: null,
        choices: [
          kind === 'chat'
            ? { index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: reason }
            : { index: 0, text, logprobs: null, finish_reason: reason },
        ],
        usage: usage(stats),
      });
    }

    // Streaming: the headers go out with the first piece, so a failure before it (context full, a
    // model that cannot load) is still an ordinary JSON error with its status.
    const write = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
    const open = () => {
      if (res.headersSent) return;
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
      res.flushHeaders();
      write({ ...base, choices: [choice(kind === 'chat' ? { role: 'assistant', content: '' } : '', null)] });
    };
    const { stats } = await opts.models.generate(model.dir, request, {
      signal,
      onToken: (text) => {
        if (res.writableEnded || res.destroyed) return;
        open();
        write({ ...base, choices: [choice(kind === 'chat' ? { content: text } : text, null)] });
      },
    }).result.catch(failed);
    log.promptTokens = stats.promptTokens;
    log.completionTokens = stats.tokens;
    if (res.destroyed) return;
    open();
    write({ ...base, choices: [choice(kind === 'chat' ? {} : '', finishReason(stats))] });
    if (b.stream_options?.include_usage) write({ ...base, choices: [], usage: usage(stats) });
    res.end('data: [DONE]\n\n');
  }

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => (server.off('error', reject), resolveListen()));
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    baseUrl: `http://${shown}:${addr.port}/v1`,
    host: addr.address,
    port: addr.port,
    exposed: !isLoopback(host),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown | ApiErrorBody): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
