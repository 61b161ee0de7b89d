// New run: pick a model, a preset per bit width (or every setting by hand), see what the run will
// cost — time, memory and output size from the quantize job's own estimator — and start it.
import { createContext, useContext, useEffect, useMemo, useState } from 'react';
import { RunName, settingPath, type EvaluationInput, type QuantizeSettingsInput, type RunEstimate } from '../../../app/contract/index';
import {
  CODEBOOK_TABLE,
  DEFAULTS,
  FINETUNE_DEFAULTS,
  SETTING_LABELS,
  SettingsError,
  TARGET_BPW_RANGE,
  codebookFor,
  resolveSettings,
  EVAL_DEFAULTS,
  resolveEvaluation,
  textsCoincide,
  type Bits,
  type CodebookFamily,
  type FinetuneMode,
  type SettingField,
} from '../../../app/domain/quantize/index';
import { BrowseButton } from '../components/files/FileBrowser';
import { Badge, Card, ErrorCard, Stat } from '../components/ui';
import { formatBytes, formatDuration } from '../../../app/domain/format';
import { targetLabel } from '../components/run/labels';
import { baseName } from '../format';
import { useStudio } from '../state/context';
import { useRuns } from '../state/runs-context';
import { useNavigation, useNewRun } from '../state/ui';
import { toFailure, type Failure } from '../state/studio';

interface Preset {
  id: string;
  label: string;
  hint: string;
  bits: Bits;
  codebook: CodebookFamily;
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
  bits: Bits;
  codebook: CodebookFamily;
  /** A target bits per weight for the whole model (mixed widths); off: every layer at `bits`. */
  targetOn: boolean;
  targetBpw: string;
  incoherence: boolean;
  rowScale: boolean;
  ldlq: boolean;
  sigma: string;
  /** Empty: the codebook's default. */
  rho: string;
  tuneIters: string;
  calibTextFile: string;
  calibSamples: string;
  /** The perplexity's text (empty: WikiText-2 test, held out), windows and their length. */
  evalTextFile: string;
  evalWindows: string;
  evalCtx: string;
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
  bits: DEFAULTS.bits,
  codebook: DEFAULTS.codebook,
  targetOn: false,
  targetBpw: '3',
  incoherence: DEFAULTS.incoherence,
  rowScale: DEFAULTS.rowScale,
  ldlq: DEFAULTS.ldlq,
  sigma: String(DEFAULTS.sigma),
  rho: '',
  tuneIters: String(DEFAULTS.tuneIters),
  calibTextFile: '',
  calibSamples: String(DEFAULTS.calibSamples),
  evalTextFile: '',
  evalWindows: String(EVAL_DEFAULTS.windows),
  evalCtx: String(EVAL_DEFAULTS.ctx),
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
  { id: 'none', label: 'Off', hint: 'No tuning: the model is saved as quantized' },
  { id: 'block', label: 'In-block', hint: 'Tune each block to match the original' },
  { id: 'block+e2e', label: 'In-block + end-to-end', hint: 'Then distil the whole model' },
];

