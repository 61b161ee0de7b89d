// One run, live: overall progress with phase and ETA, the per-layer chart growing as layers finish,
// fine-tuning curves when there are any, the log, and cancel / resume. A failed run shows why; a
// finished one leads on: chat with it, compare it, reveal its folder, delete it.
import { useEffect, useRef, useState } from 'react';
import type { RunDetail } from '../../../app/contract/index';
import { BitMap, isMixed } from '../components/run/BitMap';
import { FineTuneChart } from '../components/run/FineTuneChart';
import { LayerChart } from '../components/run/LayerChart';
import { PerplexityValue, perplexityHint } from '../components/run/Perplexity';
import { RunActions } from '../components/run/RunActions';
import { codebookLabel } from '../components/run/labels';
import { formatLoss, type Metric } from '../components/run/chart-utils';
import { Badge, Card, EmptyState, ErrorCard, ProgressBar, Stat } from '../components/ui';
import { formatBytes, formatDuration } from '../../../app/domain/format';
import { useRuns } from '../state/runs-context';
import { useNavigation, useNewRun } from '../state/ui';

const PHASE_LABEL: Record<string, string> = {
  load: 'Loading the model',
  calibrate: 'Calibrating',
  quantize: 'Quantizing layers',
  finetune: 'Fine-tuning end to end',
  save: 'Saving',
  evaluate: 'Measuring perplexity',
  done: 'Done',
};

export function stateTone(state: RunDetail['state']): 'neutral' | 'accent' | 'ok' | 'warn' | 'danger' {
  return state === 'done' ? 'ok' : state === 'running' ? 'accent' : state === 'error' ? 'danger' : state === 'queued' ? 'neutral' : 'warn';
}

const STOPPED_LABEL: Record<string, string> = { error: 'Stopped by an error', cancelled: 'Cancelled', interrupted: 'Interrupted (no job is working on it)' };

const ERROR_TITLE: Record<string, string> = {
  OUT_OF_MEMORY: 'The job process ran out of memory',
  CRASHED: 'The job process crashed',
  KILLED: 'The job process was killed',
  TIMEOUT: 'The run took too long',
};

function LogPanel({ run }: { run: RunDetail }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [run.log.length]);
  return (
    <div className="log-panel mono" ref={ref} data-testid="run-log">
      {run.log.length === 0 && <div className="muted">No messages yet.</div>}
      {run.log.map((l, i) => (
        <div key={i} className={`log-line log-${l.level}`}>
          <span className="log-time">{new Date(l.at).toLocaleTimeString()}</span> {l.message}
        </div>
      ))}
    </div>
  );
}

