// What is inside a model folder: architecture, parameter counts, every linear layer with its Hadamard
// factorisation (from the native core, so inspection shows exactly what quantization will use), and
// the estimated size on disk after QuIP# quantization.
import path from 'node:path';

import { ModelInspection, type Architecture, type HadamardFactor, type LinearKind, type LinearLayer } from '../../contract/model.js';
import { CODEBOOK_TABLE, codebookFor, DEFAULTS, estimateWeightBytes } from '../../domain/quantize/index.js';
import { UserError } from '../../util/errors.js';
import { sampleModelDir } from '../../util/paths.js';
import { native } from '../native.js';
import { openModel, type OpenedModel } from './loader.js';

export const LINEAR_KINDS: ReadonlyArray<{ kind: LinearKind; suffix: string }> = [
  { kind: 'q', suffix: 'self_attn.q_proj' },
  { kind: 'k', suffix: 'self_attn.k_proj' },
  { kind: 'v', suffix: 'self_attn.v_proj' },
  { kind: 'o', suffix: 'self_attn.o_proj' },
  { kind: 'gate', suffix: 'mlp.gate_proj' },
  { kind: 'up', suffix: 'mlp.up_proj' },
  { kind: 'down', suffix: 'mlp.down_proj' },
];

/** BlockLDLQ works on groups of 8 input columns; narrower remainders are zero-padded (spec section 5). */
export function paddedWidth(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/** n = K x 2^k as the native core will build it (quip::hadamard_plan). */
export function hadamardFactor(n: number): HadamardFactor {
  const addon = native();
  if (typeof addon.hadamardPlan !== 'function') {
    throw new UserError('The native core is older than this app (it has no hadamardPlan); rebuild it with `node scripts/build.mjs --only native`.', 'NATIVE_OUTDATED');
  }
  const p = addon.hadamardPlan(n);
  return { n: p.n, k: p.k, pow2: p.pow2, method: p.method, construction: p.construction || null };
}

/** "43 x 2^2 (hadamard)" — how a factorisation reads in tables. */
export function formatHadamard(f: HadamardFactor): string {
  return `${f.k} x 2^${Math.log2(f.pow2)} (${f.method})`;
}

/**
 * The linear layers QuIP# quantizes, block by block in q, k, v, o, gate, up, down order. In a quantized
 * folder a recorded layer's dtype reads as its codebook, e.g. "e8p 2-bit".
 */
export function linearLayers(model: Pick<OpenedModel, 'architecture' | 'tensorInfo' | 'quantization'>): Array<Omit<LinearLayer, 'hadamardIn' | 'hadamardOut'>> {
  const out: Array<Omit<LinearLayer, 'hadamardIn' | 'hadamardOut'>> = [];
  const q = model.quantization;
  for (let block = 0; block < model.architecture.numLayers; block++) {
    for (const { kind, suffix } of LINEAR_KINDS) {
      const name = `model.layers.${block}.${suffix}`;
      const record = q?.layers[name];
      const [m, n] = record ? [record.m, record.n] : model.tensorInfo(`${name}.weight`).shape;
      const dtype = record ? `${q!.codebook} ${q!.bits}-bit` : model.tensorInfo(`${name}.weight`).dtype;
      out.push({ name, block, kind, outFeatures: m, inFeatures: n, dtype, paddedIn: paddedWidth(n) });
    }
  }
  return out;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Size on disk after quantizing every linear layer to `bits` (2: E8P; 3 and 4: E8P plus a residual
 * stage). Per linear layer of m x n:
 *   codes  bits/8 bytes per weight of the padded width: m * paddedIn * bits / 8
 *   SU     the input-side signs (n), one byte each (+-1; fine-tuning makes them fp32)
 *   SV     the output-side signs (m) with each row's RMS folded in (quip/ldlq.h row scales): fp32
 *   scales one fp32 per codebook stage (1 at 2 bits, 2 for the residual stage at 3 and 4 bits)
 * Every other tensor (embeddings, lm_head when untied, norms, biases) stays in 16 bits. `bits` = 16
 * is the plain 16-bit model. Headers and the tokenizer are not counted.
 */
export function estimateSize(linears: ReadonlyArray<Pick<LinearLayer, 'outFeatures' | 'inFeatures' | 'paddedIn'>>, unquantizedParams: number, bits: 2 | 3 | 4 | 16) {
  const linearParams = linears.reduce((s, l) => s + l.outFeatures * l.inFeatures, 0);
  if (bits === 16) return { bits, bytes: 2 * (linearParams + unquantizedParams), bitsPerLinearWeight: 16 };
  const stages = CODEBOOK_TABLE[codebookFor(bits, 'e8p')].stages;
  let linearBytes = 0;
  for (const l of linears) {
    linearBytes += (l.outFeatures * l.paddedIn * bits) / 8 + l.inFeatures + 4 * l.outFeatures + 4 * stages;
  }
  linearBytes = Math.ceil(linearBytes);
  return { bits, bytes: linearBytes + 2 * unquantizedParams, bitsPerLinearWeight: linearParams ? (8 * linearBytes) / linearParams : 0 };
}

export type InspectSource = string | { path: string; repoId?: string | null; revision?: string | null };

/** Where a folder came from: the built-in sample, a Hugging Face cache snapshot, or elsewhere. */
function describeSource(source: InspectSource): ModelInspection['source'] {
  const given = typeof source === 'string' ? { path: source } : source;
  const dir = path.resolve(given.path);
  if (given.repoId) return { kind: 'hub', path: dir, repoId: given.repoId, revision: given.revision ?? null };
  if (dir === path.resolve(sampleModelDir())) return { kind: 'sample', path: dir, repoId: null, revision: null };
  // <cache>/models--org--name/snapshots/<commit>
  const m = /[\\/]models--([^\\/]+?)--([^\\/]+)[\\/]snapshots[\\/]([^\\/]+)$/.exec(dir);
  if (m) return { kind: 'hub', path: dir, repoId: `${m[1]}/${m[2]}`, revision: m[3] };
  return { kind: 'local', path: dir, repoId: null, revision: null };
}

export function inspectLoaded(model: OpenedModel, source: ModelInspection['source']): ModelInspection {
  const arch: Architecture = model.architecture;
  const plans = new Map<number, HadamardFactor>();
  const plan = (n: number) => {
    let p = plans.get(n);
    if (!p) plans.set(n, (p = hadamardFactor(n)));
    return p;
  };
  const linears: LinearLayer[] = linearLayers(model).map((l) => ({ ...l, hadamardIn: plan(l.inFeatures), hadamardOut: plan(l.outFeatures) }));
  const linearNames = new Set(linears.map((l) => `${l.name}.weight`));
  // Codes and sign vectors of quantized layers stand for the layer's m x n weights.
  const quantizedTensors = new Set(
    Object.values(model.quantization?.layers ?? {}).flatMap((r) => [r.tensors.codes, r.tensors.codesResidual, r.tensors.su, r.tensors.sv]),
  );

  let linear = linears.filter((l) => model.quantization?.layers[l.name]).reduce((s, l) => s + l.outFeatures * l.inFeatures, 0);
  let embedding = 0, other = 0;
  for (const name of model.tensorNames()) {
    // A tied lm_head stored anyway is the embedding again, not more parameters.
    if ((name === 'lm_head.weight' && arch.tiedEmbeddings) || quantizedTensors.has(name)) continue;
    const count = numel(model.tensorInfo(name).shape);
    if (linearNames.has(name)) linear += count;
    else if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') embedding += count;
    else other += count;
  }
  const unquantized = embedding + other;
  const tok = model.tokenizer;
  return ModelInspection.parse({
    source,
    architecture: arch,
    parameters: { total: linear + embedding + other, linear, embedding, other },
    linears,
    // Bytes: the weight files a run at these bits (default settings) writes, as New run estimates them
    // (app/domain/quantize/estimate.ts); bits per weight: of the linear layers alone.
    sizes: ([2, 3, 4, 16] as const).map((bits) => ({
      ...estimateSize(linears, unquantized, bits),
      bytes: estimateWeightBytes(arch, bits === 16 ? null : { codebook: codebookFor(bits, DEFAULTS.codebook), incoherence: DEFAULTS.incoherence, rowScale: DEFAULTS.rowScale }),
    })),
    tokenizer: tok && {
      kind: tok.kind,
      vocabSize: tok.vocabSize,
      bosToken: tok.bosToken,
      eosToken: tok.eosToken,
      addBos: tok.addBos,
      hasChatTemplate: model.chatTemplate !== null,
    },
    weightFiles: model.weightFiles,
    quantization: model.quantization,
    warnings: [
      ...model.warnings,
      ...(tok && tok.vocabSize > arch.vocabSize ? [`tokenizer.json has ${tok.vocabSize} tokens but config.json vocab_size is ${arch.vocabSize}.`] : []),
    ],
  });
}

/** Opens a local model folder (a hub id must be resolved to its cache folder first) and inspects it. */
export async function inspectModel(source: InspectSource): Promise<ModelInspection> {
  const described = describeSource(source);
  const model = await openModel(described.path);
  try {
    return inspectLoaded(model, described);
  } finally {
    model.close();
  }
}
