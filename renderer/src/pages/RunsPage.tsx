// Every run in the studio home (started here or by `quip quantize --out <home>/runs/...`): state,
// settings (codebook, fine-tuning, calibration), size, perplexity, time; open one, resume, reveal its
// folder, or delete it with its files. Fits 1280 px: long names are cut (in full on hover), actions are icons.
import { MiddleEllipsis } from '../components/run/MiddleEllipsis';
import { PerplexityValue } from '../components/run/Perplexity';
import { RunActions } from '../components/run/RunActions';
import { settingsLabel } from '../components/run/labels';
import { Badge, Card, EmptyState, ErrorCard } from '../components/ui';
import { formatBytes, formatDuration } from '../../../app/domain/format';
import { useRuns } from '../state/runs-context';
import { useNavigation } from '../state/ui';
import { stateTone } from './RunPage';

export function RunsPage() {
  const runs = useRuns((s) => s.runs);
  const listError = useRuns((s) => s.listError);
  const notice = useRuns((s) => s.notice);
  const dismiss = useRuns((s) => s.dismissNotice);
  const revealed = useRuns((s) => s.revealed);
  const { select, refresh } = useRuns((s) => s);
  const go = useNavigation((s) => s.go);

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
              <colgroup>
                <col />
                <col className="col-model" />
                <col className="col-state" />
                <col className="col-bits" />
                <col className="col-num" />
                <col className="col-ppl" />
                <col className="col-time" />
                <col className="col-actions" />
              </colgroup>
              <thead>
                <tr>
                  <th>Run</th>
                  <th>Model</th>
                  <th>State</th>
                  <th className="num" title="True bits per weight: codes, sign vectors and scales">
                    Bits/w
                  </th>
                  <th className="num" title="Weights on disk: bytes of the .safetensors files">Size</th>
                  <th className="num" title="Perplexity ± one standard error over windows; hover a figure for its text and windows">Perplexity</th>
                  <th className="num" title="Every session of the run, resumes included">Time</th>
                  <th>
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {runs.map((r) => {
                  const settings = settingsLabel(r.settings);
                  return (
                    <tr key={r.runId} data-testid="run-row" data-run={r.runId}>
                      <td className="cell-run">
                        <div className="cell-run-name">
                          <button type="button" className="link-button" aria-label={r.name} onClick={() => (select(r.runId), go('run'))}>
                            <MiddleEllipsis text={r.name} />
                          </button>
                          {r.origin === 'cli' && <Badge title="Started from the command line">CLI</Badge>}
                        </div>
                        <div className="cell-run-settings muted" title={settings} data-testid="run-settings">
                          {r.settings ? settings : '—'}
                        </div>
                      </td>
                      <td className="cell-ellipsis" title={r.modelDir ?? undefined}>
                        {r.modelName ?? '—'}
                      </td>
                      <td>
                        <Badge tone={stateTone(r.state)}>{r.state}</Badge>
                        {r.state === 'running' && r.layersTotal ? <span className="muted"> {Math.round((100 * r.layersDone) / r.layersTotal)}%</span> : null}
                      </td>
                      <td className="num">{r.bitsPerWeight?.toFixed(3) ?? '—'}</td>
                      <td className="num">{r.bytesOnDisk !== null ? formatBytes(r.bytesOnDisk) : '—'}</td>
                      <td className="num"><PerplexityValue run={r} /></td>
                      <td className="num">{r.seconds !== null ? formatDuration(r.seconds) : '—'}</td>
                      <td>
                        <RunActions run={r} compact />
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Card>
    </div>
  );
}
