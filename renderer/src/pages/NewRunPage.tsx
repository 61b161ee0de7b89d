// New run: pick a model, a preset per bit width (or every setting by hand), see what the run will
// cost — time, memory and output size from the quantize job's own estimator — and start it.
import { useEffect, useMemo, useState } from 'react';
import { RunName, type QuantizeSettingsInput, type RunEstimate } from '../../../app/contract/index';
import { FINETUNE_DEFAULTS, type FinetuneMode } from '../../../app/engine/finetune/settings';
import { DEFAULT_RHO, DEFAULTS, codebookFor } from '../../../app/engine/quantize/settings';
import { Badge, Card, ErrorCard, Stat } from '../components/ui';
import { baseName, formatBytes, formatDuration } from '../format';
import { useStudio } from '../state/context';
import { useRuns } from '../state/runs-context';
import { useNavigation } from '../state/ui';
import { toFailure, type Failure } from '../state/studio';

interface Preset {
  id: string;
  label: string;
  hint: string;
  bits: 2 | 3 | 4;
  codebook: 'e8p' | 'rvq' | 'rtn';
}

export const PRESETS: Preset[] = [
  { id: 'e8p2', label: '2-bit E8P', hint: 'QuIP#: E8 lattice codebook', bits: 2, codebook: 'e8p' },
  { id: 'rvq3', label: '3-bit RVQ', hint: 'E8P + residual stage', bits: 3, codebook: 'rvq' },
  { id: 'rvq4', label: '4-bit RVQ', hint: 'E8P + residual stage', bits: 4, codebook: 'rvq' },
  { id: 'rtn2', label: 'Scalar 2-bit', hint: 'baseline: rounding', bits: 2, codebook: 'rtn' },
  { id: 'rtn3', label: 'Scalar 3-bit', hint: 'baseline: rounding', bits: 3, codebook: 'rtn' },
  { id: 'rtn4', label: 'Scalar 4-bit', hint: 'baseline: rounding', bits: 4, codebook: 'rtn' },
];

interface Form {
  bits: 2 | 3 | 4;
  codebook: 'e8p' | 'rvq' | 'rtn';
  incoherence: boolean;
  rowScale: boolean;
  ldlq: boolean;
  sigma: string;
  /** Empty: the codebook's default. */
  rho: string;
  tuneIters: string;
  calibTextFile: string;
  calibSamples: string;
  calibCtx: string;
  seed: string;
  /** Empty: the studio setting (all threads). */
  threads: string;
  name: string;
  ftMode: FinetuneMode;
  ftEpochs: string;
  ftLr: string;
  ftLrSign: string;
  ftBatch: string;
  ftHoldout: string;
  ftPatience: string;
}

const initialForm: Form = {
  bits: 2,
  codebook: 'e8p',
  incoherence: true,
  rowScale: DEFAULTS.rowScale,
  ldlq: true,
  sigma: String(DEFAULTS.sigma),
  rho: '',
  tuneIters: String(DEFAULTS.tuneIters),
  calibTextFile: '',
  calibSamples: String(DEFAULTS.calibSamples),
  calibCtx: String(DEFAULTS.calibCtx),
  seed: String(DEFAULTS.seed),
  threads: '',
  name: '',
  ftMode: FINETUNE_DEFAULTS.mode,
  ftEpochs: String(FINETUNE_DEFAULTS.epochs),
  ftLr: String(FINETUNE_DEFAULTS.lr),
  ftLrSign: String(FINETUNE_DEFAULTS.lrSign),
  ftBatch: String(FINETUNE_DEFAULTS.batch),
  ftHoldout: String(FINETUNE_DEFAULTS.holdout),
  ftPatience: String(FINETUNE_DEFAULTS.patience),
};

const FT_MODES: Array<{ id: FinetuneMode; label: string; hint: string }> = [
  { id: 'none', label: 'Off', hint: 'Quantize only' },
  { id: 'block', label: 'In-block', hint: 'Tune each block to match the original' },
  { id: 'block+e2e', label: 'In-block + end-to-end', hint: 'Then distil the whole model' },
];

