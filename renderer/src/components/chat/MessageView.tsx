// One message of a chat pane: a user message (plain text, with Edit to change and resend it) or a
// reply (Markdown, its figures: tokens, tokens/s, time to first token, reused prompt tokens; Copy,
// and Regenerate on the last one).
import { useState } from 'react';
import type { PaneMessage } from '../../state/chat';
import { CopyButton } from './CopyButton';
import { Markdown } from './Markdown';

function statsLine(s: NonNullable<PaneMessage['stats']>): string {
  const parts = [`${s.tokens} tokens`, `${s.tokensPerSecond.toFixed(1)} tokens/s`];
  if (s.timeToFirstTokenMs !== null && s.timeToFirstTokenMs !== undefined) {
    const ms = s.timeToFirstTokenMs;
    parts.push(`first token ${ms < 1 ? '< 1 ms' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`}`);
  }
  if (s.reusedTokens) parts.push(`${s.reusedTokens} of ${s.promptTokens} prompt tokens reused`);
  else if (s.promptTokens) parts.push(`${s.promptTokens} prompt tokens`);
  if (s.stopReason === 'cancelled') parts.push('stopped');
  else if (s.stopReason === 'max-tokens') parts.push('max tokens');
  else if (s.stopReason === 'context-full') parts.push('context full');
  parts.push(s.templated ? 'chat template' : 'plain text (no chat template)');
  return parts.join(' · ');
}

export function MessageView(props: {
  message: PaneMessage;
  /** The reply being streamed into this message. */
  streaming: boolean;
  /** No reply is streaming in any pane (actions are offered). */
  idle: boolean;
  /** The pane's last reply: it can be regenerated. */
  last: boolean;
  onRegenerate(): void;
  onEdit(text: string): void;
}) {
  const { message: m } = props;
  const [editing, setEditing] = useState<string | null>(null);

  if (m.role === 'user' && editing !== null) {
    const submit = () => {
      if (!editing.trim()) return;
      props.onEdit(editing);
      setEditing(null);
    };
    return (
      <div className="chat-message chat-user chat-editing" data-testid="chat-user">
        <textarea
          className="input chat-edit-input"
          aria-label="Edited text"
          value={editing}
          rows={Math.min(8, Math.max(2, editing.split('\n').length))}
          autoFocus
          onChange={(e) => setEditing(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) (e.preventDefault(), submit());
            if (e.key === 'Escape') setEditing(null);
          }}
        />
        <div className="chat-actions">
          <button type="button" className="btn btn-ghost btn-small" onClick={() => setEditing(null)}>
            Cancel
          </button>
          <button type="button" className="btn btn-primary btn-small" onClick={submit} disabled={!editing.trim() || !props.idle}>
            Send
          </button>
        </div>
      </div>
    );
  }

  return (
    <div className={`chat-message chat-${m.role}`} data-testid={`chat-${m.role}`}>
      {m.error ? (
        <div className="error-message" data-testid="chat-error">
          {m.error.message}
        </div>
      ) : m.role === 'assistant' ? (
        <div className="chat-text chat-markdown">{m.content ? <Markdown text={m.content} /> : props.streaming ? <span className="chat-typing">…</span> : null}</div>
      ) : (
        <div className="chat-text">{m.content}</div>
      )}
      {m.stats && <div className="chat-meta muted">{statsLine(m.stats)}</div>}
      {props.idle && !m.error && (
        <div className="chat-actions">
          {m.content && <CopyButton text={m.content} ariaLabel="Copy text" testId="copy-message" />}
          {m.role === 'user' && (
            <button type="button" className="btn btn-ghost btn-small" onClick={() => setEditing(m.content)} data-testid="edit-message">
              Edit
            </button>
          )}
          {m.role === 'assistant' && props.last && (
            <button type="button" className="btn btn-ghost btn-small" onClick={props.onRegenerate} data-testid="regenerate">
              Regenerate
            </button>
          )}
        </div>
      )}
      {props.idle && m.error && m.role === 'assistant' && props.last && (
        <div className="chat-actions">
          <button type="button" className="btn btn-ghost btn-small" onClick={props.onRegenerate} data-testid="regenerate">
            Try again
          </button>
        </div>
      )}
    </div>
  );
}
