// Chat with the original or any quantized model: streamed replies with a stop button, sampling
// settings, the model's own chat template, tokens/s; split view sends each prompt to two models.
// Chats are saved in the studio home and listed on the left.
import { useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { ErrorCard } from '../components/ui';
import { baseName } from '../format';
import { useStudio } from '../state/context';
import { useChat, useRuns } from '../state/runs-context';
import type { Pane } from '../state/chat';

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

function PaneView({ pane, index, choices }: { pane: Pane; index: number; choices: ModelChoice[] }) {
  const setModel = useChat((s) => s.setModel);
  const ref = useRef<HTMLDivElement>(null);
  const last = pane.messages.at(-1)?.content.length ?? 0;
  useEffect(() => {
    const el = ref.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [pane.messages.length, last]);
  return (
    <section className="chat-pane" data-testid="chat-pane">
      <header className="chat-pane-head">
        <select
          className="input"
          aria-label={`Model ${index + 1}`}
          value={pane.modelDir ?? ''}
          onChange={(e) => {
            const c = choices.find((m) => m.dir === e.target.value);
            if (c) setModel(index, c.dir, c.name);
          }}
        >
          <option value="" disabled>
            Choose a model…
          </option>
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
        <span className="chat-speed muted" data-testid="chat-speed">
          {pane.tokensPerSecond !== null ? `${pane.tokensPerSecond.toFixed(1)} tokens/s` : ''}
        </span>
      </header>
      <div className="chat-messages" ref={ref}>
        {pane.messages.length === 0 && <div className="muted chat-empty">Say something to {pane.modelName || 'the model'}.</div>}
        {pane.messages.map((m, i) => (
          <div key={i} className={`chat-message chat-${m.role}`} data-testid={`chat-${m.role}`}>
            {m.error ? (
              <div className="error-message" data-testid="chat-error">
                {m.error.message}
              </div>
            ) : (
              <div className="chat-text">{m.content || (pane.streamId && i === pane.messages.length - 1 ? '…' : '')}</div>
            )}
            {m.stats && (
              <div className="chat-meta muted">
                {m.stats.tokens} tokens · {m.stats.tokensPerSecond.toFixed(1)} tokens/s
                {m.stats.stopReason === 'cancelled' ? ' · stopped' : m.stats.stopReason === 'max-tokens' ? ' · max tokens' : ''}
                {m.stats.templated ? ' · chat template' : ' · plain text (no chat template)'}
              </div>
            )}
          </div>
        ))}
      </div>
    </section>
  );
}

export function ChatPage() {
  const { panes, sampling, saved, chatId, notice } = useChat((s) => s);
  const { send, stop, setSplit, setSampling, newChat, openChat, deleteChat, setModel, dismissNotice } = useChat((s) => s);
  const choices = useModelChoices();
  const [draft, setDraft] = useState('');
  const streaming = panes.some((p) => p.streamId);

  // A pane without a model takes the first choice, so a person can type at once.
  useEffect(() => {
    panes.forEach((p, i) => {
      if (!p.modelDir && choices.length) setModel(i, choices[Math.min(i, choices.length - 1)]!.dir, choices[Math.min(i, choices.length - 1)]!.name);
    });
  }, [panes, choices, setModel]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!draft.trim() || streaming) return;
    void send(draft);
    setDraft('');
  };

  return (
    <div className="page chat-page" data-testid="chat-page">
      <aside className="chat-list">
        <button type="button" className="btn btn-primary btn-block" onClick={newChat}>
          New chat
        </button>
        <div className="chat-list-items">
          {saved.map((c) => (
            <div key={c.chatId} className={`chat-list-item ${c.chatId === chatId ? 'chat-list-item-on' : ''}`} data-testid="saved-chat">
              <button type="button" className="link-button" onClick={() => openChat(c.chatId)}>
                {c.title}
              </button>
              <span className="muted">{c.panes.map((p) => p.modelName).join(' vs ')}</span>
              <button type="button" className="btn btn-ghost btn-small" aria-label={`Delete ${c.title}`} onClick={() => void deleteChat(c.chatId)}>
                ×
              </button>
            </div>
          ))}
        </div>
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
        </header>
        {notice && <ErrorCard title="Chat" message={notice.message} onDismiss={dismissNotice} />}
        <div className={`chat-panes chat-panes-${panes.length}`}>
          {panes.map((p, i) => (
            <PaneView key={i} pane={p} index={i} choices={choices} />
          ))}
        </div>
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
