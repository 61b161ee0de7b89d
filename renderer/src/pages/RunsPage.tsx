// Every run in the studio home (started here or by `quip quantize --out <home>/runs/...`): state,
// bits, size, perplexity; open one, compare, resume, reveal its folder, or delete it with its files.
import { useState } from 'react';
import { Badge, Card, EmptyState, ErrorCard } from '../components/ui';
import { formatBytes, formatDuration } from '../format';
import { useRuns } from '../state/runs-context';
import { useNavigation } from '../state/ui';
import { stateTone } from './RunPage';

export function RunsPage() {
  const runs = useRuns((s) => s.runs);
  const listError = useRuns((s) => s.listError);
  const notice = useRuns((s) => s.notice);
  const dismiss = useRuns((s) => s.dismissNotice);
  const revealed = useRuns((s) => s.revealed);
  const { select, remove, reveal, resume, refresh } = useRuns((s) => s);
  const go = useNavigation((s) => s.go);
  const [confirming, setConfirming] = useState<string | null>(null);

  return (
    <div className="page" data-testid="runs-page">
      <header className="page-header">
        <div>
          <h1 className="page-title">Runs</h1>
          <p className="page-subtitle">Quantized models and runs in progress, newest first.</p>
        </div>
        <div className="page-actions">
          <button type="button" className="btn" onClick={() => void refresh()}>
            Refresh
          </button>
          <button type="button" className="btn btn-primary" onClick={() => go('new-run')}>
            New run
          </button>
        </div>
      </header>
      {listError && <ErrorCard title="The runs could not be listed" message={listError.message} />}
      {notice && <ErrorCard title="That did not work" message={notice.message} onDismiss={dismiss} testId="runs-notice" />}
      {revealed && !revealed.supported && (
        <div className="info-card" data-testid="reveal-path">
          The browser cannot open a file manager; the run is in <span className="mono">{revealed.path}</span>
        </div>
      )}
      <Card>
        {runs.length === 0 ? (
          <EmptyState title="No runs yet">Start one from New run; it appears here and keeps its files in the studio home.</EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="data-table runs-table">
              <thead>
                <tr>
                  <th>Run</th>
                  <th>Model</th>
                  <th>Codebook</th>
                  <th>State</th>
                  <th className="num">Bits/weight</th>
                  <th className="num">Size</th>
                  <th className="num">Perplexity</th>
                  <th className="num">Time</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {runs.map((r) => (
                  <tr key={r.runId} data-testid="run-row" data-run={r.runId}>
                    <td>
                      <button type="button" className="link-button" onClick={() => (select(r.runId), go('run'))}>
                        {r.name}
                      </button>
                      {r.origin === 'cli' && <Badge title="Started from the command line">CLI</Badge>}
                    </td>
                    <td>{r.modelName ?? '—'}</td>
                    <td>{r.settings ? `${r.settings.bits}-bit ${r.settings.codebook}` : '—'}</td>
                    <td>
                      <Badge tone={stateTone(r.state)}>{r.state}</Badge>
                      {r.state === 'running' && r.layersTotal ? <span className="muted"> {Math.round((100 * r.layersDone) / r.layersTotal)}%</span> : null}
                    </td>
                    <td className="num">{r.bitsPerWeight?.toFixed(3) ?? '—'}</td>
                    <td className="num">{r.bytesOnDisk !== null ? formatBytes(r.bytesOnDisk) : '—'}</td>
                    <td className="num">{r.perplexity?.toFixed(2) ?? '—'}</td>
                    <td className="num">{r.seconds !== null ? formatDuration(r.seconds) : '—'}</td>
                    <td className="row-actions">
                      {(r.state === 'cancelled' || r.state === 'interrupted' || r.state === 'error') && r.origin === 'studio' && (
                        <button type="button" className="btn btn-small" onClick={() => void resume(r.runId)}>
                          Resume
                        </button>
                      )}
                      <button type="button" className="btn btn-small btn-ghost" onClick={() => void reveal(r.runId)} data-testid="reveal-run">
                        Reveal
                      </button>
                      {confirming === r.runId ? (
                        <button type="button" className="btn btn-small btn-danger" onClick={() => (setConfirming(null), void remove(r.runId))} data-testid="confirm-delete">
                          Delete files
                        </button>
                      ) : (
                        <button type="button" className="btn btn-small btn-ghost" onClick={() => setConfirming(r.runId)} data-testid="delete-run">
                          Delete
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
    </div>
  );
}
