// `quip bench layer-errors`: how far each quantizer's error is, layer by layer, from what any code of
// its size could do. For every linear layer of SmolLM2 it measures the proxy loss
// tr((W^-W) H (W^-W)^T) / tr(W H W^T) under one damped calibration Hessian (the sweep's cache: the
// 16-bit model's own inputs) for our codebooks (quantized as the sweep does) and for llama.cpp's
// quantizations of the same 16-bit model (dequantized), beside the Gaussian floor: the loss no code of
// b bits per weight can beat if the layer's entries were Gaussians of each row's variance (reverse
// water-filling over H's eigenvalues, rate-distortion.ts). "Ideal bits" is the rate at which that floor
// equals a quantizer's loss, what an ideal code would spend for the same error: bits spent minus ideal
// bits is the quantizer's own inefficiency, and a loss below the 4-bit floor is one no 4-bit code
// could match on Gaussian weights. llama.cpp's layers are also grouped by the type each is stored in, so
// a type that beats the floor of its own rate (exploits structure of the weights) stands out.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { Command } from 'commander';

import { intOption, numberOption } from '../cli/options.js';
import { importGguf, IMPORT_RECORD_FILE } from '../engine/gguf/import.js';
import { openGguf } from '../engine/gguf/reader.js';
import { loadModel, type LoadedModel } from '../engine/model/index.js';
import type { SafetensorsDType } from '../engine/model/safetensors-writer.js';
import { native } from '../engine/native.js';
import { layerBits } from '../engine/model/quantized-format.js';
import { layerFromResult } from '../engine/quantize/qmodel.js';
import { LINEAR_KINDS } from '../engine/runtime/quantized-model.js';
import { CODEBOOK_TABLE, CODEBOOKS, type Codebook } from '../domain/quantize/index.js';
import { quantizeLinear, WaterFilling } from '../engine/quip/index.js';
import { setEngineThreads } from '../engine/runtime/native-model.js';
import { UserError } from '../util/errors.js';
import { LLAMA_CPP_MISSING, llamaQuantize, locateLlamaCpp } from './llamacpp.js';
import { PEER_TYPES, peerGgufPath } from './quality.js';
import { blockHessians, readF64, SWEEP_TAPS, ensureSweepModel } from './quality-sweep.js';

/** Every figure is compared at this rate: the floor any code of 4.0 bits per weight meets. */
const REFERENCE_BITS = 4;

export interface LayerError {
  layer: string;
  kind: string;
  weights: number;
  /** The Gaussian floor at REFERENCE_BITS bits per weight. */
  floor: number;
  /**
   * Per quantizer: bits per weight as stored, the proxy loss, the bits an ideal code needs for it, and
   * for llama.cpp's files the ggml type the layer is stored in.
   */
  by: Record<string, { bits: number; proxyLoss: number; idealBits: number; type?: string }>;
}

export interface QuantizerSummary {
  name: string;
  bitsPerWeight: number;
  meanProxyLoss: number;
  /** Weighted mean over layers of the rate at which the Gaussian floor equals the layer's loss. */
  idealBits: number;
  /** Layers whose loss is below the REFERENCE_BITS floor: no code of that size could match them. */
  belowFloor: number;
}

/** One quantizer's figures over some layers: bits and ideal bits weighted by each layer's weights. */
function aggregate(layers: LayerError[], name: string): { bitsPerWeight: number; meanProxyLoss: number; idealBits: number } {
  let w = 0, bits = 0, ideal = 0, loss = 0;
  for (const l of layers) {
    const q = l.by[name];
    w += l.weights, bits += q.bits * l.weights, ideal += q.idealBits * l.weights, loss += q.proxyLoss;
  }
  return { bitsPerWeight: bits / w, meanProxyLoss: loss / layers.length, idealBits: ideal / w };
}

export function summarize(layers: LayerError[], names: string[]): QuantizerSummary[] {
  return names.map((name) => ({ name, ...aggregate(layers, name), belowFloor: layers.filter((l) => l.by[name].proxyLoss < l.floor).length }));
}

/** How a llama.cpp file stores one tensor: bits per weight and ggml type name. */
interface StoredTensor {
  bits: number;
  type: string;
}