function toSettings(f: Form): QuantizeSettingsInput {
  const num = (s: string) => (s.trim() === '' ? undefined : Number(s));
  return {
    bits: f.bits,
    codebook: f.codebook,
    incoherence: f.incoherence,
    rowScale: f.rowScale,
    ldlq: f.ldlq,
    sigma: num(f.sigma),
    rho: num(f.rho),
    tuneIters: num(f.tuneIters),
    calibTextFile: f.calibTextFile.trim() || null,
    calibSamples: num(f.calibSamples),
    calibCtx: num(f.calibCtx),
    seed: num(f.seed),
    threads: num(f.threads),
    finetune:
      f.ftMode === 'none'
        ? { mode: 'none' }
        : {
            mode: f.ftMode,
            epochs: num(f.ftEpochs),
            lr: num(f.ftLr),
            lrSign: num(f.ftLrSign),
            batch: num(f.ftBatch),
            holdout: num(f.ftHoldout),
            patience: num(f.ftPatience),
          },
  };
}

function defaultRho(f: Form): number | null {
  try {
    return DEFAULT_RHO[codebookFor(f.bits, f.codebook)];
  } catch {
    return null;
  }
}

function NumberField(props: { id: string; label: string; value: string; onChange: (v: string) => void; placeholder?: string; step?: string; hint?: string }) {
  return (
    <div className="form-field">
      <label className="field-label" htmlFor={props.id}>
        {props.label}
      </label>
      <input id={props.id} className="input mono" inputMode="decimal" value={props.value} placeholder={props.placeholder} onChange={(e) => props.onChange(e.target.value)} />
      {props.hint && <div className="field-hint">{props.hint}</div>}
    </div>
  );
}

function Switch(props: { label: string; hint: string; checked: boolean; disabled?: boolean; onChange: (v: boolean) => void }) {
  return (
    <label className="switch-row">
      <input type="checkbox" role="switch" checked={props.checked} disabled={props.disabled} onChange={(e) => props.onChange(e.target.checked)} />
      <span>
        <span className="switch-label">{props.label}</span>
        <span className="field-hint">{props.hint}</span>
      </span>
    </label>
  );
}