export function RunView({ run }: { run: RunDetail }) {
  const cancel = useRuns((s) => s.cancel);
  const revealed = useRuns((s) => s.revealed);
  const setNewRunModel = useNewRun((s) => s.setModelDir);
  const [metric, setMetric] = useState<Metric>('proxyLoss');
  const total = run.layersTotal ?? null;
  const fraction = run.state === 'done' ? 1 : total ? run.layersDone / total : null;
  const active = run.state === 'running' || run.state === 'queued';
  const s = run.settings;
  // New run from here starts with the model this run was made from.
  useEffect(() => {
    if (run.modelDir) setNewRunModel(run.modelDir);
  }, [run.modelDir, setNewRunModel]);

  return (
    <>
      <header className="page-header">
        <div>
          <h1 className="page-title">
            {run.name} <Badge tone={stateTone(run.state)}>{run.state}</Badge>
          </h1>
          <p className="page-subtitle mono">{run.dir}</p>
        </div>
        <div className="page-actions">
          {active && (
            <button type="button" className="btn btn-danger" onClick={() => void cancel(run.runId)} data-testid="cancel-run">
              Cancel
            </button>
          )}
          <RunActions run={run} />
        </div>
      </header>

      {revealed && revealed.runId === run.runId && !revealed.supported && (
        <div className="info-card" data-testid="reveal-path">
          The browser cannot open a file manager; the run is in <span className="mono">{revealed.path}</span>
        </div>
      )}
      {run.state === 'error' && run.error && (
        <ErrorCard title={ERROR_TITLE[run.error.code] ?? 'The run failed'} message={`${run.error.message} The finished blocks are kept: Resume continues after the last one.`} testId="run-error" />
      )}
      {run.state === 'cancelled' && <div className="info-card" data-testid="run-cancelled">Cancelled after {run.layersDone} of {total ?? '?'} layers. The finished blocks are kept; Resume continues from there.</div>}

      <Card testId="run-progress">
        <div className="run-progress-head">
          <span className="run-phase" data-testid="run-phase">
            {run.state === 'queued' ? 'Waiting for the run before it' : active || run.state === 'done' ? PHASE_LABEL[run.phase ?? 'load'] : STOPPED_LABEL[run.state]}
          </span>
          <span className="muted" data-testid="run-layers">
            {run.layersDone} / {total ?? '?'} layers
            {active && run.etaSeconds !== null && run.etaSeconds !== undefined ? (run.etaSeconds < 1 ? ' · almost done' : ` · about ${formatDuration(run.etaSeconds)} left`) : ''}
          </span>
        </div>
        <ProgressBar fraction={active && fraction === 0 ? null : fraction} label="Run progress" tone={run.state === 'error' ? 'danger' : run.state === 'done' ? 'ok' : 'accent'} />
        {s && (
          <div className="run-settings muted">
            {s.targetBpw !== null ? `${codebookLabel(s)} (2/3/4/16-bit layers)` : `${s.bits}-bit ${s.codebook}`} · incoherence {s.incoherence ? (s.rowScale ? 'on, row scales' : 'on') : 'off'} · LDLQ {s.ldlq ? 'on' : 'off'} · σ {s.sigma} · ρ {s.rho} · {s.calibration.samples}×{s.calibration.ctx} tokens · seed {s.seed}
            {s.finetune.mode !== 'none' && ` · fine-tuning ${s.finetune.mode}, ${s.finetune.epochs} epochs`}
          </div>
        )}
      </Card>

      <Card
        title="Per-layer quality"
        testId="layer-card"
        actions={
          <div className="segmented" role="group" aria-label="Metric">
            <button type="button" aria-pressed={metric === 'proxyLoss'} onClick={() => setMetric('proxyLoss')}>
              Proxy loss
            </button>
            <button type="button" aria-pressed={metric === 'frobeniusError'} onClick={() => setMetric('frobeniusError')} data-testid="metric-frobenius">
              Frobenius error
            </button>
          </div>
        }
      >
        {run.layers.length === 0 ? (
          <EmptyState title={active ? 'The first layer is on its way' : 'No layers yet'}>Each quantized linear layer appears here as soon as it is done.</EmptyState>
        ) : (
          <LayerChart layers={run.layers} blocks={total ? Math.ceil(total / 7) : null} metric={metric} />
        )}
      </Card>

      {(s?.targetBpw != null || isMixed(run.layers)) && run.layers.length > 0 && (
        <Card title={`Bit map${s?.targetBpw != null ? ` · ${codebookLabel(s)}` : ''}`} testId="bitmap-card">
          <BitMap layers={run.layers} blocks={total ? Math.ceil(total / 7) : null} />
        </Card>
      )}

      {run.fineTune.length > 0 && (
        <Card title="Fine-tuning" testId="finetune-card">
          <FineTuneChart epochs={run.fineTune} />
        </Card>
      )}

      {run.state === 'done' && (
        <Card title="Result" testId="run-result">
          <dl className="stat-grid">
            <Stat label="Bits per weight" value={run.bitsPerWeight?.toFixed(3) ?? '—'} hint="codes + signs + scales" />
            <Stat label="Weights on disk" value={<span data-testid="result-size">{run.bytesOnDisk !== null ? formatBytes(run.bytesOnDisk) : '—'}</span>} hint=".safetensors files" />
            <Stat label="Perplexity" value={<PerplexityValue run={run} />} hint={perplexityHint(run)} />
            <Stat label="Mean proxy loss" value={run.meanProxyLoss !== null ? formatLoss(run.meanProxyLoss) : '—'} />
            <Stat label="Time" value={<span data-testid="result-time">{run.seconds !== null ? formatDuration(run.seconds) : '—'}</span>} hint="every session, resumes included" />
          </dl>
        </Card>
      )}

      <Card title="Log" testId="log-card">
        <LogPanel run={run} />
      </Card>
    </>
  );
}

export function RunPage() {
  const selected = useRuns((s) => s.selected);
  const run = useRuns((s) => (s.selected ? s.details[s.selected] : undefined));
  const error = useRuns((s) => (s.selected ? s.detailErrors[s.selected] : undefined));
  const open = useRuns((s) => s.open);
  const go = useNavigation((s) => s.go);
  useEffect(() => {
    if (selected && !run) void open(selected);
  }, [selected, run, open]);
  return (
    <div className="page" data-testid="run-page">
      {!selected ? (
        <EmptyState title="No run chosen">
          <button type="button" className="btn" onClick={() => go('runs')}>
            See all runs
          </button>
        </EmptyState>
      ) : error ? (
        <ErrorCard title="This run cannot be shown" message={error.message} />
      ) : run ? (
        <RunView run={run} />
      ) : (
        <p className="muted">Loading…</p>
      )}
    </div>
  );
}