interface Peer {
  model: LoadedModel;
  stored: (tensor: string) => StoredTensor;
}

/**
 * A llama.cpp quantization of the same 16-bit model as a 16-bit folder: dequantized by llama.cpp itself
 * (it reads every type it writes; our importer reads only those people download), then imported, which
 * puts q/k rows back in our order. Bits per weight of each tensor come from the quantized file.
 */
async function openPeer(bin: string, gguf: string, work: string, threads: number): Promise<Peer> {
  const dir = path.join(work, `${path.basename(gguf, '.gguf')}-dequantized`);
  if (!existsSync(path.join(dir, IMPORT_RECORD_FILE))) {
    const f16 = `${dir}.gguf`;
    await llamaQuantize(bin, gguf, f16, 'F16', { threads, requantize: true });
    try {
      await importGguf(f16, dir, { force: true });
    } finally {
      rmSync(f16, { force: true });
    }
  }
  const g = openGguf(gguf);
  const byName = new Map(g.header.tensors.map((t) => [t.name, { bits: (8 * t.bytes) / t.numel, type: t.type.name }]));
  g.file.close();
  const record = JSON.parse(readFileSync(path.join(dir, IMPORT_RECORD_FILE), 'utf8')) as { tensors: Array<{ name: string; gguf: string }> };
  const ggufName = new Map(record.tensors.map((t) => [t.name, t.gguf]));
  const stored = (tensor: string): StoredTensor => {
    const t = byName.get(ggufName.get(tensor) ?? '');
    if (t === undefined) throw new UserError(`${gguf} has no tensor for ${tensor}; is it a quantization of this model?`, 'BAD_GGUF');
    return t;
  };
  return { model: await loadModel(dir), stored };
}

export async function runLayerErrors(o: {
  modelDir: string; work: string; codebooks: Codebook[]; peers: Array<{ name: string; gguf: string }>; llamaCpp: string | null;
  calibSamples: number; calibCtx: number; sigma: number; blocks: number | null; threads: number;
  onStatus?: (s: string) => void;
}): Promise<LayerError[]> {
  const status = o.onStatus ?? (() => undefined);
  if (o.peers.length && !o.llamaCpp)
    throw new UserError(`${LLAMA_CPP_MISSING} It dequantizes ${o.peers.map((p) => p.gguf).join(', ')} for this comparison; or pass --peer-types ''.`, 'PEER_MISSING');
  setEngineThreads(o.threads);
  const hdir = await blockHessians(o.modelDir, o.work, o.calibSamples, o.calibCtx, status);
  const model = await loadModel(o.modelDir);
  const peers: Array<Peer & { name: string }> = [];
  try {
    for (const p of o.peers) {
      status(`dequantizing ${p.gguf}`);
      peers.push({ name: p.name, ...(await openPeer(o.llamaCpp!, p.gguf, o.work, o.threads)) });
    }
    const blocks = Math.min(o.blocks ?? model.architecture.numLayers, model.architecture.numLayers);
    const out: LayerError[] = [];
    for (let b = 0; b < blocks; b++) {
      status(`block ${b + 1} of ${blocks}`);
      for (const { tap, shorts } of SWEEP_TAPS) {
        const H = readF64(path.join(hdir, `b${b}-${tap}.f64`));
        for (const k of LINEAR_KINDS.filter((x) => shorts.includes(x.short))) {
          const name = `model.layers.${b}.${k.module}.${k.kind}.weight`;
          const W = model.tensor(name);
          const [m, n] = W.shape;
          const rd = new WaterFilling(await native().gaussianSource(W, H, { m, n, sigma: o.sigma }));
          const by: LayerError['by'] = {};
          const record = (name: string, bits: number, proxyLoss: number, type?: string) => (by[name] = { bits, proxyLoss, idealBits: rd.idealBits(proxyLoss), type });
          for (const codebook of o.codebooks) {
            const r = await quantizeLinear(W, H, { m, n, codebook, rho: CODEBOOK_TABLE[codebook].defaultRho, sigma: o.sigma });
            const saved = layerFromResult(b, k.kind, r);
            const dtypes = new Map<string, SafetensorsDType>(saved.tensors.map((t) => [t.name, t.dtype]));
            record(codebook, layerBits(saved.record, codebook, (t) => dtypes.get(t)!) / (m * n), r.proxyLoss);
          }
          for (const p of peers) {
            const { bits, type } = p.stored(name);
            record(p.name, bits, await native().proxyLoss(W, p.model.tensor(name), H, { m, n, sigma: o.sigma }), type);
          }
          const floor = rd.floor(REFERENCE_BITS);
          out.push({ layer: name.replace(/\.weight$/, ''), kind: k.short, weights: m * n, floor, by });
        }
      }
    }
    return out;
  } finally {
    model.close();
    for (const p of peers) p.model.close();
  }
}

