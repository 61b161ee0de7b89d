// How a run's settings read in one line ("2-bit E8P · FT block+e2e · 128×512"), so two runs that differ
// only in fine-tuning or calibration never look the same, and how runs group by their base model.
import type { QuantizeSettings, RunSummary } from '../../../../app/contract/index';
import { CODEBOOK_TABLE, DEFAULTS } from '../../../../app/domain/quantize/index';
import { baseName } from '../../format';

/** A target bits per weight as people read it: "3.0", "2.5", "2.55". */
export function targetLabel(bpw: number): string {
  return Number.isInteger(Math.round(bpw * 1000) / 100) ? bpw.toFixed(1) : String(Math.round(bpw * 100) / 100);
}

/** "2-bit E8P", "3-bit RVQ", "Scalar 4-bit": the New run presets' names (from the codebook that ran);
 * "mixed 3.0 bpw" for a run with a target bits per weight (each layer at its own width). */
export function codebookLabel(s: Pick<QuantizeSettings, 'bits' | 'codebook'> & { targetBpw?: number | null }): string {
  if (s.targetBpw != null) return `mixed ${targetLabel(s.targetBpw)} bpw`;
  const family = CODEBOOK_TABLE[s.codebook]?.family ?? 'e8p';
  return family === 'rtn' ? `Scalar ${s.bits}-bit` : `${s.bits}-bit ${family.toUpperCase()}`;
}

/** Fine-tuning in a few words: "FT block+e2e", "FT block", "no FT". */
export function finetuneLabel(s: Pick<QuantizeSettings, 'finetune'>): string {
  return s.finetune.mode === 'none' ? 'no FT' : `FT ${s.finetune.mode}`;
}

/** Calibration: "128×512", plus the text file's name when it is not the default text. */
export function calibrationLabel(s: Pick<QuantizeSettings, 'calibration'>): string {
  const c = s.calibration;
  return `${c.samples}×${c.ctx}${c.textFile ? ` ${baseName(c.textFile)}` : ''}`;
}

/** Settings that differ from the defaults, in a few words each ("no LDLQ", "σ 0.05", "seed 3"). */
export function otherSettingsLabels(s: QuantizeSettings): string[] {
  const out: string[] = [];
  if (!s.incoherence) out.push('no incoherence');
  else if (!s.rowScale) out.push('no row scales');
  if (!s.ldlq) out.push('no LDLQ');
  if (s.tuneIters > 0) out.push(`${s.tuneIters} tune passes`);
  if (s.sigma !== DEFAULTS.sigma) out.push(`σ ${s.sigma}`);
  if (s.seed !== DEFAULTS.seed) out.push(`seed ${s.seed}`);
  return out;
}

/** The whole line: "2-bit E8P · FT block+e2e · 128×512" (+ any setting off its default). */
export function settingsLabel(s: QuantizeSettings | null): string {
  if (!s) return 'settings unknown';
  return [codebookLabel(s), finetuneLabel(s), calibrationLabel(s), ...otherSettingsLabels(s)].join(' · ');
}

export interface ModelGroup<T extends Pick<RunSummary, 'modelDir' | 'modelName'>> {
  key: string;
  /** The base model's name (its folder's name). */
  name: string;
  /** The base model's folder, when known (the original model answers "Same prompt" from it). */
  modelDir: string | null;
  runs: T[];
}

/** Runs by base model, in the order each model first appears. */
export function groupByModel<T extends Pick<RunSummary, 'modelDir' | 'modelName'>>(runs: readonly T[]): Array<ModelGroup<T>> {
  const groups = new Map<string, ModelGroup<T>>();
  for (const r of runs) {
    const key = r.modelDir ?? `name:${r.modelName ?? ''}`;
    const g = groups.get(key) ?? { key, name: r.modelName ?? (r.modelDir ? baseName(r.modelDir) : 'Unknown model'), modelDir: r.modelDir, runs: [] };
    g.runs.push(r);
    groups.set(key, g);
  }
  return [...groups.values()];
}
