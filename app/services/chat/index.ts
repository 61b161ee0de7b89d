// Chat: each reply goes to the model's loaded host (ModelManager: one long-lived job process per
// model, a kept KV cache per conversation, one request at a time); its pieces of text go out as
// chat.token events under a stream id. Saved chats are one JSON file each in
// chats/ of the studio home.
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';

import { ChatRecord, type ChatMessage, type Sampling } from '../../contract/runs.js';
import { writeJsonAtomic } from '../../util/atomic-file.js';
import { UserError } from '../../util/errors.js';
import { childPath } from '../../util/paths.js';
import type { Emit } from '../dispatch.js';
import type { JobClient } from '../jobs/client.js';
import { ModelManager, type GenerateHandle } from '../models/manager.js';

export class ChatService {
  private readonly streams = new Map<string, GenerateHandle & { owner?: string }>();
  private readonly dir: string;
  readonly models: ModelManager;

  constructor(
    home: string,
    jobs: JobClient,
    private readonly emit: Emit,
    threads: () => Promise<number | null>,
    /** The loaded models (the studio's one manager, shared with the local API); default: a new one over `jobs`. */
    models?: ModelManager,
  ) {
    this.dir = path.join(home, 'chats');
    this.models = models ?? new ModelManager({ jobs, threads });
  }

  async send(
    input: { modelDir: string; messages: ChatMessage[]; sampling: Sampling; template: boolean; conversationId?: string },
    owner?: string,
  ): Promise<string> {
    const streamId = randomUUID();
    let firstAt: number | null = null;
    const handle = this.models.generate(
      input.modelDir,
      {
        conversationId: input.conversationId ?? null,
        messages: input.messages,
        template: input.template,
        temperature: input.sampling.temperature,
        topP: input.sampling.topP,
        maxTokens: input.sampling.maxTokens,
        seed: input.sampling.seed,
      },
      {
        onToken: (text, tokens) => {
          const now = performance.now();
          firstAt ??= now;
          const seconds = (now - firstAt) / 1000;
          this.emit('chat.token', { streamId, type: 'token', text, tokens, tokensPerSecond: seconds > 0 ? (tokens - 1) / seconds : 0 });
        },
      },
    );
    this.streams.set(streamId, { ...handle, owner });
    handle.result
      .then(
        ({ text, stats }) => this.emit('chat.token', { streamId, type: 'done', text, stats }),
        (err: { message?: string; code?: string }) => {
          // A stop before the first token still ends the stream cleanly, with what there was.
          if (err.code === 'CANCELLED') {
            this.emit('chat.token', {
              streamId,
              type: 'done',
              text: '',
              stats: { tokens: 0, promptTokens: 0, tokensPerSecond: 0, prefillTokensPerSecond: 0, stopReason: 'cancelled', templated: false, reusedTokens: 0, timeToFirstTokenMs: null },
            });
          } else this.emit('chat.token', { streamId, type: 'error', error: { message: err.message ?? String(err), code: err.code ?? 'ERROR' } });
        },
      )
      .finally(() => this.streams.delete(streamId));
    return streamId;
  }

  /** The prompt's token count against the model's context (the context meter; loads the model if needed). */
  count(input: { modelDir: string; messages: ChatMessage[]; template: boolean }): Promise<{ promptTokens: number; contextLength: number }> {
    return this.models.count(input.modelDir, { messages: input.messages, template: input.template });
  }

  /** Stops every reply a client (a closed window) was streaming. */
  stopOwnedBy(owner: string): number {
    let n = 0;
    for (const h of this.streams.values()) if (h.owner === owner) (h.cancel(), n++);
    return n;
  }

  stop(streamId: string): boolean {
    const h = this.streams.get(streamId);
    h?.cancel();
    return !!h;
  }

  async list(): Promise<ChatRecord[]> {
    const files = await fs.readdir(this.dir).catch(() => [] as string[]);
    const chats: ChatRecord[] = [];
    for (const f of files) {
      if (!f.endsWith('.json')) continue;
      try {
        const parsed = ChatRecord.safeParse(JSON.parse(await fs.readFile(path.join(this.dir, f), 'utf8')));
        if (parsed.success) chats.push(parsed.data);
      } catch {
        // a damaged file is skipped; the others still load
      }
    }
    return chats.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
  }

  /** chats/<id>.json; throws (BAD_NAME) for an id that is not one safe name. */
  private file(chatId: string): string {
    return `${childPath(this.dir, chatId, 'chat id')}.json`;
  }

  /** Saves a chat (a record of an older studio, without a system prompt, gets the empty one). */
  async save(chat: z.input<typeof ChatRecord>): Promise<ChatRecord> {
    // The dispatcher has checked it against the contract already; the id is checked again as a file name.
    const file = this.file(chat.chatId);
    const record = { ...chat, systemPrompt: chat.systemPrompt ?? '' } as ChatRecord;
    await writeJsonAtomic(file, record);
    return record;
  }

  async delete(chatId: string): Promise<void> {
    const file = this.file(chatId);
    try {
      await fs.unlink(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`There is no saved chat ${chatId}.`, 'NOT_FOUND');
      throw err;
    }
  }
}