const pct = (x: number) => `${(100 * x).toFixed(3)}%`;

export function renderLayerErrors(layers: LayerError[], names: string[], o: { calib: string; sigma: number }): string {
  const lines: string[] = [];
  lines.push(`Proxy loss of every linear layer (${layers.length}) under the ${o.calib} calibration Hessian (sigma ${o.sigma}), beside the Gaussian floor.`);
  lines.push('');
  lines.push(`| quantizer | bits/w | mean proxy loss | ideal bits for the same loss | bits over ideal | layers below the ${REFERENCE_BITS}-bit floor |`);
  lines.push('|---|---:|---:|---:|---:|---:|');
  for (const s of summarize(layers, names))
    lines.push(`| ${s.name} | ${s.bitsPerWeight.toFixed(2)} | ${pct(s.meanProxyLoss)} | ${s.idealBits.toFixed(2)} | ${(s.bitsPerWeight - s.idealBits).toFixed(2)} | ${s.belowFloor} of ${layers.length} |`);
  const meanFloor = layers.reduce((a, l) => a + l.floor, 0) / layers.length;
  lines.push(`| Gaussian floor | ${REFERENCE_BITS.toFixed(2)} | ${pct(meanFloor)} | ${REFERENCE_BITS.toFixed(2)} | 0.00 | - |`);
  lines.push('');
  lines.push(`Mean proxy loss by layer kind (the ${REFERENCE_BITS}-bit Gaussian floor last):`);
  lines.push('');
  lines.push(`| kind | ${names.join(' | ')} | floor ${REFERENCE_BITS}-bit |`);
  lines.push(`|---|${names.map(() => '---:').join('|')}|---:|`);
  for (const { short } of LINEAR_KINDS) {
    const ls = layers.filter((l) => l.kind === short);
    if (!ls.length) continue;
    const mean = (f: (l: LayerError) => number) => pct(ls.reduce((a, l) => a + f(l), 0) / ls.length);
    lines.push(`| ${short} | ${names.map((n) => mean((l) => l.by[n].proxyLoss)).join(' | ')} | ${mean((l) => l.floor)} |`);
  }
  const byType = storedTypes(layers, names);
  if (byType.length) {
    // A negative "bits over ideal" is a loss below the floor of the layer's own rate (see the header).
    lines.push('');
    lines.push("llama.cpp's files by the type each layer is stored in:");
    lines.push('');
    lines.push('| file | type | layers | kinds | bits/w | mean proxy loss | ideal bits for the same loss | bits over ideal | layers below the floor of their own rate |');
    lines.push('|---|---|---:|---|---:|---:|---:|---:|---:|');
    for (const t of byType)
      lines.push(`| ${t.name} | ${t.type} | ${t.layers} | ${t.kinds.join(', ')} | ${t.bitsPerWeight.toFixed(2)} | ${pct(t.meanProxyLoss)} | ${t.idealBits.toFixed(2)} | ${(t.bitsPerWeight - t.idealBits).toFixed(2)} | ${t.belowOwnFloor} of ${t.layers} |`);
  }
  return lines.join('\n') + '\n';
}

export interface StoredTypeSummary {
  name: string;
  type: string;
  layers: number;
  kinds: string[];
  bitsPerWeight: number;
  meanProxyLoss: number;
  idealBits: number;
  /** Layers whose ideal bits exceed the bits they are stored in. */
  belowOwnFloor: number;
}

