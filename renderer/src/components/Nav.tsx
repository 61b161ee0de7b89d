import type { ReactNode } from 'react';
import { useNavigation, type PageId } from '../state/ui';

interface NavEntry {
  id: PageId;
  label: string;
  icon: ReactNode;
  /** Why the screen is not here yet; null when it is. */
  pending: string | null;
}

const icon = (d: string) => (
  <svg className="nav-icon" viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" strokeLinejoin="round">
    <path d={d} />
  </svg>
);

const PENDING = 'arrives with the quantization job';

/** The screens in the order a person uses them: pick a model, set up a run, watch, compare, chat. */
export const NAV: NavEntry[] = [
  { id: 'models', label: 'Models', icon: icon('M12 3 3 7.5l9 4.5 9-4.5L12 3zM3 12l9 4.5 9-4.5M3 16.5 12 21l9-4.5'), pending: null },
  { id: 'new-run', label: 'New run', icon: icon('M12 5v14M5 12h14'), pending: null },
  { id: 'runs', label: 'Runs', icon: icon('M4 6h16M4 12h16M4 18h10'), pending: null },
  { id: 'compare', label: 'Compare', icon: icon('M8 4v16M16 4v16M4 9h8M12 15h8'), pending: null },
  { id: 'chat', label: 'Chat', icon: icon('M4 5h16v11H9l-5 4V5z'), pending: null },
];

function NavButton({ entry }: { entry: NavEntry }) {
  const page = useNavigation((s) => s.page);
  const go = useNavigation((s) => s.go);
  return (
    <button
      type="button"
      className="nav-item"
      aria-current={page === entry.id || (page === 'run' && entry.id === 'runs') ? 'page' : undefined}
      disabled={entry.pending !== null}
      title={entry.pending ? `${entry.label} ${entry.pending}` : undefined}
      onClick={() => go(entry.id)}
    >
      {entry.icon}
      {entry.label}
    </button>
  );
}

export function Nav() {
  const ready = NAV.filter((e) => e.pending === null);
  const pending = NAV.filter((e) => e.pending !== null);
  return (
    <nav className="nav" aria-label="Studio">
      <div className="brand">
        <div className="brand-mark" aria-hidden="true">
          Q#
        </div>
        <div>
          <div className="brand-name">QuIP# Studio</div>
          <div className="brand-sub">LLMs at 2 bits, on a CPU</div>
        </div>
      </div>
      {ready.map((entry) => (
        <NavButton key={entry.id} entry={entry} />
      ))}
      {pending.length > 0 && (
        <>
          <div className="nav-section" data-testid="nav-pending">
            {PENDING[0]!.toUpperCase() + PENDING.slice(1)}
          </div>
          {pending.map((entry) => (
            <NavButton key={entry.id} entry={entry} />
          ))}
        </>
      )}
      <div className="nav-spacer" />
    </nav>
  );
}
