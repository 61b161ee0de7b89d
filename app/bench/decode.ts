// `quip bench decode [--threads N] [--layers L] [--json]`: decode (and prefill) tokens/s of QuIP#
// quantized models at 2 (E8P), 3 (RVQ3) and 4 (RVQ4) bits beside the same model in float16 and
// float32, and beside the memory-bandwidth roofline measured in this run (bytes read per token /
// streaming read bandwidth). Model: `quip synth` with TinyLlama-1.1B's layer shapes (hidden 2048,
// MLP 5632, 32 heads, 4 key/value heads, vocab 32000), L blocks. Goal: 2-bit decode >= 2x float16.
//
// Speed does not depend on the code values (every code costs the same table lookups), so the
// quantized layers here carry seeded random codes and sign vectors instead of a multi-minute
// quantization of random weights; quality is measured by `quip bench quality` and the tests.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Command } from 'commander';

import { intOption } from '../cli/commands/eval.js';
import { openModel, type OpenedModel } from '../engine/model/index.js';
import { native, type TensorRef } from '../engine/native.js';
import type { QuantizedLinearSpec } from '../engine/quantize/native-types.js';
import { isLinearWeight, LINEAR_KINDS, linearName } from '../engine/quantize/qmodel.js';
import { createEngine, setEngineThreads } from '../engine/runtime/engine.js';
import type { EngineModel } from '../engine/runtime/native-types.js';
import { SeededRng } from '../engine/runtime/sampling.js';
import { synthModel } from '../engine/runtime/synth.js';

export interface DecodeBenchRow {
  model: string;
  bitsPerWeight: number;
  /** Bytes read per decoded token: linear weights (or codes + signs) and lm_head. */
  bytesPerToken: number;
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
  /** Read bandwidth / bytes per token: the decode speed if only memory traffic counted. */
  rooflineTokensPerSecond: number;
  fractionOfRoofline: number;
  /** Decode speed over the float16 model's, same machine, threads and run. */
  speedupVsF16: number;
}

