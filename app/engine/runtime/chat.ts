// A multi-turn chat over one engine session. Each turn renders the whole conversation with the
// model's chat template, keeps the longest prefix of tokens the KV cache already holds (rewinding
// past what differs, e.g. an end-of-turn token the template adds after the reply, an edited last
// message or a regenerated reply) and prefills only the rest, so a long conversation is not
// recomputed every turn. The one chat path of the studio, `quip chat`, `quip serve` and the bench.
import type { ChatMessage, ChatTemplateFn, ModelTokenizer } from '../model/index.js';
import { generateOn, type GenerateOptions, type GenerateResult } from './generation.js';
import type { EngineModel, EngineSession } from './native-types.js';

export type ChatTokenizer = Pick<ModelTokenizer, 'encode' | 'decode' | 'eosIds' | 'bosToken'>;

export interface ChatTurnResult extends GenerateResult {
  /** Tokens of the whole rendered prompt. */
  promptTokens: number;
  /** Prompt tokens whose keys/values came from the cache (the longest common prefix). */
  reusedTokens: number;
  /** Prompt tokens computed this turn (promptTokens - reusedTokens). */
  prefilledTokens: number;
  /** From the call to the first sampled token (prefill included); null when none was sampled. */
  timeToFirstTokenMs: number | null;
}

/** The prompt's ids: the conversation rendered with the template (or joined as plain text without one). */
export function renderPromptIds(tokenizer: ChatTokenizer, template: ChatTemplateFn | null, messages: ChatMessage[]): number[] {
  if (!template) {
    // Plain text (base models): turns on their own lines, except that a reply continues the text it
    // was generated after, so the next turn's prompt begins with exactly what the cache holds.
    const text = messages.map((m, i) => (i === 0 || m.role === 'assistant' ? m.content : `\n${m.content}`)).join('');
    return tokenizer.encode(text);
  }
  const rendered = template(messages, { addGenerationPrompt: true });
  // A template that writes the BOS token itself must not get a second one.
  const writesBos = tokenizer.bosToken !== null && rendered.startsWith(tokenizer.bosToken);
  return tokenizer.encode(rendered, { addBos: writesBos ? false : undefined });
}

/** How many leading ids two sequences share. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

export interface ChatSessionOptions {
  /** The session may grow up to this many positions (default: the capacity it starts with). */
  maxCapacity?: number;
}

export class ChatSession {
  readonly messages: ChatMessage[] = [];
  private session: EngineSession;
  /** The ids whose keys/values the session holds, position by position. */
  private cached: number[] = [];
  private readonly maxCapacity: number;

  constructor(
    private readonly engine: EngineModel,
    private readonly tokenizer: ChatTokenizer,
    private readonly template: ChatTemplateFn | null,
    capacity: number,
    system?: string,
    opts: ChatSessionOptions = {},
  ) {
    this.session = engine.createSession(capacity);
    this.maxCapacity = Math.max(capacity, opts.maxCapacity ?? capacity);
    if (system) this.messages.push({ role: 'system', content: system });
  }

  /** Positions the KV cache holds now. */
  get capacity(): number {
    return this.session.capacity;
  }

  /** Ids of the conversation (default: this session's) plus the assistant's turn opening. */
  promptIds(messages: ChatMessage[] = this.messages): number[] {
    return renderPromptIds(this.tokenizer, this.template, messages);
  }

  /** Tokens reused from the cache on the last turn (for display and tests). */
  reused = 0;

  /** How many of `ids` the cache would give (the last prompt token is always fed again). */
  reusable(ids: readonly number[]): number {
    return Math.min(commonPrefix(this.cached, ids), ids.length - 1);
  }

  /**
   * Generates after `ids` (a whole prompt): rewinds to the longest prefix the cache shares with it
   * and prefills only the rest. Grows the cache (up to maxCapacity) when the prompt needs it; a grown
   * cache starts empty.
   */
  async run(ids: number[], o: Omit<GenerateOptions, 'capacity'>): Promise<ChatTurnResult> {
    const t0 = performance.now();
    if (ids.length === 0) throw new Error('the prompt has no tokens');
    if (ids.length >= this.maxCapacity) {
      throw new Error(`the prompt has ${ids.length} tokens but the context holds ${this.maxCapacity}; start a new chat or drop the oldest turns`);
    }
    // Room for the prompt and the reply: grow (losing the cache once) rather than stop the reply short.
    const wanted = ids.length + Math.max(1, o.maxTokens);
    if (wanted > this.session.capacity && this.session.capacity < this.maxCapacity) this.grow(wanted);
    this.session.rewind(Math.min(this.reusable(ids), this.session.position));
    const keep = this.session.position;
    this.cached = this.cached.slice(0, keep);
    this.reused = keep;
    let firstTokenAt: number | null = null;
    let r: GenerateResult;
    try {
      r = await generateOn(this.session, this.tokenizer, ids.slice(keep), ids, {
        ...o,
        onFirstToken: () => {
          firstTokenAt ??= performance.now();
          o.onFirstToken?.();
        },
      });
    } catch (err) {
      // What the cache holds is unknown after a failed forward: keep only what is certain.
      const safe = Math.min(keep, this.session.position);
      this.session.rewind(safe);
      this.cached = this.cached.slice(0, safe);
      throw err;
    }
    // Cached now: the prompt, then every generated token that was fed back (all but the last one).
    this.cached = [...ids, ...r.ids].slice(0, this.session.position);
    // A cancelled prefill may leave the session short of the prompt.
    if (this.cached.length < this.session.position) this.session.rewind(this.cached.length);
    return {
      ...r,
      promptTokens: ids.length,
      reusedTokens: keep,
      prefilledTokens: ids.length - keep,
      timeToFirstTokenMs: firstTokenAt === null ? null : firstTokenAt - t0,
    };
  }

  /** A reply to `messages` (the whole conversation, system prompt included); they become this session's. */
  async complete(messages: ChatMessage[], o: Omit<GenerateOptions, 'capacity'>): Promise<ChatTurnResult> {
    const r = await this.run(this.promptIds(messages), o);
    this.messages.splice(0, this.messages.length, ...messages, { role: 'assistant', content: r.text });
    return r;
  }

  async send(user: string, o: Omit<GenerateOptions, 'capacity'>): Promise<ChatTurnResult> {
    const messages = [...this.messages, { role: 'user', content: user }];
    return this.complete(messages, o);
  }

  reset(): void {
    this.messages.splice(0, this.messages.length, ...this.messages.filter((m) => m.role === 'system'));
    this.session.reset();
    this.cached = [];
  }

  /** A bigger KV cache (at least `positions`, doubling, at most maxCapacity); what was cached is gone. */
  private grow(positions: number): void {
    let cap = this.session.capacity;
    while (cap < positions && cap < this.maxCapacity) cap *= 2;
    cap = Math.min(Math.max(cap, positions), this.maxCapacity);
    this.session = this.engine.createSession(cap);
    this.cached = [];
  }
}
