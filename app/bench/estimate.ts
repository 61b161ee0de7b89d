// `quip bench estimate [--model DIR]... [--synth] [--bits 2,3,4] [--ft none,block+e2e] [--threads N] [--no-probe] [--json]`:
// the time the studio estimates before a run against the time the run takes, on this machine, for
// each model x bits x fine-tuning. Three estimates beside each actual: the built-in FLOP model alone
// (what the studio showed before machine rates), after the first-time probe only (what a new user sees
// first), and after the probe plus every run the bench finished before this one (the studio refines
// its rates from finished runs the same way). The studio's defaults otherwise: 128 x 512 calibration
// tokens, 5 fine-tuning epochs, the perplexity on 40 windows of 512 tokens of WikiText-2 test with the
// source scored too. Actual = the run record's time (from the job's start: model load, every phase,
// save). Goal (issue #21): every actual inside the shown range, the range's midpoint within +-35%.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Command } from 'commander';

import { intOption } from '../cli/options.js';
import { formatSeconds } from '../domain/format.js';
import {
  addObservation, calibrateEstimate, estimateRun, evaluationTokens, modelParams, predictedGroups, resolveEvaluation, resolveSettings, runSeconds, type MachineRates,
} from '../domain/quantize/index.js';
import { parseArchitecture, readConfig } from '../engine/model/config.js';
import { weightFileBytes } from '../engine/model/safetensors.js';
import { defaultEvalText, runQuantizeJob } from '../engine/quantize/job.js';
import { setEngineThreads } from '../engine/runtime/native-model.js';
import { synthModel } from '../engine/runtime/synth.js';
import { sampleModelDir } from '../util/paths.js';
import { observationOf, probeRates } from '../worker/studio-jobs.js';

export interface EstimateBenchRow {
  model: string;
  bits: number;
  finetune: string;
  /** The FLOP model alone (no machine rates). */
  builtIn: number;
  probe: { seconds: number; low: number; high: number } | null;
  refined: { seconds: number; low: number; high: number; observations: number };
  actual: number;
  /** actual within [low, high] of the refined estimate; midpoint error (mid / actual - 1). */
  within: boolean;
  midpointError: number;
}

const WIDE_SYNTH = { hidden: 2048, intermediate: 5632, layers: 16, heads: 16, kvHeads: 4, vocab: 32000 } as const;

export function registerEstimateBench(bench: Command): void {
  bench
    .command('estimate')
    .description('Estimated time (built-in rates, after the probe, refined by finished runs) against the actual time of runs on this machine')
    .option('--model <dir...>', 'model folders (default: the sample, stories260k)')
    .option('--synth', `also a synthetic ${WIDE_SYNTH.hidden}-wide model with ${WIDE_SYNTH.layers} blocks (slow: tens of minutes)`)
    .option('--bits <list>', 'bit widths', '2,3,4')
    .option('--ft <list>', 'fine-tuning modes', 'none,block+e2e')
    .option('--threads <n>', 'threads (default: all)')
    .option('--no-probe', 'skip the first-time probe')
    .option('--json', 'print JSON')
    .action(async (o: { model?: string[]; synth?: boolean; bits: string; ft: string; threads?: string; probe: boolean; json?: boolean }) => {
      const threads = setEngineThreads(intOption(o.threads, '--threads'));
      const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-bench-estimate-'));
      const log = (s: string) => process.stderr.write(`${s}\n`);
      try {
        const models = [...(o.model ?? [sampleModelDir()])];
        if (o.synth) {
          log(`writing the synthetic model (${WIDE_SYNTH.hidden} wide, ${WIDE_SYNTH.layers} blocks)`);
          models.push((await synthModel({ ...WIDE_SYNTH, dtype: 'f16', seed: 5, out: path.join(tmp, `synth-${WIDE_SYNTH.hidden}`) })).dir);
        }
        let rates: MachineRates | null = null;
        let probeOnly: MachineRates | null = null;
        if (o.probe) {
          log('the first-time probe');
          const t0 = performance.now();
          for (const p of await probeRates({ threads })) rates = probeOnly = addObservation(rates, p);
          log(`  probe took ${formatSeconds((performance.now() - t0) / 1000)}`);
        }
        const rows: EstimateBenchRow[] = [];
        const evaluation = resolveEvaluation();
        for (const dir of models) {
          const arch = parseArchitecture(readConfig(dir));
          for (const bits of o.bits.split(',').map(Number)) {
            for (const ft of o.ft.split(',') as Array<'none' | 'block' | 'block+e2e'>) {
              const settings = resolveSettings({ bits, threads, finetune: { mode: ft } });
              const e = estimateRun(arch, settings, threads, arch.contextLength, evaluationTokens(evaluation, arch.contextLength));
              const predicted = predictedGroups(e, weightFileBytes(dir) ?? 0);
              const params = modelParams(arch);
              const probe = probeOnly ? calibrateEstimate(predicted, params, probeOnly.observations, e.units) : null;
              const refined = calibrateEstimate(predicted, params, rates?.observations ?? [], e.units);
              const label = `${path.basename(dir)} ${bits}-bit ${ft}`;
              log(`${label}: estimate ~${formatSeconds(refined.seconds)} (${formatSeconds(refined.low)} to ${formatSeconds(refined.high)})`);
              const r = await runQuantizeJob({
                model: dir,
                out: path.join(tmp, label.replace(/[^\w.-]+/g, '-')),
                settings,
                evaluation: { textFile: defaultEvalText(), ctx: evaluation!.ctx, maxWindows: evaluation!.windows, full: evaluation!.full },
              });
              const actual = runSeconds(r.record);
              log(`  took ${formatSeconds(actual)}`);
              const mid = (refined.low + refined.high) / 2;
              rows.push({
                model: path.basename(dir), bits, finetune: ft, builtIn: e.seconds.total,
                probe: probe && { seconds: probe.seconds, low: probe.low, high: probe.high },
                refined: { seconds: refined.seconds, low: refined.low, high: refined.high, observations: refined.observations },
                actual, within: actual >= refined.low && actual <= refined.high, midpointError: mid / actual - 1,
              });
              const obs = observationOf(r, dir, 'run', label);
              if (obs) rates = addObservation(rates, obs);
            }
          }
        }
        // The observations too, so the estimates can be worked out again with another rule.
        if (o.json) process.stdout.write(JSON.stringify({ threads, rows, observations: rates?.observations ?? [] }, null, 2) + '\n');
        else process.stdout.write(formatEstimateTable(rows, threads));
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
}

export function formatEstimateTable(rows: EstimateBenchRow[], threads: number): string {
  const f = (s: number) => formatSeconds(s);
  const range = (r: { low: number; high: number } | null) => (r ? `${f(r.low)}–${f(r.high)}` : '-');
  const head = ['run', 'built-in', 'after probe (range)', 'refined (range)', 'actual', 'in range', 'midpoint'];
  const body = rows.map((r) => [
    `${r.model} ${r.bits}-bit ${r.finetune}`,
    f(r.builtIn),
    r.probe ? `${f(r.probe.seconds)} (${range(r.probe)})` : '-',
    `${f(r.refined.seconds)} (${range(r.refined)})`,
    f(r.actual),
    r.within ? 'yes' : 'NO',
    `${r.midpointError >= 0 ? '+' : ''}${(100 * r.midpointError).toFixed(0)}%`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  return [`${threads} threads; refined = the probe plus every run above it`, line(head), ...body.map(line)].join('\n') + '\n';
}