/** Each llama.cpp file's layers grouped by their stored ggml type, in the order the types first appear. */
export function storedTypes(layers: LayerError[], names: string[]): StoredTypeSummary[] {
  const out: StoredTypeSummary[] = [];
  for (const name of names) {
    const groups = new Map<string, LayerError[]>();
    for (const l of layers) {
      const type = l.by[name].type;
      if (type !== undefined) groups.set(type, [...(groups.get(type) ?? []), l]);
    }
    for (const [type, ls] of groups) {
      const kinds = LINEAR_KINDS.map((k) => k.short).filter((k) => ls.some((l) => l.kind === k));
      const belowOwnFloor = ls.filter((l) => l.by[name].idealBits > l.by[name].bits).length;
      out.push({ name, type, layers: ls.length, kinds, ...aggregate(ls, name), belowOwnFloor });
    }
  }
  return out;
}

export function registerLayerErrors(bench: Command): void {
  bench
    .command('layer-errors')
    .description("Per-layer proxy loss of our codebooks and llama.cpp's quantizations of SmolLM2 beside the Gaussian floor (what any code of that size could do)")
    .option('--codebooks <list>', 'our codebooks, comma-separated', 'rvq4,rvq3,e8p')
    .option('--peer-types <list>', "llama.cpp types made by `quip bench quality` ('' for none)", PEER_TYPES.join(','))
    .option('--calib-samples <n>', 'calibration sequences of the Hessians (and of the peers\' imatrix)', '32')
    .option('--calib-ctx <n>', 'tokens per calibration sequence', '512')
    .option('--sigma <x>', 'damping of H', '0.01')
    .option('--blocks <n>', 'only the first n blocks')
    .option('--threads <t>', 'threads', '2')
    .option('--work <dir>', 'the bench quality work folder (imported model, Hessian cache, llama.cpp files)', '/tmp/quip-bench-quality')
    .option('--llama-cpp <dir>', 'llama.cpp build folder (default: where build-llama-cpp.sh puts it)')
    .option('--json <file>', 'write every layer\'s figures as JSON')
    .action(async (opts: Record<string, string | undefined>) => {
      const work = path.resolve(opts.work!);
      const modelDir = await ensureSweepModel(work);
      const codebooks = opts.codebooks!.split(',').map((c) => c.trim()).filter(Boolean);
      for (const c of codebooks) if (!(CODEBOOKS as readonly string[]).includes(c)) throw new UserError(`--codebooks: unknown codebook "${c}"; use ${CODEBOOKS.join(', ')}`, 'BAD_SETTING');
      const calibSamples = intOption(opts.calibSamples, '--calib-samples', 1)!, calibCtx = intOption(opts.calibCtx, '--calib-ctx', 8)!;
      const peers = opts.peerTypes!.split(',').map((t) => t.trim().toUpperCase()).filter(Boolean).map((name) => {
        const gguf = peerGgufPath(work, 'smollm2', name, calibSamples, calibCtx);
        if (!existsSync(gguf))
          throw new UserError(`${gguf} is missing: make llama.cpp's ${name} file first with \`quip bench quality --model smollm2 --work ${work} --calib-samples ${calibSamples} --calib-ctx ${calibCtx} --peer-types ${name}\` (needs ../shared/tools/build-llama-cpp.sh), or leave ${name} out of --peer-types.`, 'NOT_FOUND');
        return { name, gguf };
      });
      const sigma = numberOption(opts.sigma, '--sigma')!;
      if (!(sigma > 0)) throw new UserError(`--sigma must be positive, got "${opts.sigma}"`, 'BAD_SETTING');
      const layers = await runLayerErrors({
        modelDir, work, codebooks: codebooks as Codebook[], peers, llamaCpp: locateLlamaCpp(opts.llamaCpp), calibSamples, calibCtx, sigma,
        blocks: opts.blocks ? intOption(opts.blocks, '--blocks', 1)! : null, threads: intOption(opts.threads, '--threads', 1)!,
        onStatus: (s) => process.stderr.write(`  ${s}\n`),
      });
      const names = [...codebooks.map((c) => c as string), ...peers.map((p) => p.name)];
      process.stdout.write(renderLayerErrors(layers, names, { calib: `${calibSamples} x ${calibCtx}`, sigma }));
      if (opts.json) writeFileSync(opts.json, JSON.stringify({ referenceBits: REFERENCE_BITS, calibSamples, calibCtx, sigma, layers }, null, 1));
    });
}
