// `quip bench quantize [--threads N] [--json]`: wall time and peak memory of a whole quantization run
// by phase (load, calibrate, Hessians, quantize, advance, save, evaluate) for stories260k and for a
// `quip synth` model with realistic layer sizes, beside the estimate `quip quantize` printed before
// starting. Peak memory is the process's maximum resident size when each phase last ended (it only
// grows, so each figure includes everything that ran before).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Command } from 'commander';

import { intOption } from '../cli/options.js';
import { type QuantizeEvent, resolveSettings } from '../domain/quantize/index.js';
import { runQuantizeJob } from '../engine/quantize/job.js';
import { synthModel } from '../engine/runtime/synth.js';
import { native } from '../engine/native.js';
import { sampleModelDir } from '../util/paths.js';

export interface QuantizeBenchRun {
  model: string;
  settings: string;
  wallSeconds: number;
  estimateSeconds: number;
  estimatePeakBytes: number;
  phases: Array<{ phase: string; seconds: number; peakRssBytes: number | null }>;
  peakRssBytes: number;
}

export interface QuantizeBenchResult {
  cpu: string;
  threads: number;
  runs: QuantizeBenchRun[];
}

async function benchOne(model: string, label: string, out: string, s: ReturnType<typeof resolveSettings>): Promise<QuantizeBenchRun> {
  let estimate: Extract<QuantizeEvent, { type: 'estimate' }> | null = null;
  const t0 = performance.now();
  const r = await runQuantizeJob({ model, out, settings: s, force: true, evaluation: null, onEvent: (e) => { if (e.type === 'estimate') estimate = e; } });
  const wall = (performance.now() - t0) / 1000;
  const est = estimate as Extract<QuantizeEvent, { type: 'estimate' }> | null;
  return {
    model: label,
    settings: `${s.bits}-bit ${s.codebook}, ${s.calibration.samples} x ${s.calibration.ctx} calibration tokens`,
    wallSeconds: wall,
    estimateSeconds: est?.seconds.total ?? 0,
    estimatePeakBytes: est?.peakBytes ?? 0,
    phases: Object.entries(r.record.timings).map(([phase, seconds]) => ({ phase, seconds, peakRssBytes: r.record.phasePeakRss?.[phase] ?? null })),
    peakRssBytes: r.record.peakRssBytes,
  };
}

export async function runQuantizeBench(o: { threads?: number; onStatus?: (s: string) => void }): Promise<QuantizeBenchResult> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-bench-quantize-'));
  const runs: QuantizeBenchRun[] = [];
  const threads = o.threads;
  try {
    o.onStatus?.('stories260k, 2-bit E8P');
    runs.push(await benchOne(sampleModelDir(), 'stories260k', path.join(tmp, 'stories'), resolveSettings({ bits: 2, calibSamples: 32, calibCtx: 256, threads })));
    o.onStatus?.('writing the synthetic model (hidden 1024, MLP 2816, 2 blocks, vocab 4096, F16)');
    const synth = await synthModel({ hidden: 1024, intermediate: 2816, layers: 2, heads: 16, kvHeads: 4, vocab: 4096, dtype: 'f16', seed: 3, out: path.join(tmp, 'synth-src') });
    o.onStatus?.('synthetic model, 2-bit E8P');
    runs.push(await benchOne(synth.dir, 'synth 1024x2816 x2 blocks (F16)', path.join(tmp, 'synth'), resolveSettings({ bits: 2, calibSamples: 16, calibCtx: 256, threads })));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return { cpu: native().cpuInfo().summary, threads: native().cpuInfo().threads, runs };
}

export function formatQuantizeBench(r: QuantizeBenchResult): string {
  const mib = (b: number | null) => (b === null ? '-' : `${(b / (1 << 20)).toFixed(0)} MiB`);
  const lines = [`Quantization benchmark (${r.cpu}, ${r.threads} threads)`];
  for (const run of r.runs) {
    lines.push(`${run.model}: ${run.settings}`);
    lines.push(`  wall ${run.wallSeconds.toFixed(1)} s (estimate printed before the run: ${run.estimateSeconds.toFixed(1)} s), peak memory ${mib(run.peakRssBytes)} (estimate ${mib(run.estimatePeakBytes)} + the process itself)`);
    for (const p of run.phases) lines.push(`    ${p.phase.padEnd(10)} ${p.seconds.toFixed(2).padStart(8)} s   peak by the end of its last step ${mib(p.peakRssBytes).padStart(8)}`);
  }
  return lines.join('\n');
}

export function registerQuantizeBench(bench: Command): void {
  bench
    .command('quantize')
    .description('Wall time and peak memory of quantization by phase: stories260k and a synthetic model')
    .option('--threads <n>', 'threads (default: all cores)')
    .option('--json', 'print one JSON object')
    .action(async (opts: { threads?: string; json?: boolean }) => {
      const r = await runQuantizeBench({ threads: intOption(opts.threads, '--threads'), onStatus: opts.json ? undefined : (s) => process.stderr.write(`  ... ${s}\n`) });
      process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatQuantizeBench(r)}\n`);
    });
}
