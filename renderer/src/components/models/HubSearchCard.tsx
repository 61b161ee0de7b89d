import { useMemo, type FormEvent } from 'react';
import { formatCompact } from '../../format';
import { useStudio } from '../../state/context';
import { useModelsPage } from '../../state/ui';
import { Badge, Card, EmptyState, ErrorCard, Spinner } from '../ui';

export function HubSearchCard() {
  const hub = useStudio((s) => s.hub);
  const search = useStudio((s) => s.search);
  const download = useStudio((s) => s.download);
  const inspect = useStudio((s) => s.inspect);
  const downloads = useStudio((s) => s.downloads);
  const downloading = useMemo(() => new Set(Object.values(downloads).filter((d) => d.state === 'running').map((d) => d.repoId)), [downloads]);
  const queryDraft = useModelsPage((s) => s.queryDraft);
  const setQueryDraft = useModelsPage((s) => s.setQueryDraft);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void search(queryDraft.trim());
  };

  return (
    <Card title="Hugging Face Hub" testId="hub-card">
      <form onSubmit={submit} className="field-row" role="search">
        <input
          className="input"
          aria-label="Search the Hugging Face Hub"
          placeholder="Search models, e.g. SmolLM2"
          value={queryDraft}
          onChange={(e) => setQueryDraft(e.target.value)}
        />
        <button type="submit" className="btn" disabled={hub.state.status === 'loading'}>
          Search
        </button>
      </form>
      {hub.state.status === 'loading' && (
        <div className="empty-state">
          <Spinner label="Searching…" />
        </div>
      )}
      {hub.state.status === 'error' && (
        <div className="card-body-gap">
          <ErrorCard testId="hub-error" title="The Hub search failed" message={hub.state.error.message} />
        </div>
      )}
      {hub.state.status === 'ready' &&
        (hub.state.value.length === 0 ? (
          <EmptyState title={`No text-generation models match “${hub.query}”.`} />
        ) : (
          <ul className="list card-body-gap" data-testid="hub-results">
            {hub.state.value.map((m) => (
              <li key={m.id} className="list-item" data-testid="hub-result">
                <div className="list-item-main">
                  <div className="list-item-title" title={m.id}>
                    {m.id}
                  </div>
                  <div className="list-item-sub hub-meta">
                    <span title="downloads">↓ {m.downloads === null ? '–' : formatCompact(m.downloads)}</span>
                    <span title="likes">♥ {m.likes === null ? '–' : formatCompact(m.likes)}</span>
                    {m.gated && <Badge tone="warn">gated</Badge>}
                    {m.cached && <Badge tone="ok">downloaded</Badge>}
                  </div>
                </div>
                {m.cached ? (
                  <button type="button" className="btn btn-small" onClick={() => void inspect(m.id)}>
                    Open
                  </button>
                ) : (
                  <button type="button" className="btn btn-small" disabled={downloading.has(m.id)} onClick={() => void download(m.id)} aria-label={`Download ${m.id}`}>
                    {downloading.has(m.id) ? 'Downloading…' : 'Download'}
                  </button>
                )}
              </li>
            ))}
          </ul>
        ))}
    </Card>
  );
}
