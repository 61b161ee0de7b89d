// `quip quantize <model> --out DIR [--bits 2|3|4] [--codebook e8p|rtn] [--no-incoherence] [--no-row-scale] [--no-ldlq]
//   [--calib-text F] [--calib-samples N] [--ctx L] [--sigma S] [--rho R] [--tune-iters K] [--seed S]
//   [--threads T] [--target-bpw X] [--force] [--eval-windows W | --no-eval] [--json]
//   [--ft none|block|block+e2e] [--ft-epochs E] [--ft-lr X] [--ft-lr-sign X] [--ft-batch B] [--ft-holdout F] [--ft-patience P]`
// Prints the settings with their estimated time and memory, then a table row per finished layer and
// a progress line (or NDJSON events with --json). Ctrl-C cancels; running the same command again
// resumes from the last finished block.
import { existsSync } from 'node:fs';

import type { Command } from 'commander';

import { defaultEvalText, runQuantizeJob } from '../../engine/quantize/job.js';
import { terminalRenderer } from '../render.js';
import { DEFAULTS, EVAL_DEFAULTS, FINETUNE_DEFAULTS, resolveEvaluation, resolveSettings, SettingsError, type FinetuneMode, type SettingField } from '../../domain/quantize/index.js';
import { resolveModelDir } from '../../services/hub/index.js';
import { UserError } from '../../util/errors.js';
import { cancelOnSigint } from '../cancel.js';
import { intOption, numberOption } from '../options.js';

/** The flag of each setting, to word a SettingsError the way this command is typed. */
const FLAGS: Record<SettingField, string> = {
  bits: '--bits',
  codebook: '--codebook',
  sigma: '--sigma',
  rho: '--rho',
  tuneIters: '--tune-iters',
  calibSamples: '--calib-samples',
  calibCtx: '--ctx',
  seed: '--seed',
  threads: '--threads',
  targetBpw: '--target-bpw',
  'finetune.mode': '--ft',
  'finetune.epochs': '--ft-epochs',
  'finetune.lr': '--ft-lr',
  'finetune.lrSign': '--ft-lr-sign',
  'finetune.batch': '--ft-batch',
  'finetune.holdout': '--ft-holdout',
  'finetune.patience': '--ft-patience',
  'evaluation.windows': '--eval-windows',
  'evaluation.ctx': '--eval-ctx',
};

interface QuantizeOpts {
  out: string;
  bits?: string;
  codebook?: string;
  incoherence: boolean;
  rowScale: boolean;
  ldlq: boolean;
  calibText?: string;
  calibSamples?: string;
  ctx?: string;
  sigma?: string;
  rho?: string;
  tuneIters?: string;
  seed?: string;
  threads?: string;
  targetBpw?: string;
  force?: boolean;
  eval: boolean;
  evalText?: string;
  evalWindows?: string;
  evalCtx?: string;
  evalFull: boolean;
  json?: boolean;
  ft?: string;
  ftEpochs?: string;
  ftLr?: string;
  ftLrSign?: string;
  ftBatch?: string;
  ftHoldout?: string;
  ftPatience?: string;
}

