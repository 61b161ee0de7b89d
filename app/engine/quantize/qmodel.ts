// A quantized layer between the numeric core and the folder: layerFromResult turns a quantizeLinear
// result into the tensors to save, its config record and the spec qinfer runs in memory right after
// quantization. Reading a saved folder back is runtime/quantized-model.ts.
import { codeBitsPerWeight, hasResidual, type Codebook } from '../../domain/quantize/index.js';
import type { QuantizedLayerRecord } from '../model/quantized-format.js';
import { bytesOf, type TensorToWrite } from '../model/safetensors-writer.js';
import type { QuantizeLinearResult } from '../quip/native-types.js';
import type { EngineLinearKind } from '../runtime/native-types.js';
import type { QuantizedLinearSpec } from '../runtime/qinfer-native-types.js';
import { linearName } from '../runtime/quantized-model.js';

/** RTN level indices (one byte per weight, 8 per group) -> b bytes per group, b bits per level. */
export function packLevels(levels: Uint8Array, bits: number): Uint8Array {
  const groups = levels.length / 8;
  const out = new Uint8Array(groups * bits);
  for (let g = 0; g < groups; g++) {
    let word = 0;
    for (let i = 0; i < 8; i++) word += levels[g * 8 + i] * 2 ** (bits * i);
    for (let k = 0; k < bits; k++) out[g * bits + k] = Math.floor(word / 2 ** (8 * k)) & 0xff;
  }
  return out;
}

export interface LayerTensors {
  name: string;
  block: number;
  kind: EngineLinearKind;
  record: QuantizedLayerRecord;
  spec: QuantizedLinearSpec;
  tensors: TensorToWrite[];
}

/** A quantizeLinear result -> what is saved and what inference runs. */
export function layerFromResult(block: number, kind: EngineLinearKind, r: QuantizeLinearResult): LayerTensors {
  const name = linearName(block, kind);
  const groups = r.nPadded / 8;
  const cb = r.codebook as Codebook;
  const tensors: TensorToWrite[] = [];
  let codes: Uint16Array | Uint8Array;
  let residual: Uint16Array | Uint8Array | null = null;
  if (cb.startsWith('rtn')) {
    const bits = codeBitsPerWeight(cb);
    codes = packLevels(r.codes[0] as Uint8Array, bits);
    tensors.push({ name: `${name}.codes`, dtype: 'U8', shape: [r.m, groups * bits], source: { bytes: codes } });
  } else {
    codes = r.codes[0] as Uint16Array;
    tensors.push({ name: `${name}.codes`, dtype: 'U16', shape: [r.m, groups], source: { bytes: bytesOf(codes) } });
    if (cb !== 'e8p') {
      residual = r.codes[1];
      tensors.push({ name: `${name}.codes_residual`, dtype: cb === 'rvq4' ? 'U16' : 'U8', shape: [r.m, groups], source: { bytes: bytesOf(residual) } });
    }
  }
  if (r.incoherence) {
    tensors.push({ name: `${name}.su`, dtype: 'I8', shape: [r.n], source: { bytes: bytesOf(r.su) } });
    tensors.push({ name: `${name}.sv`, dtype: r.sv instanceof Float32Array ? 'F32' : 'I8', shape: [r.m], source: { bytes: bytesOf(r.sv) } });
  }
  const hadamard = (h: QuantizeLinearResult['hadamardIn']) => ({ n: h.n, k: h.k, pow2: h.pow2, method: h.method, construction: h.construction });
  const record: QuantizedLayerRecord = {
    m: r.m,
    n: r.n,
    nPadded: r.nPadded,
    seed: r.seed,
    scale: r.scale,
    residualScale: hasResidual(cb) ? r.s2 : null,
    hadamardIn: r.incoherence ? hadamard(r.hadamardIn) : null,
    hadamardOut: r.incoherence ? hadamard(r.hadamardOut) : null,
    tensors: {
      codes: `${name}.codes`,
      codesResidual: residual ? `${name}.codes_residual` : null,
      su: r.incoherence ? `${name}.su` : null,
      sv: r.incoherence ? `${name}.sv` : null,
    },
  };
  const spec: QuantizedLinearSpec = {
    m: r.m,
    n: r.n,
    codebook: cb,
    codes,
    residual,
    scale: r.scale,
    residualScale: record.residualScale,
    incoherence: r.incoherence,
    su: r.incoherence ? r.su : null,
    sv: r.incoherence ? r.sv : null,
  };
  return { name, block, kind, record, spec, tensors };
}