export interface DecodeBenchResult {
  cpu: string;
  threads: number;
  layers: number;
  readGBs: number;
  rows: DecodeBenchRow[];
  goal: { description: string; met: boolean; ratio: number };
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

function randomSpec(m: number, n: number, codebook: 'e8p' | 'rvq3' | 'rvq4', rng: SeededRng): QuantizedLinearSpec {
  const groups = Math.ceil(n / 8);
  const u16 = (len: number) => Uint16Array.from({ length: len }, () => Math.floor(rng.next() * 65536));
  const signs = (len: number) => Int8Array.from({ length: len }, () => (rng.next() < 0.5 ? -1 : 1));
  return {
    m, n, codebook,
    codes: u16(m * groups),
    residual: codebook === 'rvq4' ? u16(m * groups) : codebook === 'rvq3' ? Uint8Array.from({ length: m * groups }, () => Math.floor(rng.next() * 256)) : null,
    scale: 0.02 / 1.03,
    residualScale: codebook === 'rvq4' ? 3.45 : codebook === 'rvq3' ? 2.04 : null,
    incoherence: true,
    su: signs(n),
    sv: signs(m),
  };
}

async function measure(engine: EngineModel, vocab: number, prefill: number, decode: number): Promise<{ decode: number; prefill: number }> {
  const rng = new SeededRng(7);
  const ids = (k: number) => Int32Array.from({ length: k }, () => 3 + Math.floor(rng.next() * (vocab - 3)));
  const p = engine.createSession(prefill);
  let t0 = now();
  await p.forward(ids(prefill), false);
  const prefillRate = prefill / (now() - t0);
  const s = engine.createSession(16 + decode + 1);
  await s.forward(ids(16), false);
  const steps = ids(decode);
  await s.forward(steps.subarray(0, 1), false); // warm
  t0 = now();
  for (let i = 1; i < decode; i++) await s.forward(steps.subarray(i, i + 1), false);
  return { decode: (decode - 1) / (now() - t0), prefill: prefillRate };
}

export async function runDecodeBench(o: { threads?: number; layers?: number; onStatus?: (s: string) => void }): Promise<DecodeBenchResult> {
  const threads = setEngineThreads(o.threads);
  const layers = o.layers ?? 4;
  o.onStatus?.('measuring read bandwidth');
  const { readGBs } = await native().engineRoofline({ bandwidthBytes: 512 << 20, repeats: 5, gemmTokens: 8, gemmM: 48, gemmK: 64 });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-bench-decode-'));
  const rows: Omit<DecodeBenchRow, 'speedupVsF16'>[] = [];
  const shape = { hidden: 2048, intermediate: 5632, layers, heads: 32, kvHeads: 4, vocab: 32000, seed: 1 };
  try {
    let f16: OpenedModel | null = null;
    for (const dtype of ['f16', 'f32'] as const) {
      o.onStatus?.(`writing the synthetic model in ${dtype} (hidden 2048, MLP 5632, ${layers} blocks, vocab 32000)`);
      const synth = await synthModel({ ...shape, dtype, out: path.join(tmp, dtype) });
      const m = await openModel(synth.dir);
      let linear = 0, head = 0;
      for (const name of m.tensorNames()) {
        const info = m.tensorInfo(name);
        const bytes = info.shape.reduce((a, b) => a * b, 1) * (info.dtype === 'F32' ? 4 : 2);
        if (isLinearWeight(name, layers)) linear += bytes;
        else if (name === 'lm_head.weight') head += bytes;
      }
      o.onStatus?.(`decoding with the ${dtype} model`);
      const r = await measure(createEngine(m), 32000, 64, 12);
      rows.push({
        model: `float${dtype === 'f16' ? 16 : 32}`, bitsPerWeight: dtype === 'f16' ? 16 : 32, bytesPerToken: linear + head,
        decodeTokensPerSecond: r.decode, prefillTokensPerSecond: r.prefill, rooflineTokensPerSecond: (readGBs * 1e9) / (linear + head),
        fractionOfRoofline: r.decode / ((readGBs * 1e9) / (linear + head)),
      });
      if (dtype === 'f16') f16 = m;
      else m.close();
    }
    // Quantized models over the float16 model's embeddings, norms and lm_head.
    const base = f16!;
    const weights: Record<string, TensorRef> = {};
    let headBytes = 0;
    for (const name of base.tensorNames()) {
      if (isLinearWeight(name, layers)) continue;
      weights[name] = base.tensor(name);
      if (name === 'lm_head.weight') headBytes = base.tensorInfo(name).shape.reduce((a, b) => a * b, 1) * 2;
    }
    for (const [codebook, bits] of [['e8p', 2], ['rvq3', 3], ['rvq4', 4]] as const) {
      o.onStatus?.(`decoding with the ${bits}-bit (${codebook}) model`);
      const rng = new SeededRng(bits);
      const specs: Array<{ block: number; kind: (typeof LINEAR_KINDS)[number]['kind']; spec: QuantizedLinearSpec }> = [];
      let codeBytes = 0, weightsCount = 0;
      for (let b = 0; b < layers; b++) {
        for (const { kind } of LINEAR_KINDS) {
          const [m, n] = base.tensorInfo(`${linearName(b, kind)}.weight`).shape;
          const spec = randomSpec(m, n, codebook, rng);
          specs.push({ block: b, kind, spec });
          codeBytes += m * Math.ceil(n / 8) * (codebook === 'e8p' ? 2 : codebook === 'rvq3' ? 3 : 4) + m + n;
          weightsCount += m * n;
        }
      }
      const engine = native().createQuantizedModel(base.architecture, weights, specs);
      const r = await measure(engine, 32000, 64, 12);
      const bytes = codeBytes + headBytes;
      rows.push({
        model: `QuIP# ${bits}-bit ${codebook}`, bitsPerWeight: (8 * codeBytes) / weightsCount, bytesPerToken: bytes,
        decodeTokensPerSecond: r.decode, prefillTokensPerSecond: r.prefill, rooflineTokensPerSecond: (readGBs * 1e9) / bytes,
        fractionOfRoofline: r.decode / ((readGBs * 1e9) / bytes),
      });
    }
    base.close();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const f16Rate = rows.find((r) => r.model === 'float16')!.decodeTokensPerSecond;
  const full = rows.map((r) => ({ ...r, speedupVsF16: r.decodeTokensPerSecond / f16Rate }));
  const ratio = full.find((r) => r.model.startsWith('QuIP# 2-bit'))!.speedupVsF16;
  return {
    cpu: native().cpuInfo().summary, threads, layers, readGBs, rows: full,
    goal: { description: '2-bit decode at least 2x the float16 model (same machine, threads, run)', met: ratio >= 2, ratio },
  };
}

export function formatDecodeBench(r: DecodeBenchResult): string {
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
  const lines = [
    `Decode benchmark (${r.cpu}, ${r.threads} threads; synth TinyLlama shapes, ${r.layers} blocks, vocab 32000)`,
    `  measured streaming read bandwidth ${r.readGBs.toFixed(1)} GB/s`,
    `  ${'model'.padEnd(18)} ${'bits/w'.padStart(7)} ${'MB/token'.padStart(9)} ${'decode tok/s'.padStart(13)} ${'roofline'.padStart(9)} ${'of roof'.padStart(8)} ${'vs f16'.padStart(7)} ${'prefill tok/s'.padStart(14)}`,
  ];
  for (const x of r.rows) {
    lines.push(
      `  ${x.model.padEnd(18)} ${x.bitsPerWeight.toFixed(2).padStart(7)} ${(x.bytesPerToken / 1e6).toFixed(1).padStart(9)} ${f(x.decodeTokensPerSecond).padStart(13)} ` +
        `${f(x.rooflineTokensPerSecond).padStart(9)} ${(100 * x.fractionOfRoofline).toFixed(0).padStart(7)}% ${x.speedupVsF16.toFixed(2).padStart(6)}x ${f(x.prefillTokensPerSecond).padStart(14)}`,
    );
  }
  lines.push(`  goal: ${r.goal.description}: ${r.goal.met ? 'met' : 'NOT met'} (${r.goal.ratio.toFixed(2)}x)`);
  return lines.join('\n');
}

export function registerDecodeBench(bench: Command): void {
  bench
    .command('decode')
    .description('Decode tokens/s of 2/3/4-bit QuIP# models beside float16/float32 and the measured bandwidth roofline')
    .option('--threads <n>', 'threads (default: all cores)')
    .option('--layers <n>', 'blocks of the synthetic model (default 4)')
    .option('--json', 'print one JSON object')
    .action(async (opts: { threads?: string; layers?: string; json?: boolean }) => {
      const r = await runDecodeBench({
        threads: intOption(opts.threads, '--threads'),
        layers: intOption(opts.layers, '--layers'),
        onStatus: opts.json ? undefined : (s) => process.stderr.write(`  ... ${s}\n`),
      });
      process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatDecodeBench(r)}\n`);
    });
}