export function NewRunPage() {
  const recent = useStudio((s) => s.recent);
  const info = useStudio((s) => s.info);
  const inspection = useStudio((s) => s.inspection.state);
  const estimateRun = useRuns((s) => s.estimate);
  const startRun = useRuns((s) => s.startRun);
  const notice = useRuns((s) => s.notice);
  const dismiss = useRuns((s) => s.dismissNotice);
  const go = useNavigation((s) => s.go);

  const models = useMemo(() => {
    const list = recent.map((r) => ({ path: r.path, name: r.name }));
    const sample = info.status === 'ready' ? info.value.sampleModel : null;
    if (sample && !list.some((m) => m.path === sample)) list.push({ path: sample, name: `${baseName(sample)} (sample)` });
    return list;
  }, [recent, info]);
  const opened = inspection.status === 'ready' ? inspection.value.source.path : null;
  const [modelDir, setModelDir] = useState<string>('');
  useEffect(() => {
    if (!modelDir && models.length) setModelDir(opened && models.some((m) => m.path === opened) ? opened : models[0]!.path);
  }, [models, opened, modelDir]);

  const [form, setForm] = useState<Form>(initialForm);
  const patch = (p: Partial<Form>) => setForm((f) => ({ ...f, ...p }));
  const settings = useMemo(() => toSettings(form), [form]);

  const [estimate, setEstimate] = useState<{ value: RunEstimate | null; error: Failure | null; loading: boolean }>({ value: null, error: null, loading: false });
  useEffect(() => {
    if (!modelDir) return;
    let live = true;
    setEstimate((e) => ({ ...e, loading: true }));
    const t = setTimeout(() => {
      estimateRun(modelDir, settings).then(
        (value) => live && setEstimate({ value, error: null, loading: false }),
        (err) => live && setEstimate({ value: null, error: toFailure(err), loading: false }),
      );
    }, 200);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [modelDir, settings, estimateRun]);

  // The contract's own rule for a run name, checked as it is typed (the server checks it again).
  const nameError = useMemo(() => {
    const name = form.name.trim();
    if (!name) return null;
    const checked = RunName.safeParse(name);
    return checked.success ? null : (checked.error.issues[0]?.message ?? 'This run name cannot be used.');
  }, [form.name]);

  const [starting, setStarting] = useState(false);
  const start = async () => {
    setStarting(true);
    const run = await startRun(modelDir, settings, form.name.trim() || undefined);
    setStarting(false);
    if (run) go('run');
  };

  const preset = PRESETS.find((p) => p.bits === form.bits && p.codebook === form.codebook);
  const rho = defaultRho(form);

  return (
    <div className="page" data-testid="new-run-page">
      <header className="page-header">
        <div>
          <h1 className="page-title">New run</h1>
          <p className="page-subtitle">Quantize a model with QuIP#: pick a bit width, check the cost, start. Runs queue up and go one at a time.</p>
        </div>
      </header>
      {notice && <ErrorCard title="The run could not start" message={notice.message} onDismiss={dismiss} testId="run-notice" />}
      <div className="run-form-layout">
        <div className="run-form-main">
          <Card title="Model" testId="run-model-card">
            {models.length === 0 ? (
              <p className="muted">Open a model on the Models page first; it appears here.</p>
            ) : (
              <>
                <label className="field-label" htmlFor="run-model">
                  Model to quantize
                </label>
                <select id="run-model" className="input" value={modelDir} onChange={(e) => setModelDir(e.target.value)}>
                  {models.map((m) => (
                    <option key={m.path} value={m.path}>
                      {m.name} — {m.path}
                    </option>
                  ))}
                </select>
              </>
            )}
          </Card>

          <Card title="Codebook and bits" testId="preset-card">
            <div className="preset-grid" role="radiogroup" aria-label="Preset">
              {PRESETS.map((p) => (
                <button
                  key={p.id}
                  type="button"
                  role="radio"
                  aria-checked={preset?.id === p.id}
                  className={`preset ${preset?.id === p.id ? 'preset-on' : ''} preset-bits-${p.bits}`}
                  onClick={() => patch({ bits: p.bits, codebook: p.codebook, rho: '' })}
                >
                  <span className="preset-label">{p.label}</span>
                  <span className="preset-hint">{p.hint}</span>
                </button>
              ))}
            </div>
            <div className="switches">
              <Switch label="Incoherence processing" hint="Random Hadamard transforms on both sides of every weight" checked={form.incoherence} onChange={(incoherence) => patch({ incoherence })} />
              <Switch label="Row scales" hint="Fold each row's RMS into SV so every output channel gets the same relative error (with incoherence)" checked={form.rowScale && form.incoherence} disabled={!form.incoherence} onChange={(rowScale) => patch({ rowScale })} />
              <Switch label="LDLQ" hint="Adaptive rounding with Hessian feedback (off: nearest)" checked={form.ldlq} onChange={(ldlq) => patch({ ldlq })} />
            </div>
            <div className="form-grid">
              <NumberField id="run-sigma" label="Damping σ" value={form.sigma} onChange={(sigma) => patch({ sigma })} hint="Added to the Hessian diagonal (relative)" />
              <NumberField id="run-rho" label="Scale ρ" value={form.rho} placeholder={rho === null ? '' : String(rho)} onChange={(r) => patch({ rho: r })} hint="RMS the codebook sees; empty = default" />
              <NumberField id="run-tune" label="Tune iterations" value={form.tuneIters} onChange={(tuneIters) => patch({ tuneIters })} hint="Extra LDLQ refinement passes (0–10)" />
            </div>
          </Card>

          <Card title="Calibration" testId="calibration-card">
            <div className="form-grid">
              <NumberField id="run-samples" label="Samples" value={form.calibSamples} onChange={(calibSamples) => patch({ calibSamples })} hint="Sequences of calibration text" />
              <NumberField id="run-ctx" label="Length (tokens)" value={form.calibCtx} onChange={(calibCtx) => patch({ calibCtx })} hint="Tokens per sequence" />
              <div className="form-field form-field-wide">
                <label className="field-label" htmlFor="run-calib-text">
                  Calibration text file
                </label>
                <input id="run-calib-text" className="input mono" value={form.calibTextFile} placeholder="WikiText-2 where present, else sampled from the model" onChange={(e) => patch({ calibTextFile: e.target.value })} spellCheck={false} />
              </div>
            </div>
          </Card>

          <Card title="Fine-tuning" testId="finetune-settings">
            <div className="segmented segmented-wide" role="radiogroup" aria-label="Fine-tuning">
              {FT_MODES.map((m) => (
                <button key={m.id} type="button" role="radio" aria-checked={form.ftMode === m.id} aria-pressed={form.ftMode === m.id} title={m.hint} onClick={() => patch({ ftMode: m.id })}>
                  {m.label}
                </button>
              ))}
            </div>
            <p className="field-hint ft-hint">{FT_MODES.find((m) => m.id === form.ftMode)!.hint}. Sign vectors, norms and (end-to-end) the head are tuned; the codes stay as quantized.</p>
            {form.ftMode !== 'none' && (
              <div className="form-grid">
                <NumberField id="ft-epochs" label="Epochs" value={form.ftEpochs} onChange={(ftEpochs) => patch({ ftEpochs })} />
                <NumberField id="ft-lr" label="Learning rate" value={form.ftLr} onChange={(ftLr) => patch({ ftLr })} />
                <NumberField id="ft-lr-sign" label="Sign-vector learning rate" value={form.ftLrSign} onChange={(ftLrSign) => patch({ ftLrSign })} />
                <NumberField id="ft-batch" label="Batch" value={form.ftBatch} onChange={(ftBatch) => patch({ ftBatch })} />
                <NumberField id="ft-holdout" label="Held-out fraction" value={form.ftHoldout} onChange={(ftHoldout) => patch({ ftHoldout })} hint="Picks the best epoch" />
                <NumberField id="ft-patience" label="Early-stop patience" value={form.ftPatience} onChange={(ftPatience) => patch({ ftPatience })} hint="Epochs without improvement" />
              </div>
            )}
          </Card>

          <Card title="Reproducibility and speed" testId="misc-card">
            <div className="form-grid">
              <NumberField id="run-seed" label="Seed" value={form.seed} onChange={(seed) => patch({ seed })} hint="Same seed, same model, bit for bit" />
              <NumberField id="run-threads" label="Threads" value={form.threads} placeholder={info.status === 'ready' ? String(info.value.threads) : ''} onChange={(threads) => patch({ threads })} hint="Never changes the result" />
              <div className="form-field form-field-wide">
                <label className="field-label" htmlFor="run-name">
                  Run name
                </label>
                <input
                  id="run-name"
                  className="input mono"
                  value={form.name}
                  placeholder="model-2bit-e8p-<time>"
                  onChange={(e) => patch({ name: e.target.value })}
                  spellCheck={false}
                  aria-invalid={nameError ? true : undefined}
                  aria-describedby={nameError ? 'run-name-error' : undefined}
                />
                {nameError && (
                  <div id="run-name-error" className="field-hint field-error" role="alert" data-testid="run-name-error">
                    {nameError}
                  </div>
                )}
              </div>
            </div>
          </Card>
        </div>

        <aside className="run-form-side">
          <Card title="Before you start" testId="estimate-card">
            {estimate.error ? (
              <ErrorCard title="These settings do not work" message={estimate.error.message} testId="estimate-error" />
            ) : estimate.value ? (
              <>
                <div className="estimate-headline">
                  <Badge tone="accent">{estimate.value.settings.codebook.toUpperCase()}</Badge>
                  <span>
                    {estimate.value.settings.bits} bits · ρ {estimate.value.settings.rho}
                  </span>
                </div>
                <dl className="stat-grid stat-grid-2">
                  <Stat label="Time" value={<span data-testid="estimate-time">~{formatDuration(estimate.value.seconds.total)}</span>} hint={`${estimate.value.threads} threads${estimate.value.seconds.finetune > 0 ? `, ~${formatDuration(estimate.value.seconds.finetune)} of it fine-tuning` : ''}`} />
                  <Stat label="Peak memory" value={<span data-testid="estimate-memory">{formatBytes(estimate.value.peakBytes)}</span>} />
                  <Stat label="Output size" value={<span data-testid="estimate-size">{formatBytes(estimate.value.outputBytes)}</span>} />
                  <Stat label="Layers" value={estimate.value.layers} hint={`${estimate.value.tokens.toLocaleString()} calibration tokens`} />
                </dl>
              </>
            ) : (
              <p className="muted">{estimate.loading ? 'Estimating…' : 'Choose a model to see the cost.'}</p>
            )}
            <button
              type="button"
              className="btn btn-primary btn-block"
              disabled={!modelDir || !estimate.value || starting || nameError !== null}
              onClick={() => void start()}
              data-testid="start-run"
            >
              {starting ? 'Starting…' : `Start ${preset?.label ?? `${form.bits}-bit`} run`}
            </button>
          </Card>
        </aside>
      </div>
    </div>
  );
}
