// `quip bench engine [--threads N] [--json]`: prefill and decode tokens/s of the engine on stories260k
// and on a generated model with realistic layer sizes (hidden 2048, MLP 5632, 4 blocks, 32 heads,
// 4 key/value heads, vocab 32000, F16: TinyLlama-1.1B's layer shapes), each beside the ceiling that
// this machine's measured rooflines allow: decode against streaming read bandwidth (every weight is
// read once per token), prefill against the peak of our GEMM (2 flops per weight per token plus
// attention).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Command } from 'commander';

import { loadModel, type LoadedModel } from '../engine/model/index.js';
import { native } from '../engine/native.js';
import { createEngine, setEngineThreads } from '../engine/runtime/native-model.js';
import { SeededRng } from '../engine/runtime/sampling.js';
import { synthModel } from '../engine/runtime/synth.js';
import { sampleModelDir } from '../util/paths.js';

/** A measured rate beside both ceilings: weights streamed at the read bandwidth, flops at the GEMM peak. */
export interface PhaseFigures {
  tokens: number;
  tokensPerSecond: number;
  bandwidthCeiling: number;
  gemmCeiling: number;
  /** min of the two ceilings, and the measured rate as a fraction of it. */
  roofline: number;
  fractionOfRoofline: number;
  /** Process CPU time / (wall time x threads): below 1 when other programs took the cores. */
  cpuShare: number;
}

export interface EngineBenchModel {
  name: string;
  parameters: number;
  /** Bytes read per forward pass: every linear layer and lm_head (the embedding rows are negligible). */
  weightBytes: number;
  prefill: PhaseFigures;
  decode: PhaseFigures & { context: number };
}

function phase(tokens: number, rate: number, bandwidthCeiling: number, gemmCeiling: number, cpuShare: number): PhaseFigures {
  const roofline = Math.min(bandwidthCeiling, gemmCeiling);
  return { tokens, tokensPerSecond: rate, bandwidthCeiling, gemmCeiling, roofline, fractionOfRoofline: rate / roofline, cpuShare };
}

const cpuSeconds = (since: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
};

