// A button that copies text to the clipboard and says so for a moment ("Copied"), or why it could not.
import { useEffect, useRef, useState } from 'react';

export async function copyText(text: string): Promise<void> {
  if (!navigator.clipboard?.writeText) throw new Error('This window has no clipboard access.');
  await navigator.clipboard.writeText(text);
}

export function CopyButton(props: { text: string | (() => string); label?: string; ariaLabel: string; className?: string; testId?: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => () => void (timer.current && clearTimeout(timer.current)), []);
  const click = () => {
    const text = typeof props.text === 'function' ? props.text() : props.text;
    copyText(text).then(
      () => setState('copied'),
      () => setState('failed'),
    );
    if (timer.current) clearTimeout(timer.current);
    timer.current = setTimeout(() => setState('idle'), 1500);
  };
  return (
    <button
      type="button"
      className={`btn btn-ghost btn-small ${props.className ?? ''}`}
      aria-label={props.ariaLabel}
      title={state === 'failed' ? 'The clipboard refused; select the text and copy it instead.' : props.ariaLabel}
      onClick={click}
      data-testid={props.testId}
    >
      {state === 'copied' ? 'Copied' : state === 'failed' ? 'Copy failed' : (props.label ?? 'Copy')}
    </button>
  );
}
