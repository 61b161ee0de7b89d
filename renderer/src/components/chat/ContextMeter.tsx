// Tokens the conversation holds of the model's context: "312 / 512 tokens" with a bar that turns
// amber past 80% and red when full.
import type { ContextUse } from '../../state/chat';

export function ContextMeter({ context }: { context: ContextUse | null }) {
  if (!context) {
    return (
      <span className="context-meter muted" data-testid="context-meter" title="Tokens used of the model's context (known after the first message)">
        – tokens
      </span>
    );
  }
  const fraction = Math.min(1, context.used / Math.max(1, context.length));
  const tone = fraction >= 1 ? 'danger' : fraction >= 0.8 ? 'warn' : 'ok';
  return (
    <span className={`context-meter context-${tone}`} data-testid="context-meter" title={`The conversation holds ${context.used} of the ${context.length} tokens the model reads`}>
      <span className="context-bar" aria-hidden="true">
        <span className="context-fill" style={{ width: `${fraction * 100}%` }} />
      </span>
      <span className="mono">
        {context.used.toLocaleString('en-US')} / {context.length.toLocaleString('en-US')} tokens
      </span>
    </span>
  );
}
