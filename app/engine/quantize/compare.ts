// Side-by-side figures of quantized folders (and full-precision ones) for `quip compare` and the
// Compare view: bits, true bits per linear weight including sign vectors and scales, size on disk,
// perplexity, mean and worst proxy loss, quantization time. Read from config.json and run.json.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import { UserError } from '../../util/errors.js';
import { safetensorsDTypes } from '../model/safetensors.js';
import { isQuantizedConfig, layerBits } from '../model/quantized-format.js';
import { parseQuantizationConfig } from '../runtime/quantized-model.js';
import { RUN_RECORD_FILE, RunRecord, proxyLossSummary } from '../../domain/quantize/index.js';

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
  bytesOnDisk: number;
  perplexity: number | null;
  perplexityFull: number | null;
  perplexityText: string | null;
  meanProxyLoss: number | null;
  worstProxyLoss: number | null;
  worstLayer: string | null;
  quantizeSeconds: number | null;
}

function folderBytes(dir: string): number {
  let total = 0;
  for (const f of readdirSync(dir)) {
    const p = path.join(dir, f);
    const st = statSync(p);
    total += st.isDirectory() ? folderBytes(p) : st.size;
  }
  return total;
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
  const bytesOnDisk = folderBytes(dir);
  if (!isQuantizedConfig(config)) {
    const dtype = String(config.torch_dtype ?? 'float32');
    const bits = dtype === 'float32' ? 32 : 16;
    return {
      dir, name: path.basename(dir), quantized: false, codebook: null, bits, incoherence: null, ldlq: null, bitsPerWeight: bits, bytesOnDisk,
      perplexity: null, perplexityFull: null, perplexityText: null, meanProxyLoss: null, worstProxyLoss: null, worstLayer: null, quantizeSeconds: null,
    };
  }
  const q = parseQuantizationConfig(dir, config);
  const layers = Object.values(q.layers);
  const weights = layers.reduce((a, l) => a + l.m * l.n, 0);
  // Sign vectors count at their stored dtype (the safetensors header says which).
  const dtypeOf = safetensorsDTypes(path.join(dir, 'model.safetensors'), true);
  const bitsPerWeight = layers.reduce((a, l) => a + layerBits(l, q.codebook, dtypeOf), 0) / weights;
  let run: RunRecord | null = null;
  const runPath = path.join(dir, RUN_RECORD_FILE);
  if (existsSync(runPath)) {
    const parsed = RunRecord.safeParse(JSON.parse(readFileSync(runPath, 'utf8')));
    if (parsed.success) run = parsed.data;
  }
  const pl = run ? proxyLossSummary(run.layers) : null;
  const quantizeSeconds = run ? Object.entries(run.timings).filter(([k]) => k !== 'evaluate').reduce((a, [, v]) => a + v, 0) : null;
  return {
    dir, name: path.basename(dir), quantized: true, codebook: q.codebook, bits: q.bits, incoherence: q.incoherence, ldlq: q.ldlq, bitsPerWeight, bytesOnDisk,
    perplexity: run?.perplexity?.quantized ?? null, perplexityFull: run?.perplexity?.full ?? null, perplexityText: run?.perplexity?.dataset ?? null,
    meanProxyLoss: pl?.mean ?? null, worstProxyLoss: pl?.worst ?? null, worstLayer: pl?.worstLayer ?? null, quantizeSeconds,
  };
}

export function formatCompareTable(rows: CompareRow[]): string {
  const head = ['model', 'codebook', 'bits', 'bits/weight', 'size', 'perplexity', 'full prec.', 'proxy mean', 'proxy worst', 'quant. time'];
  const fmt = (v: number | null, f: (x: number) => string) => (v === null ? '-' : f(v));
  const body = rows.map((r) => [
    r.name,
    r.codebook ? `${r.codebook}${r.incoherence === false ? ' -RHT' : ''}${r.ldlq === false ? ' -LDLQ' : ''}` : 'full',
    String(r.bits),
    r.bitsPerWeight.toFixed(3),
    r.bytesOnDisk >= 1 << 20 ? `${(r.bytesOnDisk / (1 << 20)).toFixed(1)} MiB` : `${(r.bytesOnDisk / 1024).toFixed(1)} KiB`,
    fmt(r.perplexity, (x) => x.toFixed(3)),
    fmt(r.perplexityFull, (x) => x.toFixed(3)),
    fmt(r.meanProxyLoss, (x) => x.toExponential(2)),
    fmt(r.worstProxyLoss, (x) => x.toExponential(2)),
    fmt(r.quantizeSeconds, (x) => `${x.toFixed(1)} s`),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), ...body.map(line)].join('\n') + '\n';
}
