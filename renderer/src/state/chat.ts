// Chat in the renderer: the conversation on screen (one pane, or two side by side answering the same
// prompts), replies streamed from chat.token events (batched like run events), and saved chats that
// live in the studio home (chats.save after every finished reply, so they survive a restart).
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { ChatMessage, ChatRecord, ChatStats, ChatToken, Sampling, StudioApi } from '../../../app/contract/index';
import { createBatcher } from './runs';
import { toFailure, type Failure } from './studio';

export interface PaneMessage {
  role: ChatMessage['role'];
  content: string;
  stats?: ChatStats | null;
  error?: Failure;
}

export interface Pane {
  modelDir: string | null;
  modelName: string;
  messages: PaneMessage[];
  /** The reply being streamed into the last message. */
  streamId: string | null;
  /** Live tokens/s of the streaming reply. */
  tokensPerSecond: number | null;
}

export interface ChatState {
  chatId: string;
  title: string;
  panes: Pane[];
  sampling: Sampling;
  saved: ChatRecord[];
  notice: Failure | null;

  start(): () => void;
  setModel(pane: number, modelDir: string, modelName: string): void;
  setSplit(on: boolean): void;
  setSampling(patch: Partial<Sampling>): void;
  send(prompt: string): Promise<void>;
  stop(): Promise<void>;
  newChat(): void;
  openChat(chatId: string): void;
  deleteChat(chatId: string): Promise<void>;
  dismissNotice(): void;
}

export type ChatStore = StoreApi<ChatState>;

export const DEFAULT_SAMPLING: Sampling = { temperature: 0.7, topP: 0.95, maxTokens: 128, seed: 0 };

