import { useNavigation, type PageId } from '../state/ui';

interface NavEntry {
  id: PageId;
  label: string;
  icon: string;
  /** Why the screen is not here yet; null when it is. */
  pending: string | null;
}

/** The screens in the order a person uses them: pick a model, set up a run, watch, compare, chat. */
export const NAV: NavEntry[] = [
  { id: 'models', label: 'Models', icon: '◆', pending: null },
  { id: 'new-run', label: 'New run', icon: '＋', pending: 'arrives with the quantization job' },
  { id: 'runs', label: 'Runs', icon: '▤', pending: 'arrives with the quantization job' },
  { id: 'compare', label: 'Compare', icon: '⇆', pending: 'arrives with the quantization job' },
  { id: 'chat', label: 'Chat', icon: '✎', pending: 'arrives with the quantization job' },
];

export function Nav() {
  const page = useNavigation((s) => s.page);
  const go = useNavigation((s) => s.go);
  return (
    <nav className="nav" aria-label="Studio">
      <div className="brand">
        <div className="brand-mark" aria-hidden="true">
          Q#
        </div>
        <div>
          <div className="brand-name">QuIP# Studio</div>
          <div className="brand-sub">2-bit models on your CPU</div>
        </div>
      </div>
      {NAV.map((entry) => (
        <button
          key={entry.id}
          type="button"
          className="nav-item"
          aria-current={page === entry.id ? 'page' : undefined}
          disabled={entry.pending !== null}
          title={entry.pending ?? undefined}
          onClick={() => go(entry.id)}
        >
          <span className="nav-item-label">
            <span className="nav-icon" aria-hidden="true">
              {entry.icon}
            </span>
            {entry.label}
          </span>
          {entry.pending && <span className="nav-hint">{entry.pending}</span>}
        </button>
      ))}
      <div className="nav-spacer" />
    </nav>
  );
}
