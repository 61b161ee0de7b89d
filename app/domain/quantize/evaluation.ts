// How a perplexity is measured and told: the one default the studio and `quip quantize` share (text,
// window length, window count), the spread of a measurement (the standard error of the mean NLL over
// windows, as a +- on the perplexity, the way llama-perplexity prints one), the name of the text, and
// the line every face prints beside the figure ("WikiText-2 test, 40 x 512 tokens", "calibrated on
// this text"). Pure: the renderer, the CLI and the job all import it.
import { z } from 'zod';

import { SettingsError } from './errors.js';

/**
 * Windows of 512 tokens (the usual convention, and the CLI's window since its first version), 40 of
 * them, the same in the studio and `quip quantize`. Measured (docs/perplexity.md): on WikiText-2
 * test the mean NLL of a 512-token window spreads with a standard deviation of 0.34 nats on
 * SmolLM2-135M (0.60 on stories260k, a TinyStories model), so the figure itself carries +-5.4% at
 * 40 windows; under 2% would take ~300 windows, 7x the time. The comparison that matters, a
 * quantized model against its source on the same windows, spreads with 0.031 nats (SmolLM2 4-bit):
 * +-0.5% at 40 windows. Both +- are recorded and shown. A model with a shorter context uses windows
 * of its context.
 */
export const EVAL_DEFAULTS = { ctx: 512, windows: 40 } as const;

/** The texts the studio ships (assets/wikitext-2-raw) by file name, with the name people read. */
const SHIPPED_TEXTS: Record<string, string> = {
  'wiki.test.raw': 'WikiText-2 test',
  'wiki.valid.raw': 'WikiText-2 validation',
  'wiki.train.raw': 'WikiText-2 train',
  'wiki.train.head.raw': 'WikiText-2 train (head)',
};

function fileName(p: string): string {
  const parts = p.split(/[\\/]/);
  return parts[parts.length - 1] || p;
}

/** "WikiText-2 test" for the shipped test split, else the file's name ("notes.txt"). */
export function textName(file: string): string {
  return SHIPPED_TEXTS[fileName(file)] ?? fileName(file);
}

/** The same text file, compared by path (separators and a trailing slash aside). */
export function sameText(a: string | null | undefined, b: string | null | undefined): boolean {
  if (!a || !b) return false;
  const norm = (p: string) => p.replace(/\\/g, '/').replace(/\/+$/, '');
  return norm(a) === norm(b);
}

/**
 * The spread of a perplexity from the mean NLL of each window (nats per scored token): the standard
 * error of their mean, `sd / sqrt(windows)`, and the +- it puts on the perplexity (to first order,
 * ppl * se). One window: no spread (null).
 */
export function perplexitySpread(windowNll: readonly number[]): { meanNll: number; stdErr: number | null } {
  const n = windowNll.length;
  if (n === 0) return { meanNll: NaN, stdErr: null };
  const mean = windowNll.reduce((a, x) => a + x, 0) / n;
  if (n < 2) return { meanNll: mean, stdErr: null };
  const variance = windowNll.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
  return { meanNll: mean, stdErr: Math.sqrt(variance / n) };
}

/** The +- on a perplexity with that standard error of the mean NLL (nats). */
export function perplexityPlusMinus(ppl: number, stdErr: number | null | undefined): number | null {
  return stdErr === null || stdErr === undefined || !Number.isFinite(stdErr) ? null : ppl * stdErr;
}

/** Digits that show the figure to about its spread: 2 decimals under 100, 1 under 1000, else none. */
function pplDigits(ppl: number): number {
  return ppl < 100 ? 2 : ppl < 1000 ? 1 : 0;
}

/** "193.3 ± 3.1" (or "193.3" when the spread is unknown); "–" when there is no figure. */
export function formatPerplexity(ppl: number | null | undefined, stdErr?: number | null): string {
  if (ppl === null || ppl === undefined || !Number.isFinite(ppl)) return '–';
  const d = pplDigits(ppl);
  const pm = perplexityPlusMinus(ppl, stdErr);
  return pm === null ? ppl.toFixed(d) : `${ppl.toFixed(d)} ± ${pm.toFixed(d)}`;
}

/** What a perplexity was measured on, as the run record keeps it (app/domain/quantize/record.ts). */
export interface PerplexityMeasure {
  /** The evaluation text's path. */
  dataset: string;
  /** Its name for people; absent in records from before it was kept (textName(dataset) then). */
  text?: string;
  ctx: number;
  windows: number;
  /** The run calibrated (and fine-tuned) on this very text (absent: not known, or no). */
  calibratedOnText?: boolean;
}