const emptyPane = (from?: Pane): Pane => ({ modelDir: from?.modelDir ?? null, modelName: from?.modelName ?? '', messages: [], streamId: null, tokensPerSecond: null });
const newId = () => `chat-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** Sends one reply request and follows its chat.token stream until done or error. */
export function streamReply(
  api: StudioApi,
  input: { modelDir: string; messages: ChatMessage[]; sampling: Sampling },
  on: { text(piece: string, tokensPerSecond: number): void; done(stats: ChatStats, text: string): void; error(f: Failure): void },
): { streamId: Promise<string | null> } {
  const early: ChatToken[] = [];
  let id: string | null = null;
  const handle = (t: ChatToken) => {
    if (t.type === 'token') on.text(t.text, t.tokensPerSecond);
    else if (t.type === 'done') (off(), on.done(t.stats, t.text));
    else (off(), on.error(t.error));
  };
  // Subscribe first: tokens may arrive before the request's answer names the stream.
  const off = api.on('chat.token', (t) => {
    if (id === null) early.push(t);
    else if (t.streamId === id) handle(t);
  });
  const streamId = api.chat.send({ ...input, template: true }).then(
    (r) => {
      id = r.streamId;
      for (const t of early.splice(0)) if (t.streamId === id) handle(t);
      return id;
    },
    (err) => {
      off();
      on.error(toFailure(err));
      return null;
    },
  );
  return { streamId };
}

export function createChatStore(api: StudioApi): ChatStore {
  return createStore<ChatState>()((set, get) => {
    const record = (): ChatRecord => {
      const s = get();
      return {
        chatId: s.chatId,
        title: s.title,
        panes: s.panes.map((p) => ({
          modelDir: p.modelDir ?? '',
          modelName: p.modelName,
          messages: p.messages.filter((m) => !m.error).map((m) => ({ role: m.role, content: m.content, stats: m.stats ?? null })),
        })),
        sampling: s.sampling,
        updatedAt: new Date().toISOString(),
      };
    };
    const save = async () => {
      try {
        const saved = await api.chats.save(record());
        set((s) => ({ saved: [saved, ...s.saved.filter((c) => c.chatId !== saved.chatId)] }));
      } catch (err) {
        set({ notice: toFailure(err) });
      }
    };
    const updatePane = (i: number, f: (p: Pane) => Pane) => set((s) => ({ panes: s.panes.map((p, j) => (j === i ? f(p) : p)) }));
    const updateLast = (p: Pane, f: (m: PaneMessage) => PaneMessage): Pane => ({ ...p, messages: [...p.messages.slice(0, -1), f(p.messages.at(-1)!)] });

    return {
      chatId: newId(),
      title: 'New chat',
      panes: [emptyPane()],
      sampling: DEFAULT_SAMPLING,
      saved: [],
      notice: null,

      start() {
        api.chats.list().then(
          (saved) => set({ saved }),
          (err) => set({ notice: toFailure(err) }),
        );
        return () => {};
      },

      setModel(pane, modelDir, modelName) {
        updatePane(pane, (p) => ({ ...p, modelDir, modelName }));
      },

      setSplit(on) {
        // Both panes must answer the same conversation, so switching the view starts a fresh chat.
        const fresh = get().panes.some((p) => p.messages.length > 0);
        set((s) => {
          const first = fresh ? emptyPane(s.panes[0]) : s.panes[0]!;
          const panes = on ? [first, s.panes[1] && !fresh ? s.panes[1] : emptyPane(s.panes[0])] : [first];
          return fresh ? { chatId: newId(), title: 'New chat', panes } : { panes };
        });
      },

      setSampling(patch) {
        set((s) => ({ sampling: { ...s.sampling, ...patch } }));
      },

      async send(prompt) {
        const text = prompt.trim();
        if (!text || get().panes.some((p) => p.streamId)) return;
        if (get().panes.some((p) => !p.modelDir)) {
          set({ notice: { message: 'Choose a model for every pane first.', code: 'NO_MODEL' } });
          return;
        }
        if (get().title === 'New chat') set({ title: text.length > 48 ? `${text.slice(0, 47)}…` : text });
        const replies = get().panes.map((pane, i) => {
          const history = [...pane.messages.filter((m) => !m.error).map(({ role, content }) => ({ role, content })), { role: 'user' as const, content: text }];
          updatePane(i, (p) => ({ ...p, messages: [...p.messages, { role: 'user', content: text }, { role: 'assistant', content: '' }], streamId: 'pending', tokensPerSecond: null }));
          return new Promise<void>((resolve) => {
            const pieces = createBatcher<{ text: string; tps: number }>((batch) =>
              updatePane(i, (p) => ({ ...updateLast(p, (m) => ({ ...m, content: m.content + batch.map((b) => b.text).join('') })), tokensPerSecond: batch.at(-1)!.tps })),
            );
            const { streamId } = streamReply(api, { modelDir: pane.modelDir!, messages: history, sampling: get().sampling }, {
              text: (piece, tps) => pieces.push({ text: piece, tps }),
              done: (stats, full) => {
                pieces.close();
                updatePane(i, (p) => ({ ...updateLast(p, (m) => ({ ...m, content: full || m.content, stats })), streamId: null, tokensPerSecond: stats.tokensPerSecond }));
                resolve();
              },
              error: (f) => {
                pieces.close();
                updatePane(i, (p) => ({ ...updateLast(p, (m) => ({ ...m, error: f })), streamId: null }));
                resolve();
              },
            });
            void streamId.then((id) => id && updatePane(i, (p) => (p.streamId === 'pending' ? { ...p, streamId: id } : p)));
          });
        });
        await Promise.all(replies);
        await save();
      },

      async stop() {
        for (const p of get().panes) {
          if (p.streamId && p.streamId !== 'pending') await api.chat.stop({ streamId: p.streamId }).catch(() => {});
        }
      },

      newChat() {
        set((s) => ({ chatId: newId(), title: 'New chat', panes: s.panes.map((p) => emptyPane(p)) }));
      },

      openChat(chatId) {
        const c = get().saved.find((x) => x.chatId === chatId);
        if (!c) return;
        set({
          chatId: c.chatId,
          title: c.title,
          sampling: c.sampling,
          panes: c.panes.map((p) => ({ modelDir: p.modelDir || null, modelName: p.modelName, messages: p.messages, streamId: null, tokensPerSecond: null })),
        });
      },

      async deleteChat(chatId) {
        try {
          await api.chats.delete({ chatId });
          set((s) => ({ saved: s.saved.filter((c) => c.chatId !== chatId) }));
          if (get().chatId === chatId) get().newChat();
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },

      dismissNotice() {
        set({ notice: null });
      },
    };
  });
}
