// One loaded model answering chat and completion requests: a ChatSession (KV cache) per conversation
// id, the least recently used dropped when their caches outgrow a memory budget. A request carries
// the whole conversation; its session rewinds to the longest prefix it shares with the newly rendered
// prompt and prefills only the rest, so follow-ups, regenerations, edits of the last message and
// changed sampling all reuse what they can. Requests without a conversation id (the local API) go to
// the pooled session that shares the longest prefix with them. Runs in the model's job process
// (app/worker/model-host.ts) and in-process for the bench and tests.
import type { ChatMessage, ChatTemplateFn, LoadedModel } from '../model/index.js';
import { UserError } from '../../util/errors.js';
import { ChatSession, commonPrefix, renderPromptIds, type ChatTokenizer, type ChatTurnResult } from './chat.js';
import type { EngineModel } from './native-types.js';

export interface ChatHostRequest {
  /** The conversation whose cache to use; absent: the pooled session sharing the longest prefix. */
  conversationId?: string | null;
  /** The whole conversation, system prompt included (chat), ... */
  messages?: ChatMessage[];
  /** ... or a plain prompt continued as it is (completions; no template). */
  prompt?: string;
  /** Apply the model's chat template to messages (false, or a model without one: joined as plain text). */
  template: boolean;
  temperature: number;
  topP: number;
  maxTokens: number;
  seed: number;
  /** Stop strings (not part of the text). */
  stop?: string[];
}

export interface ChatHostResult extends ChatTurnResult {
  templated: boolean;
  contextLength: number;
}

export interface ChatHostOptions {
  /** Memory for all kept KV caches together (default 2 GiB); the least recently used go first. */
  kvBudgetBytes?: number;
  /** Most positions a conversation may use (default: the model's context, at most 32768). */
  maxContext?: number;
  /** Positions a new session starts with (default 2048, at most maxContext); it doubles when needed. */
  initialCapacity?: number;
  /** Pooled sessions for requests without a conversation id (default 4). */
  pooledSessions?: number;
}

interface Kept {
  chat: ChatSession;
  lastUsed: number;
  pooled: boolean;
  /** The prompt + reply ids of its last turn (for choosing a pooled session). */
  lastIds: number[];
}

export interface ChatHostModel {
  engine: EngineModel;
  tokenizer: ChatTokenizer;
  chatTemplate: ChatTemplateFn | null;
  architecture: Pick<LoadedModel['architecture'], 'contextLength' | 'numLayers' | 'numKeyValueHeads' | 'headDim'>;
}

export class ChatHost {
  readonly contextLength: number;
  /** float32 keys and values of every layer for one position. */
  readonly bytesPerPosition: number;
  private readonly sessions = new Map<string, Kept>();
  private readonly kvBudget: number;
  private readonly initialCapacity: number;
  private readonly pooled: number;
  private tick = 0;
  private pooledSeq = 0;

  constructor(
    private readonly model: ChatHostModel,
    opts: ChatHostOptions = {},
  ) {
    const a = model.architecture;
    this.contextLength = Math.min(a.contextLength, opts.maxContext ?? 32768);
    this.bytesPerPosition = 2 * a.numLayers * a.numKeyValueHeads * a.headDim * 4;
    this.kvBudget = opts.kvBudgetBytes ?? 2 * 1024 ** 3;
    this.initialCapacity = Math.min(this.contextLength, opts.initialCapacity ?? 2048);
    this.pooled = Math.max(1, opts.pooledSessions ?? 4);
  }

  /** Whether messages go through a chat template for this request. */
  templated(req: Pick<ChatHostRequest, 'template' | 'prompt'>): boolean {
    return req.prompt === undefined && req.template && this.model.chatTemplate !== null;
  }

  promptIds(req: Pick<ChatHostRequest, 'messages' | 'prompt' | 'template'>): number[] {
    const { tokenizer, chatTemplate } = this.model;
    if (req.prompt !== undefined) return tokenizer.encode(req.prompt);
    if (!req.messages?.length) throw new UserError('A request needs messages or a prompt.', 'INVALID_REQUEST');
    return renderPromptIds(tokenizer, req.template ? chatTemplate : null, req.messages);
  }

  /** The prompt's length against the context, before anything runs (for a context meter). */
  count(req: Pick<ChatHostRequest, 'messages' | 'prompt' | 'template'>): { promptTokens: number; contextLength: number } {
    return { promptTokens: this.promptIds(req).length, contextLength: this.contextLength };
  }

