// `quip bench finetune`: the quantization job on stories260k with fine-tuning off / in-block /
// in-block + end-to-end at each bit width (same seed, same calibration and evaluation windows):
// WikiText-2 perplexity beside the full-precision model and beside the same run without
// fine-tuning, fine-tuning time per block and in total, and tokens/s through forward + backward.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Command } from 'commander';

import { intOption, numberOption } from '../cli/options.js';
import { defaultEvalText, runQuantizeJob } from '../engine/quantize/job.js';
import { resolveSettings, type Bits, FINETUNE_MODES, type FinetuneMode, type FinetuneSettingsInput } from '../domain/quantize/index.js';
import { setEngineThreads } from '../engine/runtime/native-model.js';
import { UserError } from '../util/errors.js';

export interface FinetuneBenchRow {
  bits: Bits;
  ft: FinetuneMode;
  ppl: number;
  /** ppl / ppl(same bits, --ft none) - 1. */
  vsNone: number;
  finetuneSeconds: number;
  /** In-block fine-tuning seconds per block (end to end not included). */
  finetuneSecondsPerBlock: number;
  /** In-block steps: tokens through forward + backward per second (mean over steps). */
  blockTokensPerSecond: number | null;
  e2eTokensPerSecond: number | null;
  totalSeconds: number;
}

export interface FinetuneBenchResult {
  model: string;
  full: number;
  threads: number;
  settings: { calibSamples: number; calibCtx: number; evalWindows: number; evalCtx: number; ft: FinetuneSettingsInput };
  rows: FinetuneBenchRow[];
}