export interface EngineBenchResult {
  cpu: string;
  threads: number;
  roofline: { readGBs: number; gemmGflops: number };
  models: EngineBenchModel[];
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

async function benchModel(name: string, model: LoadedModel, roof: { readGBs: number; gemmGflops: number }, threads: number, prefillTokens: number, decodeTokens: number, repeats: number): Promise<EngineBenchModel> {
  const a = model.architecture;
  const engine = createEngine(model);
  let linearParams = 0;
  let weightBytes = 0;
  let parameters = 0;
  for (const n of model.tensorNames()) {
    const info = model.tensorInfo(n);
    const count = info.shape.reduce((x, y) => x * y, 1);
    parameters += count;
    if (n.endsWith('_proj.weight')) {
      linearParams += count;
      weightBytes += count * DTYPE_BYTES[info.dtype];
    }
  }
  const head = model.tensorInfo(a.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
  const headParams = head.shape[0] * head.shape[1];
  weightBytes += headParams * DTYPE_BYTES[head.dtype];

  const rng = new SeededRng(42);
  const ids = (n: number) => Int32Array.from({ length: n }, () => 3 + Math.floor(rng.next() * (Math.min(a.vocabSize, 512) - 3)));

  // Prefill: one batch of prefillTokens from an empty cache, best of `repeats`.
  let prefillBest = Infinity;
  let prefillShare = 0;
  for (let r = 0; r < repeats; r++) {
    const s = engine.createSession(prefillTokens);
    const x = ids(prefillTokens);
    const c0 = process.cpuUsage();
    const t0 = now();
    await s.forward(x, false);
    const wall = now() - t0;
    if (wall < prefillBest) {
      prefillBest = wall;
      prefillShare = cpuSeconds(c0) / (wall * threads);
    }
  }
  // Flops per prompt token: 2 per linear weight, attention 2 x 2 x position x q width per block
  // (mean position P/2), lm_head once per prompt.
  const nq = a.numHeads * a.headDim;
  const prefillFlops = 2 * linearParams * prefillTokens + 4 * nq * a.numLayers * (prefillTokens * (prefillTokens + 1)) / 2 + 2 * headParams;

  // Decode: after a 16-token prompt, decodeTokens single-token steps.
  const ctx = 16;
  const s = engine.createSession(ctx + decodeTokens + 1);
  await s.forward(ids(ctx), false);
  const steps = ids(decodeTokens);
  const c0 = process.cpuUsage();
  const t0 = now();
  for (let i = 0; i < decodeTokens; i++) await s.forward(steps.subarray(i, i + 1), false);
  const decodeSeconds = now() - t0;
  const decodeShare = cpuSeconds(c0) / (decodeSeconds * threads);
  // A prefill reads the weights once for all its tokens; a decode step reads them for one token.
  const bw = roof.readGBs * 1e9;
  const gemm = roof.gemmGflops * 1e9;
  const decodeFlops = 2 * (linearParams + headParams) + 4 * nq * a.numLayers * (ctx + decodeTokens / 2);
  return {
    name,
    parameters,
    weightBytes,
    prefill: phase(prefillTokens, prefillTokens / prefillBest, (bw * prefillTokens) / weightBytes, (gemm * prefillTokens) / prefillFlops, prefillShare),
    decode: { ...phase(decodeTokens, decodeTokens / decodeSeconds, bw / weightBytes, gemm / decodeFlops, decodeShare), context: ctx },
  };
}

export async function runEngineBench(o: { threads?: number; onStatus?: (s: string) => void }): Promise<EngineBenchResult> {
  const threads = setEngineThreads(o.threads);
  o.onStatus?.('measuring read bandwidth and GEMM peak');
  const roofline = await native().engineRoofline({ bandwidthBytes: 512 << 20, repeats: 5 });
  const models: EngineBenchModel[] = [];
  const stories = await loadModel(sampleModelDir());
  try {
    o.onStatus?.('stories260k');
    models.push(await benchModel('stories260k (F32)', stories, roofline, threads, 256, 256, 5));
  } finally {
    stories.close();
  }
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-bench-engine-'));
  try {
    o.onStatus?.('writing the synthetic model (hidden 2048, MLP 5632, 4 blocks, vocab 32000, F16)');
    const synth = await synthModel({ hidden: 2048, intermediate: 5632, layers: 4, heads: 32, kvHeads: 4, vocab: 32000, dtype: 'f16', seed: 1, out: tmp });
    const m = await loadModel(synth.dir);
    try {
      o.onStatus?.('synthetic model');
      models.push(await benchModel('synth 2048x5632 x4 blocks (F16)', m, roofline, threads, 128, 16, 2));
    } finally {
      m.close();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return { cpu: native().cpuInfo().summary, threads, roofline, models };
}

export function formatEngineBench(r: EngineBenchResult): string {
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const lines = [
    `Engine benchmark (${r.cpu}, ${r.threads} threads)`,
    `  measured: streaming read ${r.roofline.readGBs.toFixed(1)} GB/s, GEMM peak ${r.roofline.gemmGflops.toFixed(1)} GFLOP/s`,
    '',
  ];
  const row = (label: string, p: PhaseFigures) =>
    `  ${label.padEnd(20)} ${f(p.tokensPerSecond).padStart(8)} tokens/s   ceilings: bandwidth ${f(p.bandwidthCeiling)}, GEMM ${f(p.gemmCeiling)} tokens/s   ` +
    `(${(100 * p.fractionOfRoofline).toFixed(0)}% of the ${p.bandwidthCeiling < p.gemmCeiling ? 'bandwidth' : 'GEMM'} roofline; CPU share ${(100 * p.cpuShare).toFixed(0)}%)`;
  for (const m of r.models) {
    lines.push(`${m.name}: ${(m.parameters / 1e6).toFixed(2)}M parameters, ${(m.weightBytes / 1e6).toFixed(1)} MB of weights read per forward pass`);
    lines.push(row(`prefill ${m.prefill.tokens} tokens`, m.prefill));
    lines.push(row(`decode ${m.decode.tokens} tokens`, m.decode));
  }
  return lines.join('\n');
}

export function registerEngineBench(bench: Command): void {
  bench
    .command('engine')
    .description('Prefill and decode tokens/s on stories260k and a generated 2048-wide model, beside the measured bandwidth and GEMM rooflines')
    .option('--threads <n>', 'threads (default: all cores)')
    .option('--json', 'print one JSON object')
    .action(async (opts: { threads?: string; json?: boolean }) => {
      const threads = opts.threads === undefined ? undefined : Number(opts.threads);
      if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) throw new Error(`--threads must be a whole number >= 1, got "${opts.threads}"`);
      const r = await runEngineBench({ threads, onStatus: opts.json ? undefined : (s) => process.stderr.write(`  ... ${s}\n`) });
      process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatEngineBench(r)}\n`);
    });
}