function toSettings(f: Form): QuantizeSettingsInput {
  const num = (s: string) => (s.trim() === '' ? undefined : Number(s));
  return {
    bits: f.bits,
    // A target mixes E8P and RVQ widths whatever preset was chosen (the scalar baseline has none).
    codebook: f.targetOn && f.codebook === 'rtn' ? 'e8p' : f.codebook,
    targetBpw: f.targetOn ? num(f.targetBpw) : null,
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

function toEvaluation(f: Form): EvaluationInput {
  const num = (s: string) => (s.trim() === '' ? undefined : Number(s));
  return { textFile: f.evalTextFile.trim() || null, windows: num(f.evalWindows), ctx: num(f.evalCtx) };
}

function defaultRho(f: Form): number | null {
  try {
    return CODEBOOK_TABLE[codebookFor(f.bits, f.codebook)].defaultRho;
  } catch {
    return null;
  }
}

/** Every number field: its input, the setting it sets (as app/domain names it), whole numbers or not. */
const NUMBER_FIELDS: Array<{ key: keyof Form; id: string; setting: SettingField; whole: boolean; finetune?: boolean; target?: boolean }> = [
  { key: 'targetBpw', id: 'run-target-bpw', setting: 'targetBpw', whole: false, target: true },
  { key: 'sigma', id: 'run-sigma', setting: 'sigma', whole: false },
  { key: 'rho', id: 'run-rho', setting: 'rho', whole: false },
  { key: 'tuneIters', id: 'run-tune', setting: 'tuneIters', whole: true },
  { key: 'calibSamples', id: 'run-samples', setting: 'calibSamples', whole: true },
  { key: 'calibCtx', id: 'run-ctx', setting: 'calibCtx', whole: true },
  { key: 'seed', id: 'run-seed', setting: 'seed', whole: true },
  { key: 'threads', id: 'run-threads', setting: 'threads', whole: true },
  { key: 'ftEpochs', id: 'ft-epochs', setting: 'finetune.epochs', whole: true, finetune: true },
  { key: 'ftLr', id: 'ft-lr', setting: 'finetune.lr', whole: false, finetune: true },
  { key: 'ftLrSign', id: 'ft-lr-sign', setting: 'finetune.lrSign', whole: false, finetune: true },
  { key: 'ftBatch', id: 'ft-batch', setting: 'finetune.batch', whole: true, finetune: true },
  { key: 'ftHoldout', id: 'ft-holdout', setting: 'finetune.holdout', whole: false, finetune: true },
  { key: 'ftPatience', id: 'ft-patience', setting: 'finetune.patience', whole: true, finetune: true },
  { key: 'evalWindows', id: 'eval-windows', setting: 'evaluation.windows', whole: true },
  { key: 'evalCtx', id: 'eval-ctx', setting: 'evaluation.ctx', whole: true },
];

/** Fewer calibration sequences than this calibrate poorly (a warning, not an error). */
const FEW_SAMPLES = 8;

interface FieldNote {
  error?: string;
  warning?: string;
}

/**
 * What is wrong with the form, field by field, in its own words: text that is not a number (checked
 * here: it would reach the server as null), then the domain's own resolveSettings (the rule the job
 * applies) for values out of range. `other`: a problem no single field shows (a codebook pairing).
 */
function formProblems(f: Form): { notes: Record<string, FieldNote>; errors: string[]; other: string | null } {
  const notes: Record<string, FieldNote> = {};
  const errors: string[] = [];
  let other: string | null = null;
  for (const n of NUMBER_FIELDS) {
    if ((n.finetune && f.ftMode === 'none') || (n.target && !f.targetOn)) continue;
    const v = String(f[n.key]).trim();
    if (v !== '' && !Number.isFinite(Number(v))) {
      const example = String(initialForm[n.key]);
      notes[n.id] = { error: `"${v}" is not a number: type ${n.whole ? 'a whole number' : 'a number'}${example ? `, like ${example}` : ', or leave it empty for the default'}.` };
      errors.push(SETTING_LABELS[n.setting]);
    }
  }
  if (!errors.length) {
    try {
      resolveSettings(toSettings(f));
      resolveEvaluation(toEvaluation(f));
    } catch (err) {
      if (!(err instanceof SettingsError)) throw err;
      const n = NUMBER_FIELDS.find((x) => x.setting === err.field);
      if (n) {
        notes[n.id] = { error: err.detail.charAt(0).toUpperCase() + err.detail.slice(1) };
        errors.push(SETTING_LABELS[err.field]);
      } else other = err.message;
    }
  }
  const samples = Number(f.calibSamples.trim() || DEFAULTS.calibSamples);
  if (!notes['run-samples'] && Number.isFinite(samples) && samples >= 1 && samples < FEW_SAMPLES) {
    notes['run-samples'] = { warning: `Under ${FEW_SAMPLES} samples the model comes out clearly worse; ${DEFAULTS.calibSamples} is the default.` };
  }
  // The defaults never coincide (validation calibrates, test evaluates); a chosen file may.
  if (textsCoincide(f.calibTextFile.trim() || null, f.evalTextFile.trim() || null)) {
    notes['run-eval-text'] = { warning: 'The perplexity would be measured on the text the run calibrates on: it flatters the model (fine-tuning most). Choose held-out text, e.g. leave both empty for WikiText-2 validation and test.' };
  }
  return { notes, errors, other };
}

/** The notes of the form's fields, by input id (NumberField shows its own). */
const FieldNotes = createContext<Record<string, FieldNote>>({});

function NumberField(props: { id: string; label: string; value: string; onChange: (v: string) => void; placeholder?: string; step?: string; hint?: string }) {
  const note = useContext(FieldNotes)[props.id];
  const noteId = note ? `${props.id}-note` : undefined;
  return (
    <div className="form-field">
      <label className="field-label" htmlFor={props.id}>
        {props.label}
      </label>
      <input
        id={props.id}
        className={`input mono ${note?.error ? 'input-invalid' : ''}`}
        inputMode="decimal"
        value={props.value}
        placeholder={props.placeholder}
        onChange={(e) => props.onChange(e.target.value)}
        aria-invalid={note?.error ? true : undefined}
        aria-describedby={noteId}
      />
      {note?.error ? (
        <div id={noteId} className="field-hint field-error" role="alert" data-testid={`${props.id}-error`}>
          {note.error}
        </div>
      ) : note?.warning ? (
        <div id={noteId} className="field-hint field-warning" data-testid={`${props.id}-warning`}>
          {note.warning}
        </div>
      ) : (
        props.hint && <div className="field-hint">{props.hint}</div>
      )}
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

/**
 * A target bits per weight for the whole model (--target-bpw): a switch, then a slider and a number
 * field kept in step. On, the presets are disabled: the job gives each layer its own width.
 */
function TargetBpw({ form, patch }: { form: Form; patch: (p: Partial<Form>) => void }) {
  const [min, max] = TARGET_BPW_RANGE;
  const value = Number(form.targetBpw);
  const sliderValue = Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : 3;
  return (
    <div className={`target-bpw ${form.targetOn ? 'target-bpw-on' : ''}`} data-testid="target-bpw">
      <Switch
        label="Target bits per weight"
        hint={form.targetOn ? 'Mixed widths: the presets above are off' : 'Off: every layer at the preset\'s bits'}
        checked={form.targetOn}
        onChange={(targetOn) => patch({ targetOn })}
      />
      {form.targetOn && (
        <>
          <div className="target-bpw-row">
            <input
              type="range"
              className="target-bpw-slider"
              min={min}
              max={max}
              step={0.1}
              value={sliderValue}
              aria-label="Target bits per weight (slider)"
              onChange={(e) => patch({ targetBpw: Number(e.target.value).toFixed(1) })}
              data-testid="target-bpw-slider"
            />
            <NumberField id="run-target-bpw" label="Bits per weight" value={form.targetBpw} onChange={(targetBpw) => patch({ targetBpw })} />
          </div>
          <p className="field-hint" data-testid="target-bpw-hint">
            Each linear layer gets 2, 3 or 4 bits, or stays 16-bit, by its measured sensitivity, so the whole model lands at this size.
          </p>
        </>
      )}
    </div>
  );
}

/** "between 9 s and 15 s · " (the range the time should fall in), or nothing for an older studio. */
function timeRange(e: RunEstimate): string {
  return e.time ? `between ${formatDuration(e.time.low)} and ${formatDuration(e.time.high)} · ` : '';
}

/** Where the time estimate's rates come from, in words. */
function timeBasis(e: RunEstimate): string | undefined {
  const t = e.time;
  if (!t) return undefined;
  const phases = `calibration ${formatDuration(t.phases.forward)}, quantization ${formatDuration(t.phases.quantize)}, fine-tuning ${formatDuration(t.phases.train)}, perplexity ${formatDuration(t.phases.evaluate)}, start, load and save ${formatDuration(t.phases.fixed)}`;
  const basis =
    t.basis === 'runs'
      ? `rates measured on this machine (the nearest ${t.observations} finished jobs)`
      : t.basis === 'probe'
        ? 'rates measured on this machine by a short probe run'
        : t.probing
          ? 'built-in rates, while a short probe run measures this machine'
          : 'built-in rates (not yet measured on this machine)';
  return `${phases}; ${basis}`;
}

/** "~12 s", or "under 1 s" (never "~< 1 s"). */
function approxDuration(seconds: number): string {
  return seconds < 1 ? 'under 1 s' : `~${formatDuration(seconds)}`;
}

/** The name the studio gives a run left unnamed (app/services/runs: "<model>-<bits>bit-<codebook>-<time>"). */
function defaultRunName(modelDir: string, f: Form): string {
  const base = (modelDir ? baseName(modelDir) : 'model').replace(/[^\w.-]+/g, '-').replace(/^[.-]+/, '').slice(0, 80) || 'model';
  let codebook: string = f.codebook;
  try {
    codebook = codebookFor(f.bits, f.codebook);
  } catch {
    // an impossible pair shows the family; the estimate says what is wrong
  }
  if (f.targetOn) return `${base}-mixed-${f.targetBpw.trim() || '?'}bpw-<time>`;
  return `${base}-${f.bits}bit-${codebook}-<time>`;
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
  // The model the person came from (Models' inspection, "Quantize this model", a run's source).
  const wanted = useNewRun((s) => s.modelDir);
  const setWanted = useNewRun((s) => s.setModelDir);

  const models = useMemo(() => {
    const list = recent.map((r) => ({ path: r.path, name: r.name }));
    const sample = info.status === 'ready' ? info.value.sampleModel : null;
    if (sample && !list.some((m) => m.path === sample)) list.push({ path: sample, name: `${baseName(sample)} (sample)` });
    if (wanted && !list.some((m) => m.path === wanted)) list.unshift({ path: wanted, name: baseName(wanted) });
    return list;
  }, [recent, info, wanted]);
  const opened = inspection.status === 'ready' ? inspection.value.source.path : null;
  const [modelDir, setModelDir] = useState<string>(() => wanted ?? '');
  useEffect(() => {
    if (!modelDir && models.length) setModelDir(opened && models.some((m) => m.path === opened) ? opened : models[0]!.path);
  }, [models, opened, modelDir]);

  const [form, setForm] = useState<Form>(initialForm);
  const patch = (p: Partial<Form>) => setForm((f) => ({ ...f, ...p }));
  const settings = useMemo(() => toSettings(form), [form]);
  const evaluation = useMemo(() => toEvaluation(form), [form]);
  const problems = useMemo(() => formProblems(form), [form]);
  const invalid = problems.errors.length > 0 || problems.other !== null;

  const [estimate, setEstimate] = useState<{ value: RunEstimate | null; error: Failure | null; loading: boolean }>({ value: null, error: null, loading: false });
  useEffect(() => {
    if (!modelDir) return;
    // A marked field says what is wrong; nothing is asked of the server until it is fixed.
    if (invalid) {
      setEstimate({ value: null, error: null, loading: false });
      return;
    }
    let live = true;
    setEstimate((e) => ({ ...e, loading: true }));
    const t = setTimeout(() => {
      estimateRun(modelDir, settings, evaluation).then(
        (value) => live && setEstimate({ value, error: null, loading: false }),
        (err) => live && setEstimate({ value: null, error: toFailure(err), loading: false }),
      );
    }, 200);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [modelDir, settings, evaluation, estimateRun, invalid]);

  // The contract's own rule for a run name, checked as it is typed (the server checks it again).
  const nameError = useMemo(() => {
    const name = form.name.trim();
    if (!name) return null;
    const checked = RunName.safeParse(name);
    return checked.success ? null : (checked.error.issues[0]?.message ?? 'This run name cannot be used.');
  }, [form.name]);

  // A field the studio refused (the contract's or the domain's rule, with the field's path): marked
  // under its input like the form's own checks, in the same words.
  const serverNotes = useMemo(() => {
    const notes: Record<string, FieldNote> = {};
    for (const f of estimate.error?.fields ?? []) {
      const n = NUMBER_FIELDS.find((x) => settingPath(x.setting) === f.path);
      if (n && !problems.notes[n.id]?.error) notes[n.id] = { error: f.message };
    }
    return notes;
  }, [estimate.error, problems.notes]);
  const serverMarked = Object.keys(serverNotes).length > 0;
  const notes = useMemo(() => ({ ...problems.notes, ...serverNotes }), [problems.notes, serverNotes]);

  const [starting, setStarting] = useState(false);
  const start = async () => {
    setStarting(true);
    const run = await startRun(modelDir, settings, form.name.trim() || undefined, evaluation);
    setStarting(false);
    if (run) go('run');
  };

  const preset = form.targetOn ? undefined : PRESETS.find((p) => p.bits === form.bits && p.codebook === form.codebook);
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
        <FieldNotes.Provider value={notes}>
        <div className="run-form-main">
          <Card title="Model" testId="run-model-card">
            {models.length === 0 ? (
              <p className="muted">Open a model on the Models page first; it appears here.</p>
            ) : (
              <>
                <label className="field-label" htmlFor="run-model">
                  Model to quantize
                </label>
                <select id="run-model" className="input" value={modelDir} onChange={(e) => (setModelDir(e.target.value), setWanted(e.target.value))}>
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
                  disabled={form.targetOn}
                  title={form.targetOn ? 'A target bits per weight chooses each layer\'s width; turn it off to pick one width for every layer' : undefined}
                  onClick={() => patch({ bits: p.bits, codebook: p.codebook, rho: '' })}
                >
                  <span className="preset-label">{p.label}</span>
                  <span className="preset-hint">{p.hint}</span>
                </button>
              ))}
            </div>
            <TargetBpw form={form} patch={patch} />
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
                <div className="field-row">
                  <input id="run-calib-text" className="input mono" value={form.calibTextFile} placeholder="WikiText-2 validation (shipped with the studio)" onChange={(e) => patch({ calibTextFile: e.target.value })} spellCheck={false} />
                  <BrowseButton choose="text" testId="browse-calib-text" onChoose={(calibTextFile) => patch({ calibTextFile })} />
                </div>
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
            <p className="field-hint ft-hint">{FT_MODES.find((m) => m.id === form.ftMode)!.hint}.{form.ftMode !== 'none' && ' Sign vectors, norms and (end-to-end) the head are tuned; the codes stay as quantized.'}</p>
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

          <Card title="Perplexity" testId="evaluation-card">
            <p className="field-hint">
              Measured after quantizing, on the model and its source over the same windows; shown with ± one standard error over windows.
            </p>
            <div className="form-grid">
              <NumberField id="eval-windows" label="Windows" value={form.evalWindows} onChange={(evalWindows) => patch({ evalWindows })} hint="More windows: a tighter ±, a longer run" />
              <NumberField id="eval-ctx" label="Tokens per window" value={form.evalCtx} onChange={(evalCtx) => patch({ evalCtx })} hint="At most the model's context" />
              <div className="form-field form-field-wide">
                <label className="field-label" htmlFor="run-eval-text">
                  Evaluation text file
                </label>
                <div className="field-row">
                  <input
                    id="run-eval-text"
                    className="input mono"
                    value={form.evalTextFile}
                    placeholder="WikiText-2 test (held out from the default calibration text)"
                    onChange={(e) => patch({ evalTextFile: e.target.value })}
                    spellCheck={false}
                    aria-describedby={problems.notes['run-eval-text'] ? 'run-eval-text-note' : undefined}
                  />
                  <BrowseButton choose="text" testId="browse-eval-text" onChoose={(evalTextFile) => patch({ evalTextFile })} />
                </div>
                {problems.notes['run-eval-text']?.warning && (
                  <div id="run-eval-text-note" className="field-hint field-warning" data-testid="run-eval-text-warning">
                    {problems.notes['run-eval-text'].warning}
                  </div>
                )}
              </div>
            </div>
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
                  placeholder={defaultRunName(modelDir, form)}
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
        </FieldNotes.Provider>

        <aside className="run-form-side">
          <Card title="Before you start" testId="estimate-card">
            {problems.errors.length > 0 ? (
              <p className="field-error" role="status" data-testid="form-problems">
                Fix {problems.errors.join(', ')} (marked) to see the cost and start.
              </p>
            ) : problems.other ? (
              <ErrorCard title="These settings do not work" message={problems.other} testId="estimate-error" />
            ) : estimate.error && serverMarked ? (
              <p className="field-error" role="status" data-testid="form-problems">
                Fix {(estimate.error.fields ?? []).map((f) => f.label).join(', ')} (marked) to see the cost and start.
              </p>
            ) : estimate.error ? (
              <ErrorCard title="These settings do not work" message={estimate.error.message} testId="estimate-error" />
            ) : estimate.value ? (
              <>
                <div className="estimate-headline">
                  {estimate.value.settings.targetBpw !== null ? (
                    <>
                      <Badge tone="accent">MIXED</Badge>
                      <span data-testid="estimate-target">{targetLabel(estimate.value.settings.targetBpw)} bits per weight · 2/3/4/16-bit layers</span>
                    </>
                  ) : (
                    <>
                      <Badge tone="accent">{estimate.value.settings.codebook.toUpperCase()}</Badge>
                      <span>
                        {estimate.value.settings.bits} bits · ρ {estimate.value.settings.rho}
                      </span>
                    </>
                  )}
                </div>
                <dl className="stat-grid stat-grid-2">
                  <Stat label="Time" value={<span data-testid="estimate-time" title={timeBasis(estimate.value)}>{approxDuration(estimate.value.time?.seconds ?? estimate.value.seconds.total)}</span>} hint={`${timeRange(estimate.value)}${estimate.value.threads} threads${estimate.value.seconds.allocation ? `, ${approxDuration(estimate.value.seconds.allocation)} of it measuring each layer's sensitivity` : ''}${estimate.value.seconds.finetune > 0 ? `, ${approxDuration(estimate.value.seconds.finetune)} of it fine-tuning` : ''}`} />
                  <Stat label="Peak memory" value={<span data-testid="estimate-memory">{formatBytes(estimate.value.peakBytes)}</span>} />
                  <Stat label="Weights on disk" value={<span data-testid="estimate-size">{formatBytes(estimate.value.outputBytes)}</span>} hint=".safetensors files" />
                  <Stat label="Layers" value={estimate.value.layers} hint={`${estimate.value.tokens.toLocaleString()} calibration tokens`} />
                </dl>
              </>
            ) : (
              <p className="muted">{estimate.loading ? 'Estimating…' : 'Choose a model to see the cost.'}</p>
            )}
            <button
              type="button"
              className="btn btn-primary btn-block"
              disabled={!modelDir || !estimate.value || invalid || starting || nameError !== null}
              onClick={() => void start()}
              data-testid="start-run"
            >
              {starting ? 'Starting…' : `Start ${form.targetOn ? `mixed ${Number.isFinite(Number(form.targetBpw)) ? targetLabel(Number(form.targetBpw)) : form.targetBpw.trim()} bpw` : (preset?.label ?? `${form.bits}-bit`)} run`}
            </button>
          </Card>
        </aside>
      </div>
    </div>
  );
}