export async function runFinetuneBench(o: {
  model: string; bits: Bits[]; calibSamples: number; calibCtx: number; evalWindows: number; evalCtx: number; ft: FinetuneSettingsInput; threads: number; onStatus?: (s: string) => void;
}): Promise<FinetuneBenchResult> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'quip-bench-ft-'));
  const rows: FinetuneBenchRow[] = [];
  let full = 0;
  try {
    for (const bits of o.bits) {
      let none = 0;
      for (const ft of FINETUNE_MODES) {
        o.onStatus?.(`${bits}-bit, --ft ${ft}`);
        const t0 = performance.now();
        const r = await runQuantizeJob({
          model: o.model,
          out: path.join(work, `${bits}-${ft}`),
          settings: resolveSettings({ bits, calibSamples: o.calibSamples, calibCtx: o.calibCtx, threads: o.threads, finetune: { ...o.ft, mode: ft } }),
          evaluation: { textFile: defaultEvalText(), ctx: o.evalCtx, maxWindows: o.evalWindows, full: full === 0 },
        });
        const rec = r.record;
        if (full === 0) full = rec.perplexity!.full ?? 0;
        const ppl = rec.perplexity!.quantized;
        if (ft === 'none') none = ppl;
        const f = rec.finetune ?? null;
        const groups = f ? f.blocks.flatMap((b) => b.groups) : [];
        rows.push({
          bits, ft, ppl, vsNone: ppl / none - 1,
          finetuneSeconds: f ? f.seconds : 0,
          finetuneSecondsPerBlock: f && f.blocks.length ? (f.seconds - (f.endToEnd?.seconds ?? 0)) / f.blocks.length : 0,
          blockTokensPerSecond: groups.length ? groups.reduce((a, g) => a + g.tokensPerSecond, 0) / groups.length : null,
          e2eTokensPerSecond: f?.endToEnd ? f.endToEnd.tokensPerSecond : null,
          totalSeconds: (performance.now() - t0) / 1000,
        });
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { model: o.model, full, threads: o.threads, settings: { calibSamples: o.calibSamples, calibCtx: o.calibCtx, evalWindows: o.evalWindows, evalCtx: o.evalCtx, ft: o.ft }, rows };
}

export function formatFinetuneBench(r: FinetuneBenchResult): string {
  const lines = [
    `fine-tuning on ${r.model}: WikiText-2 test ppl (${r.settings.evalWindows} x ${r.settings.evalCtx} tokens), calibration ${r.settings.calibSamples} x ${r.settings.calibCtx} tokens of WikiText-2 valid, ${r.threads} threads`,
    `fine-tuning settings: ${JSON.stringify(r.settings.ft)}; full precision ppl ${r.full.toFixed(3)}`,
    'bits  ft          ppl       vs none   ft s   in-block s/block  fwd+bwd tok/s (block / e2e)  run s',
  ];
  for (const x of r.rows) {
    const tps = `${x.blockTokensPerSecond === null ? '-' : x.blockTokensPerSecond.toFixed(0)} / ${x.e2eTokensPerSecond === null ? '-' : x.e2eTokensPerSecond.toFixed(0)}`;
    lines.push(`${String(x.bits).padEnd(6)}${x.ft.padEnd(12)}${x.ppl.toFixed(3).padStart(8)}  ${((x.vsNone * 100).toFixed(1) + '%').padStart(8)}  ${x.finetuneSeconds.toFixed(1).padStart(5)}  ${x.finetuneSecondsPerBlock.toFixed(2).padStart(16)}  ${tps.padStart(27)}  ${x.totalSeconds.toFixed(1).padStart(5)}`);
  }
  return lines.join('\n');
}

export function registerFinetuneBench(bench: Command): void {
  bench
    .command('finetune')
    .description('Quantization with fine-tuning off / block / block+e2e at each bit width: perplexity, fine-tuning time, tokens/s through forward + backward')
    .option('--model <dir>', 'full-precision model folder (default: the shared stories260k)')
    .option('--bits <list>', 'bit widths, comma-separated (default 2,3,4)', '2,3,4')
    .option('--calib-samples <n>', 'calibration sequences (default 16)')
    .option('--ctx <l>', 'tokens per calibration sequence (default 128)')
    .option('--eval-windows <w>', 'perplexity windows (default 8)')
    .option('--eval-ctx <l>', 'perplexity window length (default 128)')
    .option('--ft-epochs <n>', 'epochs per tuning step (default 3)')
    .option('--ft-lr <x>', 'learning rate of weights and norms (default 1e-3)')
    .option('--ft-lr-sign <x>', 'learning rate of SU/SV (default 1e-3)')
    .option('--threads <n>', 'threads (default: all cores)')
    .option('--json', 'print one JSON object')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const s = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
      const bits = String(o.bits).split(',').map((b) => Number(b.trim()));
      if (!bits.every((b) => b === 2 || b === 3 || b === 4)) throw new UserError(`--bits ${o.bits}: use 2, 3 and/or 4, comma-separated`, 'BAD_SETTING');
      const threads = setEngineThreads(intOption(s('threads'), '--threads') ?? 0);
      const r = await runFinetuneBench({
        model: s('model') ?? path.resolve('../shared/data/models/stories260k'),
        bits: bits as Bits[],
        calibSamples: intOption(s('calibSamples'), '--calib-samples') ?? 16,
        calibCtx: intOption(s('ctx'), '--ctx', 8) ?? 128,
        evalWindows: intOption(s('evalWindows'), '--eval-windows') ?? 8,
        evalCtx: intOption(s('evalCtx'), '--eval-ctx', 2) ?? 128,
        ft: { epochs: intOption(s('ftEpochs'), '--ft-epochs', 0) ?? 3, lr: numberOption(s('ftLr'), '--ft-lr') ?? 1e-3, lrSign: numberOption(s('ftLrSign'), '--ft-lr-sign') ?? 1e-3, batch: 4, holdout: 0.25, patience: 2 },
        threads,
        onStatus: o.json ? undefined : (m) => process.stderr.write(`  ${m}\n`),
      });
      process.stdout.write((o.json ? JSON.stringify(r, null, 2) : formatFinetuneBench(r)) + '\n');
    });
}