export function registerQuantize(program: Command): void {
  program
    .command('quantize')
    .description('Quantize every linear layer of a model with QuIP# (calibrate, quantize block by block, save, evaluate)')
    .argument('<model>', 'full-precision model folder (or hub id)')
    .requiredOption('--out <dir>', 'output folder for the quantized model')
    .option('--bits <b>', `2, 3 or 4 (default ${DEFAULTS.bits})`)
    .option('--codebook <c>', 'e8p (E8P lattice; residual E8P at 3/4 bits) or rtn (scalar rounding baseline); rvq names the 3/4-bit residual codebooks', DEFAULTS.codebook)
    .option('--target-bpw <x>', 'bits per linear weight for the whole model, 2 to 6 (codes, sign vectors, scales): each layer gets E8P 2-bit, RVQ 3-bit, RVQ 4-bit or stays at 16 bits by its measured sensitivity (--bits is then ignored)')
    .option('--no-incoherence', 'skip the randomized Hadamard transform')
    .option('--no-row-scale', 'keep every row at the layer scale instead of folding its RMS into SV (the paper\'s plain QuIP#)')
    .option('--no-ldlq', 'round to nearest instead of BlockLDLQ feedback')
    .option('--calib-text <file>', 'calibration text (default: WikiText-2 validation, shipped with the studio)')
    .option('--calib-samples <n>', `calibration sequences (default ${DEFAULTS.calibSamples})`)
    .option('--ctx <l>', `tokens per calibration sequence (default ${DEFAULTS.calibCtx}, at most the model context)`)
    .option('--sigma <s>', `Hessian damping (default ${DEFAULTS.sigma})`)
    .option('--rho <r>', 'RMS the codebook sees (default per codebook)')
    .option('--tune-iters <k>', `refinement passes after BlockLDLQ (default ${DEFAULTS.tuneIters})`)
    .option('--seed <s>', `seed of the sign vectors (default ${DEFAULTS.seed})`)
    .option('--threads <t>', 'threads (default: all cores; never changes the result)')
    .option('--force', 'replace an output folder that already holds a model')
    .option('--no-eval', 'skip the perplexity evaluation')
    .option('--eval-text <file>', 'text for the perplexity (default: WikiText-2 test, shipped with the studio)')
    .option('--eval-windows <w>', `perplexity windows to score (default ${EVAL_DEFAULTS.windows}, as the studio)`)
    .option('--eval-ctx <l>', `perplexity window length (default ${EVAL_DEFAULTS.ctx}, at most the model context)`)
    .option('--no-eval-full', 'do not score the full-precision model for comparison')
    .option('--json', 'print newline-delimited JSON events')
    .option('--ft <mode>', `fine-tuning: none, block (in-block, after each linear group) or block+e2e (then distillation end to end) (default ${FINETUNE_DEFAULTS.mode})`)
    .option('--ft-epochs <n>', `fine-tuning epochs per step (default ${FINETUNE_DEFAULTS.epochs})`)
    .option('--ft-lr <x>', `Adam learning rate of weights and norms (default ${FINETUNE_DEFAULTS.lr})`)
    .option('--ft-lr-sign <x>', `Adam learning rate of the sign vectors SU/SV (default ${FINETUNE_DEFAULTS.lrSign})`)
    .option('--ft-batch <n>', `calibration sequences per Adam step (default ${FINETUNE_DEFAULTS.batch})`)
    .option('--ft-holdout <f>', `fraction of calibration sequences held out to pick the best epoch (default ${FINETUNE_DEFAULTS.holdout})`)
    .option('--ft-patience <n>', `epochs without held-out improvement before stopping (default ${FINETUNE_DEFAULTS.patience})`)
    .action(async (modelArg: string, o: QuantizeOpts) => {
      let settings;
      try {
        settings = resolveSettings({
          bits: numberOption(o.bits, '--bits'),
          codebook: o.codebook,
          incoherence: o.incoherence,
          rowScale: o.rowScale,
          ldlq: o.ldlq,
          sigma: numberOption(o.sigma, '--sigma'),
          rho: numberOption(o.rho, '--rho'),
          tuneIters: numberOption(o.tuneIters, '--tune-iters'),
          calibTextFile: o.calibText ?? null,
          calibSamples: numberOption(o.calibSamples, '--calib-samples'),
          calibCtx: numberOption(o.ctx, '--ctx'),
          seed: numberOption(o.seed, '--seed'),
          threads: intOption(o.threads, '--threads'),
          targetBpw: numberOption(o.targetBpw, '--target-bpw') ?? null,
          finetune: {
            mode: o.ft as FinetuneMode | undefined,
            epochs: numberOption(o.ftEpochs, '--ft-epochs'),
            lr: numberOption(o.ftLr, '--ft-lr'),
            lrSign: numberOption(o.ftLrSign, '--ft-lr-sign'),
            batch: numberOption(o.ftBatch, '--ft-batch'),
            holdout: numberOption(o.ftHoldout, '--ft-holdout'),
            patience: numberOption(o.ftPatience, '--ft-patience'),
          },
        });
      } catch (err) {
        if (err instanceof SettingsError) throw new UserError(`${FLAGS[err.field]} ${err.detail}`, err.code);
        throw err;
      }
      const { dir } = await resolveModelDir(modelArg);
      const render = o.json ? (e: unknown) => process.stdout.write(JSON.stringify(e) + '\n') : terminalRenderer({ write: (t) => process.stderr.write(t), isTTY: !!process.stderr.isTTY }, { write: (t) => process.stdout.write(t) });
      // The studio's defaults (EVAL_DEFAULTS). Without --eval-text the perplexity uses the shipped
      // WikiText-2 test; should that file be missing (a damaged install), the run skips the evaluation
      // and says how to ask for one.
      let evaluation;
      try {
        evaluation = resolveEvaluation({ off: !o.eval, textFile: o.evalText ?? null, windows: intOption(o.evalWindows, '--eval-windows'), ctx: intOption(o.evalCtx, '--eval-ctx', 2), full: o.evalFull });
      } catch (err) {
        if (err instanceof SettingsError) throw new UserError(`${FLAGS[err.field]} ${err.detail}`, err.code);
        throw err;
      }
      const evalText = o.evalText ?? defaultEvalText();
      const evaluate = evaluation !== null && (o.evalText !== undefined || existsSync(evalText));
      if (o.eval && !evaluate) process.stderr.write(`quip: no evaluation text at ${evalText}; skipping perplexity (pass --eval-text FILE to measure it)\n`);
      const { cancel, done } = cancelOnSigint();
      try {
        await runQuantizeJob({
          model: dir,
          out: o.out,
          settings,
          force: !!o.force,
          cancel,
          evaluation: evaluate && evaluation ? { textFile: evalText, ctx: evaluation.ctx, maxWindows: evaluation.windows, full: evaluation.full } : null,
          onEvent: render,
        });
      } finally {
        done();
      }
    });
}
