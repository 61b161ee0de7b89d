// A saved quantized folder as inference runs it (architecture.md, "Data on disk";
// model/quantized-format.ts describes the folder):
//   - openQuantizedWeights: model.safetensors memory-mapped -> the unquantized tensors as TensorRefs
//     and every quantized layer's spec pointing into the map (codes are never copied)
//   - createQuantizedEngine: an EngineModel whose linears are the quantized layers (native qinfer);
//     in a mixed folder the layers kept at 16 bits run dense from their own tensors
// The quantizer (quantize/qmodel.ts) builds the same specs in memory right after quantizing a layer.
import path from 'node:path';

import type { Architecture } from '../../contract/model.js';
import type { Codebook } from '../../domain/quantize/index.js';
import { UserError } from '../../util/errors.js';
import { QuantizationConfig, type QuantizedLayerRecord } from '../model/quantized-format.js';
import { openSafetensors, type SafetensorsHeader } from '../model/safetensors.js';
import { native, type MappedFile, type TensorDType, type TensorRef } from '../native.js';
import type { EngineLinearKind, EngineModel } from './native-types.js';
import type { CodePlane, QuantizedLinearSpec } from './qinfer-native-types.js';

export const LINEAR_KINDS: Array<{ kind: EngineLinearKind; short: 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down'; module: string }> = [
  { kind: 'q_proj', short: 'q', module: 'self_attn' },
  { kind: 'k_proj', short: 'k', module: 'self_attn' },
  { kind: 'v_proj', short: 'v', module: 'self_attn' },
  { kind: 'o_proj', short: 'o', module: 'self_attn' },
  { kind: 'gate_proj', short: 'gate', module: 'mlp' },
  { kind: 'up_proj', short: 'up', module: 'mlp' },
  { kind: 'down_proj', short: 'down', module: 'mlp' },
];

export function linearName(block: number, kind: EngineLinearKind): string {
  const k = LINEAR_KINDS.find((l) => l.kind === kind)!;
  return `model.layers.${block}.${k.module}.${kind}`;
}

/** Which linears a Hugging Face tensor name belongs to (null for embeddings, norms, lm_head). */
export function isLinearWeight(name: string, layers: number): boolean {
  const m = /^model\.layers\.(\d+)\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$/.exec(name);
  return !!m && Number(m[1]) < layers;
}

/** Builds a layer's spec from its record and a way to fetch each named tensor's bytes. */
export function specFromRecord(
  codebook: Codebook,
  record: QuantizedLayerRecord,
  plane: (name: string) => CodePlane,
  signs: (name: string) => Int8Array | Float32Array,
): QuantizedLinearSpec {
  return {
    m: record.m,
    n: record.n,
    codebook: record.codebook ?? codebook,
    codes: plane(record.tensors.codes),
    residual: record.tensors.codesResidual ? plane(record.tensors.codesResidual) : null,
    scale: record.scale,
    residualScale: record.residualScale,
    incoherence: record.tensors.su !== null,
    su: record.tensors.su ? signs(record.tensors.su) : null,
    sv: record.tensors.sv ? signs(record.tensors.sv) : null,
  };
}

export interface QuantizedWeights {
  qconfig: QuantizationConfig;
  /** Unquantized tensors (embeddings, norms, lm_head) by name. */
  unquantized: Map<string, { dtype: TensorDType; shape: number[]; offset: number; bytes: number }>;
  layers: Array<{ block: number; kind: EngineLinearKind; spec: QuantizedLinearSpec }>;
  file: MappedFile;
  header: SafetensorsHeader;
  close(): void;
}

/** Parses quantization_config of a config.json, naming the folder when it is wrong. */
export function parseQuantizationConfig(dir: string, config: Record<string, unknown>): QuantizationConfig {
  const r = QuantizationConfig.safeParse(config.quantization_config);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new UserError(
      `config.json in ${dir}: quantization_config is not one this studio can load (${issue.path.join('.') || 'root'}: ${issue.message}). It may come from a newer version or another tool.`,
      'BAD_CONFIG',
    );
  }
  return r.data;
}

/**
 * Opens model.safetensors of a quantized folder: memory-maps it, checks every quantized layer
 * against the architecture, and gives the unquantized tensors plus every layer's spec.
 */
