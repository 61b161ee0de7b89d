// The actions on one run, as small icon buttons (Runs table) or labelled buttons (Run page): resume a
// stopped run, chat with a finished one, add it to Compare, reveal its folder, delete it with its files
// (asking first). Every button names itself for screen readers and on hover.
import { useState, type ReactNode } from 'react';
import type { RunSummary } from '../../../../app/contract/index';
import { useChatStore, useRuns } from '../../state/runs-context';
import { useNavigation } from '../../state/ui';

const icon = (d: string) => (
  <svg className="btn-icon-svg" viewBox="0 0 24 24" width="15" height="15" aria-hidden="true" fill="none" stroke="currentColor" strokeWidth="1.9" strokeLinecap="round" strokeLinejoin="round">
    <path d={d} />
  </svg>
);

export const ICONS = {
  resume: icon('M7 5v14l11-7z'),
  reveal: icon('M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z'),
  delete: icon('M4 7h16M10 11v6M14 11v6M6 7l1 12a2 2 0 0 0 2 2h6a2 2 0 0 0 2-2l1-12M9 7V4h6v3'),
  chat: icon('M4 5h16v11H9l-5 4V5z'),
  compare: icon('M8 4v16M16 4v16M4 9h8M12 15h8'),
  close: icon('M6 6l12 12M18 6 6 18'),
};

export const isResumable = (r: Pick<RunSummary, 'state' | 'origin'>) => (r.state === 'cancelled' || r.state === 'interrupted' || r.state === 'error') && r.origin === 'studio';

function ActionButton(props: { label: string; icon: ReactNode; compact: boolean; onClick: () => void; testId?: string; tone?: 'primary' | 'danger' }) {
  const tone = props.tone === 'primary' ? 'btn-primary' : props.tone === 'danger' ? 'btn-danger' : props.compact ? 'btn-ghost' : '';
  return (
    <button
      type="button"
      className={`btn ${props.compact ? 'btn-small btn-icon' : ''} ${tone}`}
      onClick={props.onClick}
      data-testid={props.testId}
      aria-label={props.compact ? props.label : undefined}
      title={props.label}
    >
      {props.icon}
      {!props.compact && <span>{props.label}</span>}
    </button>
  );
}

/**
 * `compact`: icon buttons for a table row (Resume, Reveal, Delete). Otherwise labelled buttons for
 * the Run page, with Chat and Compare for a finished run; Delete goes back to Runs when done.
 */
export function RunActions({ run, compact = false }: { run: RunSummary; compact?: boolean }) {
  const { remove, reveal, resume, toggleCompared } = useRuns((s) => s);
  const compared = useRuns((s) => s.compared);
  const chat = useChatStore();
  const go = useNavigation((s) => s.go);
  const [confirming, setConfirming] = useState(false);
  const done = run.state === 'done';
  const active = run.state === 'running' || run.state === 'queued';

  if (confirming) {
    return (
      <div className={compact ? 'row-actions' : 'run-actions'} data-testid="run-actions">
        <button
          type="button"
          className={`btn btn-danger ${compact ? 'btn-small' : ''}`}
          onClick={() => {
            setConfirming(false);
            void remove(run.runId);
            if (!compact) go('runs');
          }}
          data-testid="confirm-delete"
          title={`Delete ${run.name} and every file of it`}
        >
          Delete files
        </button>
        <ActionButton compact label="Keep the run" icon={ICONS.close} onClick={() => setConfirming(false)} testId="cancel-delete" />
      </div>
    );
  }
  return (
    <div className={compact ? 'row-actions' : 'run-actions'} data-testid="run-actions">
      {isResumable(run) && <ActionButton compact={compact} label="Resume" icon={ICONS.resume} onClick={() => void resume(run.runId)} testId={compact ? 'resume-row' : 'resume-run'} tone={compact ? undefined : 'primary'} />}
      {!compact && done && (
        <>
          <ActionButton
            compact={false}
            label="Chat"
            icon={ICONS.chat}
            testId="chat-with-run"
            onClick={() => {
              const c = chat.getState();
              // A conversation with another model stays saved; this one starts fresh with the run.
              if (c.panes.some((p) => p.messages.length > 0) && c.panes[0]?.modelDir !== run.dir) c.newChat();
              c.setModel(0, run.dir, run.name);
              go('chat');
            }}
          />
          <ActionButton
            compact={false}
            label="Compare"
            icon={ICONS.compare}
            testId="compare-run"
            onClick={() => {
              if (!compared.includes(run.runId)) toggleCompared(run.runId);
              go('compare');
            }}
          />
        </>
      )}
      <ActionButton compact={compact} label="Reveal" icon={ICONS.reveal} onClick={() => void reveal(run.runId)} testId="reveal-run" />
      <ActionButton compact={compact} label={active ? 'Cancel and delete' : 'Delete'} icon={ICONS.delete} onClick={() => setConfirming(true)} testId="delete-run" />
    </div>
  );
}
