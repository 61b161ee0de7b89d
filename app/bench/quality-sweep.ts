// `quip bench quality-sweep`: how the quantization defaults (rho per codebook, damping sigma, the
// calibration size) were chosen on the real model, and ablations (LDLQ off, layers left at 16 bits). The Hessians of every block are collected once per
// calibration size with the 16-bit model's own hidden states (the "full-precision inputs" flow; the
// job feeds each block the quantized model's states, so its figures differ slightly) and cached, so each
// setting costs only its quantization and its perplexity: every linear layer is quantized with the
// setting, swapped into a 16-bit engine, and the WikiText-2 test perplexity is scored with llama.cpp's
// convention. Proxy loss mean / worst are over all linear layers (in-sample: on the calibration Hessian).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { Command } from 'commander';

import { intOption } from '../cli/options.js';
import { importGguf } from '../engine/gguf/import.js';
import { loadModel } from '../engine/model/index.js';
import { native } from '../engine/native.js';
import { layerFromResult } from '../engine/quantize/qmodel.js';
import { LINEAR_KINDS } from '../engine/runtime/quantized-model.js';
import { CODEBOOK_TABLE, CODEBOOKS, proxyLossSummary, type Codebook } from '../domain/quantize/index.js';
import { quantizeLinear } from '../engine/quip/index.js';
import { calibrationIds, defaultCalibrationText, hessianMean } from '../engine/runtime/calibration.js';
import { createEngine, setEngineThreads } from '../engine/runtime/native-model.js';
import type { BlockHessians } from '../engine/runtime/native-types.js';
import { evaluatePerplexityLlamaCpp, llamaCppWindows, readLlamaCppText } from '../engine/runtime/perplexity-llamacpp.js';
import { UserError } from '../util/errors.js';
import { projectRoot } from '../util/paths.js';

export const SWEEP_TAPS: Array<{ tap: keyof Omit<BlockHessians, 'block'>; shorts: string[] }> = [
  { tap: 'qkv', shorts: ['q', 'k', 'v'] },
  { tap: 'o', shorts: ['o'] },
  { tap: 'gateUp', shorts: ['gate', 'up'] },
  { tap: 'down', shorts: ['down'] },
];

export interface SweepPoint {
  codebook: Codebook;
  rho: number;
  sigma: number;
  /** Residual scale of rvq3/rvq4 (0 = the core's default). */
  s2: number;
  /** Row scales (each row of W normalised before the transform). */
  rowScale: boolean;
  /** Seed of the sign vectors (every layer gets it; the job derives one per layer from its seed). */
  seed: number;
  /** BlockLDLQ feedback (off: each group rounded to its nearest codeword after the transform). */
  ldlq: boolean;
  /** Linear layers left at 16 bits, by short name (q, k, v, o, gate, up, down): which layers carry
   * the loss. */
  keep: string[];
  calibSamples: number;
  calibCtx: number;
}

export interface SweepRow extends SweepPoint {
  blocks: number;
  meanProxyLoss: number;
  worstProxyLoss: number;
  worstLayer: string | null;
  ppl: number | null;
  quantizeSeconds: number;
  evalSeconds: number;
}

/** "e8p:0.8,0.9;rvq4:0.9" -> points (each codebook's rho list; empty list = its default). */
export function parseSweepSpec(spec: string): Array<{ codebook: Codebook; rho: number }> {
  const out: Array<{ codebook: Codebook; rho: number }> = [];
  for (const part of spec.split(';').map((s) => s.trim()).filter(Boolean)) {
    const [cb, list = ''] = part.split(':');
    if (!(CODEBOOKS as readonly string[]).includes(cb)) throw new UserError(`--sweep: unknown codebook "${cb}"; use ${CODEBOOKS.join(', ')}`, 'BAD_SETTING');
    const rhos = list.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
    if (rhos.some((r) => !(r > 0))) throw new UserError(`--sweep: "${part}" has a rho that is not a positive number`, 'BAD_SETTING');
    for (const rho of rhos.length ? rhos : [CODEBOOK_TABLE[cb as Codebook].defaultRho]) out.push({ codebook: cb as Codebook, rho });
  }
  return out;
}

const SHORTS: string[] = LINEAR_KINDS.map((k) => k.short);

/** "q,k;v;" -> [['q','k'], ['v'], []]: each set of layers left at 16 bits is one sweep point. */
export function parseKeepSpec(spec: string): string[][] {
  return spec.split(';').map((set) => {
    const kinds = set.split(',').map((k) => k.trim()).filter(Boolean);
    for (const k of kinds) if (!SHORTS.includes(k)) throw new UserError(`--keep: unknown layer "${k}"; use ${SHORTS.join(', ')}`, 'BAD_SETTING');
    return kinds;
  });
}