/** "WikiText-2 test, 40 windows of 512 tokens" (+ " · calibrated on this text" when it was). */
export function describePerplexity(p: PerplexityMeasure): string {
  const name = p.text ?? textName(p.dataset);
  return `${name}, ${p.windows} window${p.windows === 1 ? '' : 's'} of ${p.ctx} tokens${p.calibratedOnText ? ' · calibrated on this text' : ''}`;
}

/** Said next to a perplexity measured on the text the run calibrated (and fine-tuned) on. */
export const CALIBRATED_ON_TEXT_NOTE =
  'calibrated on this text: the figure flatters the model (fine-tuning especially); evaluate on held-out text to compare with other models';

/** How a run measures its perplexity after quantizing, as resolved when it starts (the studio keeps
 * it in the run's sidecar, so a resume measures the same way). */
export const EvaluationSettings = z.object({
  /** A UTF-8 text file; null = WikiText-2 test, shipped with the studio (held out from the default
   * calibration text, WikiText-2 validation). */
  textFile: z.string().nullable(),
  ctx: z.number().int().min(2).max(1 << 17),
  windows: z.number().int().min(1).max(100_000),
  /** Also score the source model on the same windows. */
  full: z.boolean(),
});
export type EvaluationSettings = z.infer<typeof EvaluationSettings>;

/** The evaluation as people give it (anything left out takes its default); `off`: no perplexity. */
export const EvaluationInput = z.object({
  off: z.boolean().optional(),
  textFile: z.string().nullable().optional(),
  ctx: z.number().optional(),
  windows: z.number().optional(),
  full: z.boolean().optional(),
});
export type EvaluationInput = z.infer<typeof EvaluationInput>;

/** Fills the defaults (EVAL_DEFAULTS, the held-out shipped text) and checks every value; null: off. */
export function resolveEvaluation(input: EvaluationInput = {}): EvaluationSettings | null {
  if (input.off) return null;
  const windows = input.windows ?? EVAL_DEFAULTS.windows;
  if (!(Number.isInteger(windows) && windows >= 1 && windows <= 100_000)) {
    throw new SettingsError('evaluation.windows', `${windows} is out of range: use a whole number of windows from 1 to 100,000 (default ${EVAL_DEFAULTS.windows}).`);
  }
  const ctx = input.ctx ?? EVAL_DEFAULTS.ctx;
  if (!(Number.isInteger(ctx) && ctx >= 2 && ctx <= 1 << 17)) {
    throw new SettingsError('evaluation.ctx', `${ctx} is out of range: use a whole number of tokens from 2 up (default ${EVAL_DEFAULTS.ctx}).`);
  }
  const textFile = input.textFile?.trim() || null;
  return { textFile, ctx, windows, full: input.full ?? true };
}

/** The change of a quantized model's perplexity against its source on the same windows, with the
 * +- of the paired difference: "+46.5% ± 1.5%". */
export function formatPerplexityChange(ppl: number, full: number, ratioStdErr?: number | null): string {
  const ratio = ppl / full;
  const pct = (x: number) => `${(100 * x).toFixed(Math.abs(100 * x) < 10 ? 1 : 0)}%`;
  const change = `${ratio >= 1 ? '+' : '−'}${pct(Math.abs(ratio - 1))}`;
  return ratioStdErr === null || ratioStdErr === undefined ? change : `${change} ± ${pct(ratio * ratioStdErr)}`;
}

/** Tokens the evaluation runs through the models (the estimate's evaluation phase): windows of at
 * most the model's context, twice when the source is scored too. */
export function evaluationTokens(e: EvaluationSettings | null, contextLength: number): number {
  return e ? Math.min(e.ctx, contextLength) * e.windows * (e.full ? 2 : 1) : 0;
}

/** The default texts by name: calibration on WikiText-2 validation, evaluation on WikiText-2 test. */
export const DEFAULT_TEXT_NAMES = { calibration: 'WikiText-2 validation', evaluation: 'WikiText-2 test' } as const;

/**
 * Whether a run would be evaluated on the text it calibrates on (null = that use's default text):
 * the same file, or a file that is the other use's default (e.g. calibrating on wiki.test.raw and
 * evaluating on the default, WikiText-2 test). The defaults themselves never coincide.
 */
export function textsCoincide(calibration: string | null, evaluation: string | null): boolean {
  if (calibration && evaluation) return sameText(calibration, evaluation) || (textName(calibration) === textName(evaluation) && textName(calibration) in REVERSE_SHIPPED);
  if (calibration) return textName(calibration) === DEFAULT_TEXT_NAMES.evaluation;
  if (evaluation) return textName(evaluation) === DEFAULT_TEXT_NAMES.calibration;
  return false;
}
const REVERSE_SHIPPED: Record<string, true> = Object.fromEntries(Object.values(SHIPPED_TEXTS).map((n) => [n, true]));