  async generate(req: ChatHostRequest, o: { onText?: (text: string, tokens: number) => void; cancel?: Int32Array } = {}): Promise<ChatHostResult> {
    const ids = this.promptIds(req);
    if (ids.length === 0) throw new UserError('The prompt has no tokens; write something first.', 'INVALID_REQUEST');
    if (ids.length >= this.contextLength) {
      throw new UserError(
        `The prompt is ${ids.length} tokens long but the model reads at most ${this.contextLength} (${ids.length - this.contextLength + 1} too many, with one token for the reply); start a new chat or drop the oldest turns.`,
        'CONTEXT_FULL',
      );
    }
    const maxTokens = Math.min(req.maxTokens, this.contextLength - ids.length);
    const kept = this.sessionFor(req.conversationId ?? null, ids, maxTokens);
    let tokens = 0;
    const r = await kept.chat.run(ids, {
      maxTokens,
      temperature: req.temperature,
      topP: req.topP,
      seed: req.seed,
      stopStrings: req.stop,
      cancel: o.cancel,
      onText: o.onText ? (text) => o.onText!(text, ++tokens) : undefined,
    });
    kept.lastUsed = ++this.tick;
    kept.lastIds = [...ids, ...r.ids];
    return { ...r, templated: this.templated(req), contextLength: this.contextLength };
  }

  /** Forgets a conversation's cache; true when there was one. */
  drop(conversationId: string): boolean {
    return this.sessions.delete(conversationId);
  }

  /** The kept sessions, most recently used first. */
  list(): Array<{ conversationId: string; pooled: boolean; capacity: number; kvBytes: number }> {
    return [...this.sessions.entries()]
      .sort(([, a], [, b]) => b.lastUsed - a.lastUsed)
      .map(([conversationId, k]) => ({ conversationId, pooled: k.pooled, capacity: k.chat.capacity, kvBytes: k.chat.capacity * this.bytesPerPosition }));
  }

  kvBytes(): number {
    let n = 0;
    for (const k of this.sessions.values()) n += k.chat.capacity * this.bytesPerPosition;
    return n;
  }

  private capacityFor(positions: number): number {
    let cap = this.initialCapacity;
    while (cap < positions && cap < this.contextLength) cap *= 2;
    return Math.min(cap, this.contextLength);
  }

  private sessionFor(conversationId: string | null, ids: number[], maxTokens: number): Kept {
    let key = conversationId;
    if (key === null) {
      // The pooled session sharing the longest prefix; a new one while the pool has room; else the oldest.
      let best: [string, Kept] | null = null;
      let bestLen = 0;
      for (const e of this.sessions) {
        if (!e[1].pooled) continue;
        const n = commonPrefix(e[1].lastIds, ids);
        if (n > bestLen) (best = e), (bestLen = n);
      }
      const pool = [...this.sessions].filter(([, k]) => k.pooled);
      if (best) key = best[0];
      else if (pool.length < this.pooled) key = `pool-${++this.pooledSeq}`;
      else key = pool.sort(([, a], [, b]) => a.lastUsed - b.lastUsed)[0][0];
    }
    const wanted = ids.length + Math.max(1, maxTokens);
    const existing = this.sessions.get(key);
    const capacity = existing && existing.chat.capacity >= wanted ? existing.chat.capacity : this.capacityFor(wanted);
    this.makeRoom(key, capacity * this.bytesPerPosition);
    if (existing) return existing;
    const chat = new ChatSession(this.model.engine, this.model.tokenizer, this.model.chatTemplate, this.capacityFor(wanted), undefined, { maxCapacity: this.contextLength });
    const kept: Kept = { chat, lastUsed: ++this.tick, pooled: conversationId === null, lastIds: [] };
    this.sessions.set(key, kept);
    return kept;
  }

  /** Drops the least recently used other sessions until `bytes` more fit in the budget. */
  private makeRoom(keep: string, bytes: number): void {
    const others = [...this.sessions.entries()].filter(([k]) => k !== keep).sort(([, a], [, b]) => a.lastUsed - b.lastUsed);
    let used = others.reduce((n, [, k]) => n + k.chat.capacity * this.bytesPerPosition, 0);
    for (const [k, s] of others) {
      if (used + bytes <= this.kvBudget) break;
      this.sessions.delete(k);
      used -= s.chat.capacity * this.bytesPerPosition;
    }
  }
}