/** Hessians (means) of every block under the 16-bit model, cached as float64 files per calibration size. */
export async function blockHessians(modelDir: string, cacheDir: string, samples: number, ctx: number, status: (s: string) => void): Promise<string> {
  const dir = path.join(cacheDir, `hessians-c${samples}x${ctx}`);
  const model = await loadModel(modelDir);
  try {
    const layers = model.architecture.numLayers;
    if (existsSync(path.join(dir, `b${layers - 1}-down.f64`))) return dir;
    mkdirSync(dir, { recursive: true });
    const ids = calibrationIds(model.tokenizer, { textFile: defaultCalibrationText(), sequences: samples, seqLen: ctx });
    const cal = createEngine(model).createCalibration(ids, samples, ctx);
    for (let b = 0; b < layers; b++) {
      status(`Hessians ${samples} x ${ctx}: block ${b}`);
      const hs = await cal.hessians();
      for (const { tap } of SWEEP_TAPS) writeFileSync(path.join(dir, `b${b}-${tap}.f64`), hessianMean(hs[tap]));
      if (b + 1 < layers) await cal.advance();
    }
    return dir;
  } finally {
    model.close();
  }
}

export function readF64(file: string): Float64Array {
  const b = readFileSync(file);
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** SmolLM2's 16-bit folder in the work folder (imported from the shared GGUF the first time). */
export async function ensureSweepModel(work: string): Promise<string> {
  const modelDir = path.join(work, 'smollm2');
  if (!existsSync(path.join(modelDir, 'config.json'))) {
    const gguf = path.join(projectRoot(), '..', 'shared', 'data', 'models', 'smollm2-135m-instruct-q4_1', 'SmolLM2-135M-Instruct.Q4_1.gguf');
    await importGguf(gguf, modelDir, { force: true });
  }
  return modelDir;
}

export async function runQualitySweep(o: {
  modelDir: string; cacheDir: string; points: SweepPoint[]; blocks: number | null; windows: number; ctx: number; threads: number;
  onRow?: (r: SweepRow) => void; onStatus?: (s: string) => void;
}): Promise<SweepRow[]> {
  const status = o.onStatus ?? (() => undefined);
  setEngineThreads(o.threads);
  const model = await loadModel(o.modelDir);
  const rows: SweepRow[] = [];
  try {
    const arch = model.architecture;
    const blocks = Math.min(o.blocks ?? arch.numLayers, arch.numLayers);
    const evalText = path.join(projectRoot(), '..', 'shared', 'data', 'wikitext-2-raw', 'wiki.test.raw');
    const windows = blocks === arch.numLayers && o.windows > 0 ? llamaCppWindows(model.tokenizer, readLlamaCppText(evalText), o.ctx, o.windows) : [];
    for (const p of o.points) {
      const hdir = await blockHessians(o.modelDir, o.cacheDir, p.calibSamples, p.calibCtx, status);
      const engine = createEngine(model);
      const metrics: Array<{ name: string; proxyLoss: number }> = [];
      const t0 = performance.now();
      for (let b = 0; b < blocks; b++) {
        status(`${p.codebook} rho ${p.rho} sigma ${p.sigma} seed ${p.seed} c${p.calibSamples}: block ${b}`);
        for (const { tap, shorts } of SWEEP_TAPS) {
          const H = readF64(path.join(hdir, `b${b}-${tap}.f64`));
          for (const k of LINEAR_KINDS.filter((x) => shorts.includes(x.short) && !p.keep.includes(x.short))) {
            const name = `model.layers.${b}.${k.module}.${k.kind}`;
            const W = model.tensor(`${name}.weight`);
            const [m, n] = W.shape;
            const r = await quantizeLinear(W, H, { m, n, codebook: p.codebook, incoherence: true, ldlq: p.ldlq, sigma: p.sigma, rho: p.rho, s2: p.s2, seed: p.seed, rowScale: p.rowScale });
            metrics.push({ name, proxyLoss: r.proxyLoss });
            native().qinferSetLinear(engine, b, k.kind, layerFromResult(b, k.kind, r).spec);
          }
        }
      }
      const quantizeSeconds = (performance.now() - t0) / 1000;
      let ppl: number | null = null, evalSeconds = 0;
      if (windows.length) {
        status(`${p.codebook} rho ${p.rho}: perplexity`);
        const e = await evaluatePerplexityLlamaCpp(engine, windows, arch.vocabSize, { ctx: o.ctx });
        ppl = e.ppl;
        evalSeconds = e.seconds;
      }
      const pl = proxyLossSummary(metrics);
      const row: SweepRow = { ...p, blocks, meanProxyLoss: pl.mean, worstProxyLoss: pl.worst, worstLayer: pl.worstLayer, ppl, quantizeSeconds, evalSeconds };
      rows.push(row);
      o.onRow?.(row);
    }
  } finally {
    model.close();
  }
  return rows;
}

export function registerQualitySweep(bench: Command): void {
  bench
    .command('quality-sweep')
    .description('Proxy loss and perplexity of SmolLM2 over rho per codebook, sigma and calibration size (how the defaults were chosen)')
    .requiredOption('--sweep <spec>', 'codebooks and rho values, e.g. "e8p:0.8,0.9,1.03;rvq4:0.9,1.03"')
    .option('--sigma <list>', 'damping values, comma-separated', '0.01')
    .option('--s2 <list>', 'rvq residual scales, comma-separated (0 = default)', '0')
    .option('--no-row-scale', 'without row scales')
    .option('--no-ldlq', 'without BlockLDLQ (nearest codeword after the transform)')
    .option('--keep <sets>', 'layers left at 16 bits, one sweep point per set: "k;q,k;down" (short names q k v o gate up down)', '')
    .option('--seeds <list>', 'sign-vector seeds, comma-separated (spread of the figures)', '0')
    .option('--calib-samples <list>', 'calibration sequences, comma-separated', '8')
    .option('--calib-ctx <n>', 'tokens per calibration sequence', '512')
    .option('--blocks <n>', 'quantize only the first n blocks (proxy loss only, no perplexity)')
    .option('--windows <n>', 'perplexity windows (0 = proxy loss only)', '8')
    .option('--ctx <n>', 'perplexity window length', '512')
    .option('--threads <t>', 'threads', '2')
    .option('--work <dir>', 'the bench quality work folder (imported model, Hessian cache)', '/tmp/quip-bench-quality')
    .option('--jsonl <file>', 'append each row as a JSON line')
    .action(async (opts: Record<string, string | undefined>) => {
      const work = path.resolve(opts.work!);
      const modelDir = await ensureSweepModel(work);
      const list = (s: string) => s.split(',').map((x) => Number(x.trim())).filter((x) => Number.isFinite(x));
      const points: SweepPoint[] = [];
      for (const samples of list(opts.calibSamples!))
        for (const sigma of list(opts.sigma!))
          for (const s2 of list(opts.s2!))
            for (const seed of list(opts.seeds!))
              for (const keep of parseKeepSpec(opts.keep!))
                for (const { codebook, rho } of parseSweepSpec(opts.sweep!)) {
                  points.push({
                    codebook, rho, sigma, s2, seed, rowScale: (opts.rowScale as unknown) !== false, ldlq: (opts.ldlq as unknown) !== false, keep,
                    calibSamples: samples, calibCtx: intOption(opts.calibCtx, '--calib-ctx', 8)!,
                  });
                }
      process.stdout.write('| codebook | rho | row scales | LDLQ | 16-bit layers | sigma | s2 | seed | calib | blocks | proxy mean | proxy worst | ppl | quantize s | eval s |\n|---|---:|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n');
      await runQualitySweep({
        modelDir, cacheDir: work, points,
        blocks: opts.blocks ? intOption(opts.blocks, '--blocks')! : null,
        windows: intOption(opts.windows, '--windows', 0)!, ctx: intOption(opts.ctx, '--ctx', 4)!, threads: intOption(opts.threads, '--threads')!,
        onStatus: (s) => process.stderr.write(`  ${s}\n`),
        onRow: (r) => {
          process.stdout.write(`| ${r.codebook} | ${r.rho} | ${r.rowScale ? 'on' : 'off'} | ${r.ldlq ? 'on' : 'off'} | ${r.keep.join(', ') || 'none'} | ${r.sigma} | ${r.s2 || 'default'} | ${r.seed} | ${r.calibSamples} x ${r.calibCtx} | ${r.blocks} | ${r.meanProxyLoss.toFixed(5)} | ${r.worstProxyLoss.toFixed(5)} | ${r.ppl?.toFixed(3) ?? '-'} | ${r.quantizeSeconds.toFixed(0)} | ${r.evalSeconds.toFixed(0)} |\n`);
          if (opts.jsonl) writeFileSync(opts.jsonl, `${JSON.stringify({ ...r, at: new Date().toISOString() })}\n`, { flag: 'a' });
        },
      });
    });
}
