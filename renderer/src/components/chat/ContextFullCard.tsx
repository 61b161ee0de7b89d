// The message would not fit the model's context: nothing is sent or cut; the person chooses a new
// chat (with the same models and system prompt) or dropping the oldest turns.
import type { ContextFull } from '../../state/chat';

export function ContextFullCard(props: { full: ContextFull; onNewChat(): void; onDropOldest(): void; onCancel(): void }) {
  const { full } = props;
  return (
    <div className="context-full" role="alert" data-testid="context-full">
      <div className="context-full-body">
        <div className="context-full-title">{full.alone ? 'This message is too long for the model' : 'The conversation is too long for the model'}</div>
        {full.panes.map((p) => (
          <div key={p.index} className="context-full-line">
            With this message the prompt is <strong>{p.promptTokens.toLocaleString('en-US')} tokens</strong>; {p.modelName} reads at most{' '}
            <strong>{p.contextLength.toLocaleString('en-US')}</strong> ({(p.promptTokens - p.contextLength + 1).toLocaleString('en-US')} too many, with one left for the reply).
          </div>
        ))}
        {full.alone ? (
          <div className="context-full-line muted">Shorten the message{full.panes.length ? ' or the system prompt' : ''}; nothing was sent.</div>
        ) : (
          <div className="context-full-line muted">Nothing was sent and nothing was cut. Start a new chat with it, or drop the oldest turns of this one until it fits.</div>
        )}
      </div>
      <div className="context-full-actions">
        {!full.alone && (
          <>
            <button type="button" className="btn btn-primary btn-small" onClick={props.onNewChat}>
              New chat
            </button>
            <button type="button" className="btn btn-small" onClick={props.onDropOldest}>
              Drop oldest turns
            </button>
          </>
        )}
        <button type="button" className="btn btn-ghost btn-small" onClick={props.onCancel}>
          {full.alone ? 'Edit the message' : 'Cancel'}
        </button>
      </div>
    </div>
  );
}
