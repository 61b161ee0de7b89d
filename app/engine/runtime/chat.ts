// A multi-turn chat over one engine session. Each turn renders the whole conversation with the
// model's chat template, keeps the longest prefix of tokens the KV cache already holds (rewinding
// past what differs, e.g. an end-of-turn token the template adds after the reply) and prefills only
// the rest, so a long conversation is not recomputed every turn.
import type { ChatMessage, ChatTemplateFn, ModelTokenizer } from '../model/index.js';
import { generateOn, type GenerateOptions, type GenerateResult } from './generation.js';
import type { EngineModel, EngineSession } from './native-types.js';

export class ChatSession {
  readonly messages: ChatMessage[] = [];
  private readonly session: EngineSession;
  /** The ids whose keys/values the session holds, position by position. */
  private cached: number[] = [];

  constructor(
    engine: EngineModel,
    private readonly tokenizer: Pick<ModelTokenizer, 'encode' | 'decode' | 'eosIds' | 'bosToken'>,
    private readonly template: ChatTemplateFn,
    capacity: number,
    system?: string,
  ) {
    this.session = engine.createSession(capacity);
    if (system) this.messages.push({ role: 'system', content: system });
  }

  /** Ids of the conversation so far plus the assistant's turn opening. */
  promptIds(): number[] {
    const rendered = this.template(this.messages, { addGenerationPrompt: true });
    const writesBos = this.tokenizer.bosToken !== null && rendered.startsWith(this.tokenizer.bosToken);
    return this.tokenizer.encode(rendered, { addBos: writesBos ? false : undefined });
  }

  /** Tokens reused from the cache on the last turn (for display and tests). */
  reused = 0;

  async send(user: string, o: Omit<GenerateOptions, 'capacity'>): Promise<GenerateResult> {
    this.messages.push({ role: 'user', content: user });
    const ids = this.promptIds();
    let keep = 0;
    // The last prompt token is always fed again so there are logits to sample from.
    while (keep < this.cached.length && keep < ids.length - 1 && this.cached[keep] === ids[keep]) keep++;
    this.session.rewind(keep);
    this.reused = keep;
    let r: GenerateResult;
    try {
      r = await generateOn(this.session, this.tokenizer, ids.slice(keep), ids, o);
    } catch (err) {
      this.messages.pop();
      this.session.rewind(Math.min(keep, this.session.position));
      this.cached = this.cached.slice(0, Math.min(keep, this.session.position));
      throw err;
    }
    // Cached now: the prompt, then every generated token that was fed back (all but the last one).
    this.cached = [...ids, ...r.ids].slice(0, this.session.position);
    this.messages.push({ role: 'assistant', content: r.text });
    return r;
  }

  reset(): void {
    this.messages.splice(0, this.messages.length, ...this.messages.filter((m) => m.role === 'system'));
    this.session.reset();
    this.cached = [];
  }
}
