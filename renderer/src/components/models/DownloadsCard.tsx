import type { DownloadProgress } from '../../../../app/contract/index';
import { formatBytes, formatDuration, formatSpeed } from '../../../../app/domain/format';
import { useStudio } from '../../state/context';
import { Card, ProgressBar } from '../ui';

function DownloadRow({ d }: { d: DownloadProgress }) {
  const cancel = useStudio((s) => s.cancelDownload);
  const download = useStudio((s) => s.download);
  const inspect = useStudio((s) => s.inspect);
  const dismiss = useStudio((s) => s.dismissDownload);
  const fraction = d.bytesTotal > 0 ? d.bytesDone / d.bytesTotal : null;
  const tone = d.state === 'error' ? 'danger' : d.state === 'done' ? 'ok' : 'accent';

  return (
    <li className="download" data-testid="download" data-state={d.state}>
      <div className="download-head">
        <span className="download-name" title={d.repoId}>
          {d.repoId}
        </span>
        {d.state === 'running' && (
          <button type="button" className="btn btn-ghost btn-small btn-danger" onClick={() => void cancel(d.downloadId)}>
            Cancel
          </button>
        )}
      </div>
      <ProgressBar fraction={d.state === 'done' ? 1 : fraction} label={`Downloading ${d.repoId}`} tone={tone} />
      <div className="download-figures">
        <span data-testid="download-bytes">
          {formatBytes(d.bytesDone)}
          {d.bytesTotal > 0 && ` of ${formatBytes(d.bytesTotal)}`}
        </span>
        {d.state === 'running' && (
          <span data-testid="download-rate">
            {d.speedBytesPerSec > 0 ? formatSpeed(d.speedBytesPerSec) : 'starting…'}
            {d.etaSeconds !== null && ` · ${formatDuration(d.etaSeconds)} left`}
          </span>
        )}
        {d.state === 'done' && <span>Done</span>}
        {d.state === 'cancelled' && <span>Cancelled, resumable</span>}
        {d.state === 'error' && <span>Stopped, resumable</span>}
      </div>
      {d.state === 'error' && d.error && <div className="download-error">{d.error}</div>}
      {d.state === 'running' && d.file && <div className="download-file mono">{d.file}</div>}
      {d.state !== 'running' && (
        <div className="download-actions">
          {d.state === 'done' ? (
            <button type="button" className="btn btn-small" onClick={() => void inspect(d.repoId)}>
              Open
            </button>
          ) : (
            <button type="button" className="btn btn-small" onClick={() => void download(d.repoId)} title="Fetches only what is missing">
              Resume
            </button>
          )}
          <button type="button" className="btn btn-ghost btn-small" onClick={() => dismiss(d.downloadId)}>
            Dismiss
          </button>
        </div>
      )}
    </li>
  );
}

/** Downloads of this session: progress with bytes, speed and time left; cancel; resume after a failure. */
export function DownloadsCard() {
  const order = useStudio((s) => s.downloadOrder);
  const downloads = useStudio((s) => s.downloads);
  if (order.length === 0) return null;
  return (
    <Card title="Downloads" testId="downloads-card">
      <ul className="list">
        {[...order].reverse().map((id) => {
          const d = downloads[id];
          return d ? <DownloadRow key={id} d={d} /> : null;
        })}
      </ul>
    </Card>
  );
}