export function openQuantizedWeights(dir: string, config: Record<string, unknown>, arch: Architecture): QuantizedWeights {
  const qconfig = parseQuantizationConfig(dir, config);
  const filePath = path.join(dir, 'model.safetensors');
  const { file, header } = openSafetensors(filePath, true);
  try {
    const entries = new Map(header.tensors.map((t) => [t.name, t]));
    const entry = (name: string) => {
      const e = entries.get(name);
      if (!e) throw new UserError(`${filePath} has no tensor ${name}, which quantization_config names; the folder is incomplete. Quantize the model again.`, 'NOT_A_MODEL');
      return e;
    };
    const plane = (name: string): CodePlane => {
      const e = entry(name);
      return { file, offset: e.offset, bytes: e.bytes };
    };
    const signs = (name: string): Int8Array | Float32Array => {
      const e = entry(name);
      const b = file.read(e.offset, e.bytes);
      // Fine-tuned sign vectors are real numbers (float32); plain ones are +-1 bytes.
      return e.dtype === 'F32' ? new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) : new Int8Array(b);
    };
    const H = arch.hiddenSize, I = arch.intermediateSize, q = arch.numHeads * arch.headDim, kv = arch.numKeyValueHeads * arch.headDim;
    const shapes: Record<EngineLinearKind, [number, number]> = {
      q_proj: [q, H], k_proj: [kv, H], v_proj: [kv, H], o_proj: [H, q], gate_proj: [I, H], up_proj: [I, H], down_proj: [H, I],
    };
    const layers: QuantizedWeights['layers'] = [];
    for (let b = 0; b < arch.numLayers; b++) {
      for (const { kind } of LINEAR_KINDS) {
        const name = linearName(b, kind);
        const rec = qconfig.layers[name];
        const dense = qconfig.dense_layers?.[name];
        if (dense) {
          // Kept at 16 bits: its weight is one of the unquantized tensors below.
          const e = entry(dense.tensor);
          if (e.shape[0] !== shapes[kind][0] || e.shape[1] !== shapes[kind][1]) {
            throw new UserError(`${filePath}: ${dense.tensor} is ${e.shape.join('x')} but the architecture says ${shapes[kind].join('x')}.`, 'SHAPE_MISMATCH');
          }
          continue;
        }
        if (!rec) throw new UserError(`config.json in ${dir}: quantization_config has no entry for ${name}; the folder is incomplete.`, 'NOT_A_MODEL');
        const [m, n] = shapes[kind];
        if (rec.m !== m || rec.n !== n) {
          throw new UserError(`config.json in ${dir}: ${name} is recorded as ${rec.m}x${rec.n} but the architecture says ${m}x${n}.`, 'SHAPE_MISMATCH');
        }
        checkHadamard(dir, name, rec);
        layers.push({ block: b, kind, spec: specFromRecord(qconfig.codebook, rec, plane, signs) });
      }
    }
    const unquantized: QuantizedWeights['unquantized'] = new Map();
    for (const e of header.tensors) {
      if (e.dtype === 'F32' || e.dtype === 'F16' || e.dtype === 'BF16') unquantized.set(e.name, { dtype: e.dtype, shape: e.shape, offset: e.offset, bytes: e.bytes });
    }
    return { qconfig, unquantized, layers, file, header, close: () => file.close() };
  } catch (err) {
    file.close();
    throw err;
  }
}

/**
 * Inference rebuilds each layer's Hadamard transforms from their sizes; a folder quantized with
 * another construction of the same order (an older version's fallback, say) would decode to the
 * wrong weights, so it is refused by name.
 */
export function checkHadamard(dir: string, name: string, rec: QuantizedLayerRecord): void {
  for (const [side, h] of [['input', rec.hadamardIn], ['output', rec.hadamardOut]] as const) {
    if (!h) continue;
    const now = native().hadamardPlan(h.n);
    if (now.k !== h.k || now.pow2 !== h.pow2 || now.method !== h.method || (h.construction !== undefined && h.construction !== now.construction)) {
      throw new UserError(
        `${dir}: ${name} was quantized with a ${h.method} ${h.k}x${h.k} factor for its ${side} transform (${h.construction ?? 'no construction recorded'}), ` +
          `but this version builds ${now.method} ${now.k}x${now.k} (${now.construction ?? 'Sylvester'}) for size ${h.n}. Quantize the model again with this version.`,
        'INCOMPATIBLE_MODEL',
      );
    }
  }
}

/** An EngineModel over a quantized folder (config.json with quantization_config). */
export function openQuantizedEngine(dir: string, config: Record<string, unknown>, arch: Architecture): EngineModel {
  const w = openQuantizedWeights(dir, config, arch);
  try {
    return createQuantizedEngine(arch, w);
  } finally {
    w.close(); // the native model holds its own reference to the mapping
  }
}

/** An EngineModel over a quantized folder's weights. */
export function createQuantizedEngine(arch: Architecture, weights: Pick<QuantizedWeights, 'unquantized' | 'layers' | 'file'>): EngineModel {
  const refs: Record<string, TensorRef> = {};
  for (const [name, t] of weights.unquantized) refs[name] = { file: weights.file, offset: t.offset, dtype: t.dtype, shape: [...t.shape] };
  if (weights.layers.length === arch.numLayers * LINEAR_KINDS.length) return native().createQuantizedModel(arch, refs, weights.layers);
  // Mixed widths: some linears stay at 16 bits. The native quantized model takes quantized layers
  // only, so a dense model is built over the folder's tensors and the quantized layers replace
  // theirs. A replaced layer's dense view is never read (dense linears read their weights lazily, in
  // place); it points at the start of the mapping, which holds at least that many bytes.
  for (const { block, kind, spec } of weights.layers) {
    const bytes = spec.m * spec.n * 2;
    if (bytes > weights.file.size) throw new UserError(`cannot build the mixed model: the folder's model.safetensors (${weights.file.size} bytes) is smaller than one dense view of ${linearName(block, kind)}.`, 'NOT_A_MODEL');
    refs[`${linearName(block, kind)}.weight`] = { file: weights.file, offset: 0, dtype: 'F16', shape: [spec.m, spec.n] };
  }
  const model = native().createModel(arch, refs);
  for (const { block, kind, spec } of weights.layers) native().qinferSetLinear(model, block, kind, spec);
  return model;
}
