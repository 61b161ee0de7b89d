// Chat: each reply is a `chat` job (the model loads in the job process and generates there); its
// pieces of text go out as chat.token events under a stream id. Saved chats are one JSON file each in
// chats/ of the studio home.
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

import { ChatRecord, type ChatMessage, type Sampling } from '../../contract/runs.js';
import { writeJsonAtomic } from '../../util/atomic-file.js';
import { UserError } from '../../util/errors.js';
import type { Emit } from '../dispatch.js';
import type { JobClient, JobHandle } from '../jobs/client.js';

export class ChatService {
  private readonly streams = new Map<string, JobHandle<unknown>>();
  private readonly dir: string;

  constructor(
    home: string,
    private readonly jobs: JobClient,
    private readonly emit: Emit,
    private readonly threads: () => Promise<number | null>,
  ) {
    this.dir = path.join(home, 'chats');
  }

  async send(input: { modelDir: string; messages: ChatMessage[]; sampling: Sampling; template: boolean }, owner?: string): Promise<string> {
    const streamId = randomUUID();
    const threads = (await this.threads()) ?? undefined;
    const handle = this.jobs.run('chat', { ...input, modelDir: path.resolve(input.modelDir) }, {
      label: `Chat with ${path.basename(input.modelDir)}`,
      owner,
      threads,
      onEvent: (e) => {
        const d = e.data as { type?: string; text?: string; tokens?: number; tokensPerSecond?: number } | undefined;
        if (e.type === 'progress' && d?.type === 'token' && typeof d.text === 'string') {
          this.emit('chat.token', { streamId, type: 'token', text: d.text, tokens: d.tokens ?? 0, tokensPerSecond: d.tokensPerSecond ?? 0 });
        }
      },
    });
    this.streams.set(streamId, handle);
    handle.result.then(
      (r) => {
        const { text, ...stats } = r as { text: string } & Record<string, unknown>;
        this.emit('chat.token', { streamId, type: 'done', text, stats: stats as never });
      },
      (err: { message?: string; code?: string }) => {
        // A stop before the first token still ends the stream cleanly, with what there was.
        if (err.code === 'CANCELLED') {
          this.emit('chat.token', { streamId, type: 'done', text: '', stats: { tokens: 0, promptTokens: 0, tokensPerSecond: 0, prefillTokensPerSecond: 0, stopReason: 'cancelled', templated: false } });
        } else this.emit('chat.token', { streamId, type: 'error', error: { message: err.message ?? String(err), code: err.code ?? 'ERROR' } });
      },
    ).finally(() => this.streams.delete(streamId));
    return streamId;
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

  async save(chat: ChatRecord): Promise<ChatRecord> {
    await writeJsonAtomic(path.join(this.dir, `${chat.chatId}.json`), chat);
    return chat;
  }

  async delete(chatId: string): Promise<void> {
    const file = path.join(this.dir, `${chatId}.json`);
    try {
      await fs.unlink(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`There is no saved chat ${chatId}.`, 'NOT_FOUND');
      throw err;
    }
  }
}
