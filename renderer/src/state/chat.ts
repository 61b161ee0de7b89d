// Chat in the renderer: the conversation on screen (one pane, or two side by side answering the same
// prompts), replies streamed from chat.token events (batched like run events), and saved chats that
// live in the studio home (chats.save after every finished reply, so they survive a restart).
// Each chat has its own system prompt (sent first with every turn); a reply can be regenerated and a
// user message edited and sent again; before sending, the prompt is counted against the model's
// context (chat.count), and one that would not fit is never sent truncated: the person chooses a new
// chat or dropping the oldest turns. Beside the chat: the loaded models (with their memory, unload)
// and the OpenAI-compatible local server (on/off, its key, its request log).
import { createStore, type StoreApi } from 'zustand/vanilla';
import type {
  ApiRequestLog,
  ApiSetInput,
  ApiStatus,
  ChatMessage,
  ChatRecord,
  ChatStats,
  ChatToken,
  LoadedModels,
  Sampling,
  StudioApi,
} from '../../../app/contract/index';
import { createBatcher } from './runs';
import { toFailure, type Failure } from './studio';

export interface PaneMessage {
  role: ChatMessage['role'];
  content: string;
  stats?: ChatStats | null;
  error?: Failure;
}

/** Tokens the conversation holds of the model's context (after the last reply or count). */
export interface ContextUse {
  used: number;
  length: number;
}

export interface Pane {
  modelDir: string | null;
  modelName: string;
  messages: PaneMessage[];
  /** The reply being streamed into the last message ('pending' until chat.send names its stream). */
  streamId: string | null;
  /** Live tokens/s of the streaming reply. */
  tokensPerSecond: number | null;
  context: ContextUse | null;
}

/** A message that would not fit the context of one or both models: it waits for the person's choice. */
export interface ContextFull {
  prompt: string;
  panes: Array<{ index: number; modelName: string; promptTokens: number; contextLength: number }>;
  /** Even alone (with the system prompt) it does not fit: only a shorter message helps. */
  alone: boolean;
}

export interface ChatState {
  chatId: string;
  title: string;
  panes: Pane[];
  sampling: Sampling;
  systemPrompt: string;
  saved: ChatRecord[];
  notice: Failure | null;
  contextFull: ContextFull | null;
  /** The loaded models panel; null until the first answer. */
  loaded: LoadedModels | null;
  /** The local server switch; null until loadServer(). */
  server: ApiStatus | null;

  start(): () => void;
  setModel(pane: number, modelDir: string, modelName: string): void;
  setSplit(on: boolean): void;
  setSampling(patch: Partial<Sampling>): void;
  setSystemPrompt(text: string): void;
  send(prompt: string): Promise<void>;
  /** A new reply to the last user message of one pane (a new seed, so it differs). */
  regenerate(pane: number): Promise<void>;
  /** Replaces the user message at `index` (and drops everything after it), then sends it again. */
  editAndResend(index: number, text: string): Promise<void>;
  stop(): Promise<void>;
  /** Counts the conversation as it stands (system prompt included) for the context meter, on models already loaded. */
  measure(): Promise<void>;
  /** Context full: start a new chat (same models and system prompt) with the message. */
  sendInNewChat(): Promise<void>;
  /** Context full: drop the oldest turns until the message fits, then send it. */
  dropOldestAndSend(): Promise<void>;
  dismissContextFull(): void;
  newChat(): void;
  openChat(chatId: string): void;
  deleteChat(chatId: string): Promise<void>;
  dismissNotice(): void;
  unload(modelDir: string): Promise<void>;
  setModelLimits(patch: { idleUnloadMinutes?: number; memoryBudgetBytes?: number | null }): Promise<void>;
  loadServer(): Promise<void>;
  setServer(input: ApiSetInput): Promise<void>;
  regenerateKey(): Promise<void>;
}

export type ChatStore = StoreApi<ChatState>;

export const DEFAULT_SAMPLING: Sampling = { temperature: 0.7, topP: 0.95, maxTokens: 128, seed: 0 };
/** Request log rows kept on screen. */
const LOG_ROWS = 100;

