// Side-by-side figures of quantized folders (and full-precision ones) for `quip compare`: bits,
// true bits per linear weight including sign vectors and scales, weight files' size, perplexity with
// its text, windows and +-, mean and worst proxy loss, the run's time. Read from config.json and
// run.json, each figure by the same function the studio uses (weightFileBytes, runSeconds,
// formatPerplexity), so `quip compare` and the studio's screens read alike.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { UserError } from '../../util/errors.js';
import { safetensorsDTypes, weightFileBytes } from '../model/safetensors.js';
import { denseLayerBits, isQuantizedConfig, layerBits, layerWidths } from '../model/quantized-format.js';
import { parseQuantizationConfig } from '../runtime/quantized-model.js';
import { describePerplexity, formatPerplexity, RUN_RECORD_FILE, RunRecord, proxyLossSummary, runSeconds, type PerplexityRecord } from '../../domain/quantize/index.js';
import { formatBytes } from '../../domain/format.js';

export interface CompareRow {
  dir: string;
  name: string;
  quantized: boolean;
  codebook: string | null;
  bits: number;
  incoherence: boolean | null;
  ldlq: boolean | null;
  /** Bits per linear weight: codes + sign vectors + scales (16/32 for a full-precision folder). */
  bitsPerWeight: number;
  /** Bytes of the weight files (.safetensors): the size every face shows (weightFileBytes). */
  bytesOnDisk: number;
  perplexity: number | null;
  perplexityFull: number | null;
  perplexityText: string | null;
  /** What the perplexity was measured on, and its spread (null: not measured). */
  perplexityInfo: PerplexityRecord | null;
  meanProxyLoss: number | null;
  worstProxyLoss: number | null;
  worstLayer: string | null;
  /** The run's time: every session's active time, resumes included (runSeconds). */
  quantizeSeconds: number | null;
  /** Mixed widths (--target-bpw): how many linear layers have each width ('f16': kept at 16 bits); null when uniform. */
  widths?: Record<string, number> | null;
}

export function compareRow(dir: string): CompareRow {
  dir = path.resolve(dir);
  const cfgPath = path.join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new UserError(`${dir} has no config.json, so it is not a model folder (an unfinished run leaves none).`, 'NOT_A_MODEL');
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (err) {
    throw new UserError(`${cfgPath} is not valid JSON (${(err as Error).message}).`, 'BAD_CONFIG');
  }
  const bytesOnDisk = weightFileBytes(dir) ?? 0;
  if (!isQuantizedConfig(config)) {
    const dtype = String(config.torch_dtype ?? 'float32');
    const bits = dtype === 'float32' ? 32 : 16;
    return {
      dir, name: path.basename(dir), quantized: false, codebook: null, bits, incoherence: null, ldlq: null, bitsPerWeight: bits, bytesOnDisk,
      perplexity: null, perplexityFull: null, perplexityText: null, perplexityInfo: null, meanProxyLoss: null, worstProxyLoss: null, worstLayer: null, quantizeSeconds: null,
    };
  }
  const q = parseQuantizationConfig(dir, config);
  const layers = Object.values(q.layers);
  const dense = Object.values(q.dense_layers ?? {});
  const weights = layers.reduce((a, l) => a + l.m * l.n, 0) + dense.reduce((a, d) => a + d.m * d.n, 0);
  // Sign vectors count at their stored dtype (the safetensors header says which).
  const dtypeOf = safetensorsDTypes(path.join(dir, 'model.safetensors'), true);
  const bitsPerWeight = (layers.reduce((a, l) => a + layerBits(l, q.codebook, dtypeOf), 0) + dense.reduce((a, d) => a + denseLayerBits(d), 0)) / weights;
  let widths: Record<string, number> | null = null;
  if (q.format_version !== 1) {
    widths = {};
    for (const w of Object.values(layerWidths(q))) widths[w] = (widths[w] ?? 0) + 1;
  }
  let run: RunRecord | null = null;
  const runPath = path.join(dir, RUN_RECORD_FILE);
  if (existsSync(runPath)) {
    const parsed = RunRecord.safeParse(JSON.parse(readFileSync(runPath, 'utf8')));
    if (parsed.success) run = parsed.data;
  }
  const pl = run ? proxyLossSummary(run.layers) : null;
  const quantizeSeconds = run ? runSeconds(run) : null;
  return {
    dir, name: path.basename(dir), quantized: true, codebook: q.codebook, bits: q.bits, incoherence: q.incoherence, ldlq: q.ldlq, bitsPerWeight, bytesOnDisk,
    perplexity: run?.perplexity?.quantized ?? null, perplexityFull: run?.perplexity?.full ?? null, perplexityText: run?.perplexity?.dataset ?? null, perplexityInfo: run?.perplexity ?? null,
    meanProxyLoss: pl?.mean ?? null, worstProxyLoss: pl?.worst ?? null, worstLayer: pl?.worstLayer ?? null, quantizeSeconds, widths,
  };
}

/** "e8p 40 + rvq3 100 + rvq4 60 + 16-bit 10": a mixed model's widths, narrowest first. */
export function mixLabel(widths: Record<string, number>): string {
  return ['e8p', 'rvq3', 'rvq4', 'rtn2', 'rtn3', 'rtn4', 'f16'].filter((w) => widths[w]).map((w) => `${w === 'f16' ? '16-bit' : w} ${widths[w]}`).join(' + ');
}

export function formatCompareTable(rows: CompareRow[]): string {
  const head = ['model', 'codebook', 'bits', 'bits/weight', 'weights', 'perplexity', 'full prec.', 'proxy mean', 'proxy worst', 'time'];
  const fmt = (v: number | null, f: (x: number) => string) => (v === null ? '-' : f(v));
  const body = rows.map((r) => [
    r.name,
    r.codebook ? `${r.widths ? mixLabel(r.widths) : r.codebook}${r.incoherence === false ? ' -RHT' : ''}${r.ldlq === false ? ' -LDLQ' : ''}` : 'full',
    r.widths ? 'mixed' : String(r.bits),
    r.bitsPerWeight.toFixed(3),
    formatBytes(r.bytesOnDisk),
    fmt(r.perplexity, (x) => formatPerplexity(x, r.perplexityInfo?.stdErr)),
    fmt(r.perplexityFull, (x) => formatPerplexity(x, r.perplexityInfo?.fullStdErr)),
    fmt(r.meanProxyLoss, (x) => x.toExponential(2)),
    fmt(r.worstProxyLoss, (x) => x.toExponential(2)),
    fmt(r.quantizeSeconds, (x) => `${x.toFixed(1)} s`),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  // What each perplexity was measured on, once per distinct measurement, under the table.
  const notes = [...new Set(rows.flatMap((r) => (r.perplexityInfo ? [describePerplexity(r.perplexityInfo)] : [])))];
  const foot = [
    'weights: bytes of the .safetensors files; time: every session of the run, resumes included',
    ...(notes.length ? [`perplexity (± one standard error over windows) on ${notes.join('; ')}`] : []),
  ];
  return [line(head), ...body.map(line), '', ...foot].join('\n') + '\n';
}
