// Chat with the original or any quantized model, as in a local-LLM app: replies stream in as Markdown
// (code highlighted, with copy buttons), each with its tokens/s, time to first token and reused
// prompt tokens; copy, regenerate, edit and resend; a system prompt per chat; stop; a context meter,
// and a clear choice when a message would not fit. Split view sends each prompt to two models (both
// stay loaded). On the left: saved chats (in the studio home), the loaded models and the local server.
import { useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { ContextFullCard } from '../components/chat/ContextFullCard';
import { ContextMeter } from '../components/chat/ContextMeter';
import { LoadedModelsPanel } from '../components/chat/LoadedModelsPanel';
import { LocalServerPanel } from '../components/chat/LocalServerPanel';
import { MessageView } from '../components/chat/MessageView';
import { ErrorCard } from '../components/ui';
import { baseName } from '../format';
import { useStudio } from '../state/context';
import { useChat, useRuns } from '../state/runs-context';
import type { Pane } from '../state/chat';
import '../styles/chat.css';

interface ModelChoice {
  dir: string;
  name: string;
  group: 'Original models' | 'Quantized runs';
}

function useModelChoices(): ModelChoice[] {
  const recent = useStudio((s) => s.recent);
  const info = useStudio((s) => s.info);
  const runs = useRuns((s) => s.runs);
  return useMemo(() => {
    const list: ModelChoice[] = recent.map((r) => ({ dir: r.path, name: r.name, group: 'Original models' }));
    const sample = info.status === 'ready' ? info.value.sampleModel : null;
    if (sample && !list.some((m) => m.dir === sample)) list.push({ dir: sample, name: baseName(sample), group: 'Original models' });
    for (const r of runs) if (r.state === 'done') list.push({ dir: r.dir, name: r.name, group: 'Quantized runs' });
    return list;
  }, [recent, info, runs]);
}

function PaneView({ pane, index, choices, idle }: { pane: Pane; index: number; choices: ModelChoice[]; idle: boolean }) {
  const setModel = useChat((s) => s.setModel);
  const regenerate = useChat((s) => s.regenerate);
  const editAndResend = useChat((s) => s.editAndResend);
  const ref = useRef<HTMLDivElement>(null);
  const last = pane.messages.at(-1)?.content.length ?? 0;
  useEffect(() => {
    const el = ref.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [pane.messages.length, last]);
  // A model named by a saved chat but no longer offered still shows as chosen.
  const offered = pane.modelDir === null || choices.some((c) => c.dir === pane.modelDir);
  return (
    <section className="chat-pane" data-testid="chat-pane">
      <header className="chat-pane-head">
        <select
          className="input"
          aria-label={`Model ${index + 1}`}
          value={pane.modelDir ?? ''}
          disabled={!idle}
          onChange={(e) => {
            const c = choices.find((m) => m.dir === e.target.value);
            if (c) setModel(index, c.dir, c.name);
          }}
        >
          <option value="" disabled>
            Choose a model…
          </option>
          {!offered && <option value={pane.modelDir!}>{pane.modelName}</option>}
          {(['Original models', 'Quantized runs'] as const).map((g) => (
            <optgroup key={g} label={g}>
              {choices
                .filter((c) => c.group === g)
                .map((c) => (
                  <option key={c.dir} value={c.dir}>
                    {c.name}
                  </option>
                ))}
            </optgroup>
          ))}
        </select>
        <ContextMeter context={pane.context} />
        <span className="chat-speed muted" data-testid="chat-speed">
          {pane.tokensPerSecond !== null ? `${pane.tokensPerSecond.toFixed(1)} tokens/s` : ''}
        </span>
      </header>
      <div className="chat-messages" ref={ref}>
        {pane.messages.length === 0 && <div className="muted chat-empty">Say something to {pane.modelName || 'the model'}.</div>}
        {pane.messages.map((m, i) => (
          <MessageView
            key={i}
            message={m}
            streaming={pane.streamId !== null && i === pane.messages.length - 1}
            idle={idle}
            last={i === pane.messages.length - 1}
            onRegenerate={() => void regenerate(index)}
            onEdit={(text) => void editAndResend(i, text)}
          />
        ))}
      </div>
    </section>
  );
}

export function ChatPage() {
  const { panes, sampling, saved, chatId, notice, systemPrompt, contextFull } = useChat((s) => s);
  const { send, stop, setSplit, setSampling, newChat, openChat, deleteChat, setModel, dismissNotice, setSystemPrompt, measure } = useChat((s) => s);
  const { sendInNewChat, dropOldestAndSend, dismissContextFull } = useChat((s) => s);
  const choices = useModelChoices();
  const [draft, setDraft] = useState('');
  const [showSystem, setShowSystem] = useState(false);
  const streaming = panes.some((p) => p.streamId);

  // A pane without a model takes the first choice, so a person can type at once.
  useEffect(() => {
    panes.forEach((p, i) => {
      if (!p.modelDir && choices.length) setModel(i, choices[Math.min(i, choices.length - 1)]!.dir, choices[Math.min(i, choices.length - 1)]!.name);
    });
  }, [panes, choices, setModel]);

  // The context meter follows the system prompt (counted a moment after typing stops).
  const hasMessages = panes.some((p) => p.messages.length > 0);
  useEffect(() => {
    if (!hasMessages && !systemPrompt.trim()) return;
    const t = setTimeout(() => void measure(), 600);
    return () => clearTimeout(t);
  }, [systemPrompt, chatId, hasMessages, measure]);

  // A saved chat with a system prompt opens with it shown.
  useEffect(() => {
    if (systemPrompt.trim()) setShowSystem(true);
  }, [chatId, systemPrompt]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!draft.trim() || streaming) return;
    void send(draft);
    setDraft('');
  };

  return (
    <div className="page chat-page" data-testid="chat-page">
      <aside className="chat-list chat-side">
        <button type="button" className="btn btn-primary btn-block" onClick={newChat} disabled={streaming}>
          New chat
        </button>
        <div className="chat-list-items">
          {saved.map((c) => (
            <div key={c.chatId} className={`chat-list-item ${c.chatId === chatId ? 'chat-list-item-on' : ''}`} data-testid="saved-chat">
              <button type="button" className="link-button" onClick={() => openChat(c.chatId)} disabled={streaming}>
                {c.title}
              </button>
              <span className="muted">{c.panes.map((p) => p.modelName).join(' vs ')}</span>
              <button type="button" className="btn btn-ghost btn-small" aria-label={`Delete ${c.title}`} onClick={() => void deleteChat(c.chatId)}>
                ×
              </button>
            </div>
          ))}
        </div>
        <LoadedModelsPanel />
        <LocalServerPanel />
      </aside>
      <div className="chat-main">
        <header className="chat-toolbar">
          <label className="switch-row">
            <input type="checkbox" role="switch" checked={panes.length === 2} onChange={(e) => setSplit(e.target.checked)} disabled={streaming} data-testid="split-view" />
            <span className="switch-label">Split view</span>
          </label>
          <label className="inline-field">
            Temperature
            <input className="input mono" type="number" step="0.1" min="0" max="5" value={sampling.temperature} onChange={(e) => setSampling({ temperature: Number(e.target.value) })} />
          </label>
          <label className="inline-field">
            Top-p
            <input className="input mono" type="number" step="0.05" min="0.05" max="1" value={sampling.topP} onChange={(e) => setSampling({ topP: Number(e.target.value) })} />
          </label>
          <label className="inline-field">
            Max tokens
            <input className="input mono" type="number" step="16" min="1" max="8192" value={sampling.maxTokens} onChange={(e) => setSampling({ maxTokens: Math.max(1, Math.round(Number(e.target.value))) })} />
          </label>
          <button type="button" className={`btn btn-small ${showSystem || systemPrompt.trim() ? 'btn-on' : ''}`} aria-expanded={showSystem} onClick={() => setShowSystem(!showSystem)} data-testid="system-prompt-toggle">
            System prompt{systemPrompt.trim() && !showSystem ? ' (set)' : ''}
          </button>
        </header>
        {showSystem && (
          <label className="system-prompt">
            <span className="system-prompt-label">System prompt</span>
            <textarea
              className="input"
              aria-label="System prompt"
              rows={2}
              placeholder="Instructions sent first with every message of this chat, e.g. “Answer briefly.”"
              value={systemPrompt}
              onChange={(e) => setSystemPrompt(e.target.value)}
              disabled={streaming}
              data-testid="system-prompt"
            />
          </label>
        )}
        {notice && <ErrorCard title="Chat" message={notice.message} onDismiss={dismissNotice} />}
        <div className={`chat-panes chat-panes-${panes.length}`}>
          {panes.map((p, i) => (
            <PaneView key={i} pane={p} index={i} choices={choices} idle={!streaming} />
          ))}
        </div>
        {contextFull && (
          <ContextFullCard
            full={contextFull}
            onNewChat={() => void sendInNewChat()}
            onDropOldest={() => void dropOldestAndSend()}
            onCancel={() => {
              setDraft(contextFull.prompt);
              dismissContextFull();
            }}
          />
        )}
        <form className="chat-input" onSubmit={submit}>
          <textarea
            className="input"
            aria-label="Message"
            rows={2}
            placeholder={panes.length === 2 ? 'One message, both models answer…' : 'Write a message…'}
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && !e.shiftKey) submit(e);
            }}
          />
          {streaming ? (
            <button type="button" className="btn btn-danger" onClick={() => void stop()} data-testid="chat-stop">
              Stop
            </button>
          ) : (
            <button type="submit" className="btn btn-primary" disabled={!draft.trim()}>
              Send
            </button>
          )}
        </form>
      </div>
    </div>
  );
}