const emptyPane = (from?: Pane): Pane => ({ modelDir: from?.modelDir ?? null, modelName: from?.modelName ?? '', messages: [], streamId: null, tokensPerSecond: null, context: null });
const newId = () => `chat-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const titleOf = (text: string) => (text.length > 48 ? `${text.slice(0, 47)}…` : text);

/** The context a conversation of saved messages used, from its last reply's figures. */
function contextOf(messages: PaneMessage[]): ContextUse | null {
  const s = [...messages].reverse().find((m) => m.stats)?.stats;
  return s?.contextLength ? { used: s.promptTokens + s.tokens, length: s.contextLength } : null;
}

/** What goes to the model: the system prompt, then the conversation (failed replies left out). */
export function conversation(systemPrompt: string, messages: PaneMessage[]): ChatMessage[] {
  const system = systemPrompt.trim() ? [{ role: 'system' as const, content: systemPrompt }] : [];
  return [...system, ...messages.filter((m) => !m.error).map(({ role, content }) => ({ role, content }))];
}

/** Index where the oldest turn ends (the next user message after the first one); null when there is one turn or none. */
function oldestTurnEnd(messages: PaneMessage[]): number | null {
  const first = messages.findIndex((m) => m.role === 'user');
  if (first < 0) return null;
  const next = messages.findIndex((m, i) => i > first && m.role === 'user');
  return next < 0 ? null : next;
}

/** Sends one reply request and follows its chat.token stream until done or error. */
export function streamReply(
  api: StudioApi,
  input: { modelDir: string; messages: ChatMessage[]; sampling: Sampling; conversationId?: string },
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
        systemPrompt: s.systemPrompt,
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
    const busy = () => get().panes.some((p) => p.streamId);
    /** Stop was pressed while a request was still being counted or sent (no stream id yet). */
    let stopAsked = false;
    const ready = () => {
      if (get().panes.some((p) => !p.modelDir)) {
        set({ notice: { message: 'Choose a model for every pane first.', code: 'NO_MODEL' } });
        return false;
      }
      return true;
    };

    /**
     * Counts each pane's prompt; the panes over their context, or null when all fit. A count that
     * fails (a model that cannot load) lets the send go on: its reply then says why.
     */
    const overflow = async (histories: ChatMessage[][]): Promise<ContextFull['panes'] | null> => {
      const counts = await Promise.all(
        get().panes.map((p, index) =>
          api.chat.count({ modelDir: p.modelDir!, messages: histories[index]!, template: true }).then(
            (c) => ({ index, modelName: p.modelName, ...c }),
            () => null,
          ),
        ),
      );
      for (const c of counts) if (c) updatePane(c.index, (p) => ({ ...p, context: { used: c.promptTokens, length: c.contextLength } }));
      // One position at least must stay for the reply.
      const over = counts.filter((c): c is NonNullable<typeof c> => c !== null && c.promptTokens >= c.contextLength);
      return over.length ? over : null;
    };

    /** Streams a reply into pane i's last message (an empty assistant one) for `history`. */
    const reply = (i: number, history: ChatMessage[], sampling: Sampling) =>
      new Promise<void>((resolve) => {
        const pane = get().panes[i]!;
        const pieces = createBatcher<{ text: string; tps: number }>((batch) =>
          updatePane(i, (p) => ({ ...updateLast(p, (m) => ({ ...m, content: m.content + batch.map((b) => b.text).join('') })), tokensPerSecond: batch.at(-1)!.tps })),
        );
        const { streamId } = streamReply(api, { modelDir: pane.modelDir!, messages: history, sampling, conversationId: `${get().chatId}:${i}` }, {
          text: (piece, tps) => pieces.push({ text: piece, tps }),
          done: (stats, full) => {
            pieces.close();
            updatePane(i, (p) => ({
              ...updateLast(p, (m) => ({ ...m, content: full || m.content, stats })),
              streamId: null,
              tokensPerSecond: stats.tokensPerSecond,
              context: stats.contextLength ? { used: stats.promptTokens + stats.tokens, length: stats.contextLength } : p.context,
            }));
            resolve();
          },
          error: (f) => {
            pieces.close();
            updatePane(i, (p) => ({ ...updateLast(p, (m) => ({ ...m, error: f })), streamId: null }));
            resolve();
          },
        });
        void streamId.then((id) => {
          if (!id) return;
          updatePane(i, (p) => (p.streamId === 'pending' ? { ...p, streamId: id } : p));
          if (stopAsked) void api.chat.stop({ streamId: id }).catch(() => {});
        });
      });

    return {
      chatId: newId(),
      title: 'New chat',
      panes: [emptyPane()],
      sampling: DEFAULT_SAMPLING,
      systemPrompt: '',
      saved: [],
      notice: null,
      contextFull: null,
      loaded: null,
      server: null,

      start() {
        api.chats.list().then(
          (saved) => set({ saved }),
          (err) => set({ notice: toFailure(err) }),
        );
        api.models.loaded().then(
          (loaded) => set({ loaded }),
          () => {},
        );
        const offs = [
          api.on('models.loadedChanged', (loaded) => set({ loaded })),
          api.on('api.statusChanged', (server) => set({ server })),
          api.on('api.request', (row: ApiRequestLog) =>
            set((s) => (s.server ? { server: { ...s.server, log: [row, ...s.server.log].slice(0, LOG_ROWS) } } : {})),
          ),
        ];
        return () => offs.forEach((off) => off());
      },

      setModel(pane, modelDir, modelName) {
        updatePane(pane, (p) => ({ ...p, modelDir, modelName, context: p.modelDir === modelDir ? p.context : null }));
      },

      setSplit(on) {
        // Both panes must answer the same conversation, so switching the view starts a fresh chat.
        const fresh = get().panes.some((p) => p.messages.length > 0);
        set((s) => {
          const first = fresh ? emptyPane(s.panes[0]) : s.panes[0]!;
          const panes = on ? [first, s.panes[1] && !fresh ? s.panes[1] : emptyPane(s.panes[0])] : [first];
          return fresh ? { chatId: newId(), title: 'New chat', panes, contextFull: null } : { panes };
        });
      },

      setSampling(patch) {
        set((s) => ({ sampling: { ...s.sampling, ...patch } }));
      },

      setSystemPrompt(text) {
        set({ systemPrompt: text });
      },

      async send(prompt) {
        const text = prompt.trim();
        if (!text || busy() || !ready()) return;
        stopAsked = false;
        set({ contextFull: null });
        const histories = get().panes.map((p) => [...conversation(get().systemPrompt, p.messages), { role: 'user' as const, content: text }]);
        const before = get().panes.map((p) => p.messages);
        get().panes.forEach((_, i) =>
          updatePane(i, (p) => ({ ...p, messages: [...p.messages, { role: 'user', content: text }, { role: 'assistant', content: '' }], streamId: 'pending', tokensPerSecond: null })),
        );
        const over = await overflow(histories);
        if (over) {
          // Nothing is sent, nothing cut: the conversation stays as it was and the person chooses.
          set((s) => ({ panes: s.panes.map((p, i) => ({ ...p, messages: before[i]!, streamId: null })) }));
          set({ contextFull: { prompt: text, panes: over, alone: get().panes.every((p) => oldestTurnEnd([...p.messages, { role: 'user', content: text }]) === null) } });
          return;
        }
        if (get().title === 'New chat') set({ title: titleOf(text) });
        const sampling = get().sampling;
        await Promise.all(histories.map((h, i) => reply(i, h, sampling)));
        await save();
      },

      async regenerate(i) {
        const pane = get().panes[i];
        if (!pane || busy() || !ready() || pane.messages.at(-1)?.role !== 'assistant') return;
        const kept = pane.messages.slice(0, -1);
        const history = conversation(get().systemPrompt, kept);
        if (!history.some((m) => m.role === 'user')) return;
        stopAsked = false;
        updatePane(i, (p) => ({ ...p, messages: [...kept, { role: 'assistant', content: '' }], streamId: 'pending', tokensPerSecond: null }));
        // Another seed, so a sampled reply comes out different (greedy stays greedy).
        const sampling = { ...get().sampling, seed: Math.floor(Math.random() * 0xffffffff) };
        await reply(i, history, sampling);
        await save();
      },

      async editAndResend(index, text) {
        if (busy() || !text.trim() || !ready()) return;
        if (get().panes.some((p) => p.messages[index]?.role !== 'user')) return;
        // The edited message replaces the old one and what followed it (in every pane).
        set((s) => ({ panes: s.panes.map((p) => ({ ...p, messages: p.messages.slice(0, index) })) }));
        await get().send(text);
      },

      async stop() {
        if (get().panes.some((p) => p.streamId === 'pending')) stopAsked = true;
        for (const p of get().panes) {
          if (p.streamId && p.streamId !== 'pending') await api.chat.stop({ streamId: p.streamId }).catch(() => {});
        }
      },

      async measure() {
        const panes = get().panes;
        if (busy() || panes.some((p) => !p.modelDir)) return;
        // Only models already loaded are asked: opening an old chat or typing a system prompt never loads one.
        const loaded = (dir: string) => get().loaded?.models.some((m) => m.modelDir === dir && m.state === 'ready') ?? false;
        await Promise.all(
          panes.map(async (p, i) => {
            if (!loaded(p.modelDir!)) return;
            const messages = conversation(get().systemPrompt, p.messages);
            if (!messages.length) return updatePane(i, (x) => ({ ...x, context: null }));
            const c = await api.chat.count({ modelDir: p.modelDir!, messages, template: true }).catch(() => null);
            if (c && get().panes[i]?.modelDir === p.modelDir) updatePane(i, (x) => ({ ...x, context: { used: c.promptTokens, length: c.contextLength } }));
          }),
        );
      },

      async sendInNewChat() {
        const cf = get().contextFull;
        if (!cf) return;
        set((s) => ({ chatId: newId(), title: 'New chat', panes: s.panes.map((p) => emptyPane(p)), contextFull: null }));
        await get().send(cf.prompt);
      },

      async dropOldestAndSend() {
        const cf = get().contextFull;
        if (!cf || busy()) return;
        const user = { role: 'user' as const, content: cf.prompt };
        for (;;) {
          const ends = get().panes.map((p) => oldestTurnEnd([...p.messages, user]));
          if (ends.some((e) => e === null)) {
            // Only the new message is left and it still does not fit.
            set({ contextFull: { ...cf, alone: true } });
            return;
          }
          set((s) => ({ panes: s.panes.map((p, i) => ({ ...p, messages: p.messages.slice(ends[i]!) })) }));
          const over = await overflow(get().panes.map((p) => [...conversation(get().systemPrompt, p.messages), user]));
          if (!over) break;
          set({ contextFull: { ...cf, panes: over } });
        }
        set({ contextFull: null });
        await save();
        await get().send(cf.prompt);
      },

      dismissContextFull() {
        set({ contextFull: null });
      },

      newChat() {
        set((s) => ({ chatId: newId(), title: 'New chat', systemPrompt: '', contextFull: null, panes: s.panes.map((p) => emptyPane(p)) }));
      },

      openChat(chatId) {
        const c = get().saved.find((x) => x.chatId === chatId);
        if (!c || busy()) return;
        set({
          chatId: c.chatId,
          title: c.title,
          sampling: c.sampling,
          systemPrompt: c.systemPrompt ?? '',
          contextFull: null,
          panes: c.panes.map((p) => ({ modelDir: p.modelDir || null, modelName: p.modelName, messages: p.messages, streamId: null, tokensPerSecond: null, context: contextOf(p.messages) })),
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

      async unload(modelDir) {
        try {
          await api.models.unload({ modelDir });
          set({ loaded: await api.models.loaded() });
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },

      async setModelLimits(patch) {
        try {
          await api.settings.update(patch);
          set({ loaded: await api.models.loaded() });
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },

      async loadServer() {
        try {
          set({ server: await api.api.status() });
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },

      async setServer(input) {
        try {
          set({ server: await api.api.set(input) });
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },

      async regenerateKey() {
        try {
          set({ server: await api.api.regenerateKey() });
        } catch (err) {
          set({ notice: toFailure(err) });
        }
      },
    };
  });
}
