import { formatCompact } from '../../format';
import { useStudio } from '../../state/context';
import { Card, EmptyState } from '../ui';

function ago(iso: string): string {
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  if (!Number.isFinite(seconds)) return '';
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} days ago`;
}

export function RecentCard() {
  const recent = useStudio((s) => s.recent);
  const inspect = useStudio((s) => s.inspect);
  const forget = useStudio((s) => s.forget);
  return (
    <Card title="Recent" testId="recent-card">
      {recent.length === 0 ? (
        <EmptyState title="No models yet">Models you open appear here.</EmptyState>
      ) : (
        <ul className="list">
          {recent.map((m) => (
            <li key={m.path} className="list-item" data-testid="recent-model">
              <button type="button" className="list-button" onClick={() => void inspect(m.repoId ?? m.path)} title={m.path}>
                <div className="list-item-title">{m.name}</div>
                <div className="list-item-sub">
                  {[m.family, m.params === null ? null : `${formatCompact(m.params)} params`, ago(m.openedAt)].filter(Boolean).join(' · ')}
                </div>
              </button>
              <button type="button" className="btn btn-ghost btn-small" aria-label={`Forget ${m.name}`} title="Remove from this list (files stay)" onClick={() => void forget(m.path)}>
                ✕
              </button>
            </li>
          ))}
        </ul>
      )}
    </Card>
  );
}
