// Inspection of stories260k: parameter counts from the data README, every linear layer with its
// Hadamard factorisation checked against the spec's rule, and sizes worked out by hand.
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { ModelInspection } from '../../contract/model.js';
import { sampleModelDir } from '../../util/paths.js';
import type { QuantizationConfig } from './quantized-format.js';
import { codebookFor, estimateWeightBytes } from '../../domain/quantize/index.js';
import { estimateSize, formatHadamard, inspectModel } from './inspect.js';
import { loadModel } from './loader.js';
import { STORIES_DIR, storiesCopy, storiesTensors, writeSafetensors, type RawTensor } from '../../testing/model-files.js';

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

const SPEC_K = [12, 20, 28, 36, 52, 60, 108, 116, 124, 140, 156, 172];

test('stories260k: architecture, parameters and 35 linear layers', async () => {
  const r = await inspectModel(STORIES_DIR);
  expect(() => ModelInspection.parse(r)).not.toThrow();
  expect(r.source).toEqual({ kind: 'local', path: STORIES_DIR, repoId: null, revision: null });
  expect(r.architecture).toMatchObject({ hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKeyValueHeads: 4, vocabSize: 512, tiedEmbeddings: true });
  // 260,032 parameters (data README); 5 x (64*64*2 + 32*64*2 + 172*64*3) in the linear layers,
  // 512*64 in the tied embedding, 5 x 2 x 64 + 64 in the RMSNorm weights.
  expect(r.parameters).toEqual({ total: 260_032, linear: 226_560, embedding: 32_768, other: 704 });

  expect(r.linears).toHaveLength(35);
  expect(r.linears.map((l) => l.kind).slice(0, 7)).toEqual(['q', 'k', 'v', 'o', 'gate', 'up', 'down']);
  const down = r.linears.find((l) => l.name === 'model.layers.3.mlp.down_proj')!;
  expect(down).toMatchObject({ block: 3, outFeatures: 64, inFeatures: 172, paddedIn: 176, dtype: 'F32' });
  const k = r.linears.find((l) => l.name === 'model.layers.0.self_attn.k_proj')!;
  expect(k).toMatchObject({ outFeatures: 32, inFeatures: 64, paddedIn: 64 });
  expect(k.hadamardOut).toEqual({ n: 32, k: 1, pow2: 32, method: 'sylvester', construction: null });

  // Every factorisation follows the spec: n = K * 2^k, K = 1 for powers of two, else the first K of
  // the spec's list with n / K a power of two (172 is on it, so 172 = 172 x 2^0).
  for (const l of r.linears) {
    for (const h of [l.hadamardIn, l.hadamardOut]) {
      const n = h === l.hadamardIn ? l.inFeatures : l.outFeatures;
      expect(h.n).toBe(n);
      expect(h.k * h.pow2).toBe(n);
      expect(Number.isInteger(Math.log2(h.pow2))).toBe(true);
      const isPow2 = Number.isInteger(Math.log2(n));
      if (isPow2) expect(h).toMatchObject({ k: 1, method: 'sylvester' });
      else {
        expect(h.k).toBe(SPEC_K.find((K) => n % K === 0 && Number.isInteger(Math.log2(n / K))));
        expect(h.method).not.toBe('sylvester');
        expect(h.construction).toBeTruthy();
      }
    }
  }
  expect(formatHadamard(down.hadamardIn)).toMatch(/^172 x 2\^0 \((hadamard|random-orthogonal)\)$/);
  expect(formatHadamard(down.hadamardOut)).toBe('1 x 2^6 (sylvester)');

  expect(r.tokenizer).toEqual({ kind: 'BPE', vocabSize: 512, bosToken: '<s>', eosToken: '</s>', addBos: true, hasChatTemplate: false });
  expect(r.weightFiles).toEqual([{ file: 'model.safetensors', bytes: 1_044_984, tensors: 47 }]);
  expect(r.quantization).toBeNull();
  expect(r.warnings).toEqual([]);
});

test('stories260k: estimated sizes at 2, 3, 4 and 16 bits, worked out by hand', async () => {
  const r = await inspectModel(STORIES_DIR);
  // Per block, (m, n, padded n): q 64x64, k 32x64, v 32x64, o 64x64, gate/up 172x64, down 64x172 (176).
  // Code weights per block = m * padded n; SU has n one-byte entries, SV m fp32 entries (row scales).
  const codeWeights = 5 * (64 * 64 * 2 + 32 * 64 * 2 + 172 * 64 * 2 + 64 * 176); // 229,120
  const suEntries = 5 * (64 * 6 + 172); // 2,780
  const svEntries = 5 * (64 + 32 + 32 + 64 + 172 + 172 + 64); // 3,000
  const linearWeights = 226_560;
  const unquantizedBytes = 2 * (32_768 + 704);
  const expected = (bits: number, stages: number) => {
    const linearBytes = (codeWeights * bits) / 8 + suEntries + 4 * svEntries + 4 * stages * 35;
    return { bits, bytes: linearBytes + unquantizedBytes, bitsPerLinearWeight: (8 * linearBytes) / linearWeights };
  };
  // Bits per weight by hand; bytes: the weight files New run predicts for the same run (one
  // estimator, checked against written files in app/domain/quantize/estimate.test.ts), a little
  // more than the tensors alone (headers).
  const settings = (bits: 2 | 3 | 4) => ({ codebook: codebookFor(bits, 'e8p'), incoherence: true, rowScale: true });
  for (const [i, bits, stages] of [[0, 2, 1], [1, 3, 2], [2, 4, 2]] as const) {
    expect(r.sizes[i]).toEqual({ ...expected(bits, stages), bytes: estimateWeightBytes(r.architecture, settings(bits)) });
    expect(r.sizes[i]!.bytes).toBeGreaterThan(expected(bits, stages).bytes);
  }
  expect(r.sizes[3]).toEqual({ bits: 16, bytes: estimateWeightBytes(r.architecture, null), bitsPerLinearWeight: 16 });
  expect(r.sizes[3]!.bytes).toBeGreaterThan(2 * 260_032);
  // Tiny layers pay a lot for sign vectors: more than 2 bits per weight at "2 bits".
  expect(r.sizes[0].bitsPerLinearWeight).toBeGreaterThan(2.4);
});

test('sizes of a realistic layer: 2 bits plus small overheads per weight', () => {
  // One 4096 x 4096 layer: codes 2 bits; SU (8 bits) and SV (32 bits) per row add 40/4096 = 0.0098 bits.
  const s = estimateSize([{ outFeatures: 4096, inFeatures: 4096, paddedIn: 4096 }], 0, 2);
  expect(s.bitsPerLinearWeight).toBeCloseTo(2 + (8 * 4096 + 32 * 4096 + 32) / 4096 ** 2, 12);
});

test('sources: the sample, a Hugging Face cache snapshot, and remote code warnings', async () => {
  const sample = await inspectModel(sampleModelDir());
  expect(sample.source.kind).toBe('sample');
  expect(sample.parameters.total).toBe(260_032);

  const root = storiesCopy((cfg) => {
    cfg.auto_map = { AutoModelForCausalLM: 'modeling_x.X' };
  });
  temps.push(root);
  // A folder laid out like the HF cache: <root>/models--org--name/snapshots/<commit>
  const snap = path.join(root, 'models--some-org--tiny-llama', 'snapshots', 'abc123');
  mkdirSync(snap, { recursive: true });
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) renameSync(path.join(root, f), path.join(snap, f));
  writeSafetensors(path.join(snap, 'model.safetensors'), storiesTensors());
  const hub = await inspectModel(snap);
  expect(hub.source).toEqual({ kind: 'hub', path: snap, repoId: 'some-org/tiny-llama', revision: 'abc123' });
  expect(hub.warnings).toEqual([expect.stringMatching(/custom model code \(modeling_x\.X\).*never runs code/)]);
  expect((await inspectModel({ path: snap, repoId: 'a/b', revision: 'c' })).source).toMatchObject({ kind: 'hub', repoId: 'a/b', revision: 'c' });
});

/** A folder laid out as the studio's quantizer writes one (app/engine/model/quantized-format.ts), codes zero. */
function quantizedStories(edit?: (q: QuantizationConfig) => void): string {
  const layers: QuantizationConfig['layers'] = {};
  const extra: RawTensor[] = [];
  for (let b = 0; b < 5; b++) {
    for (const [suffix, m, n] of [['self_attn.q_proj', 64, 64], ['self_attn.k_proj', 32, 64], ['self_attn.v_proj', 32, 64], ['self_attn.o_proj', 64, 64], ['mlp.gate_proj', 172, 64], ['mlp.up_proj', 172, 64], ['mlp.down_proj', 64, 172]] as const) {
      const name = `model.layers.${b}.${suffix}`;
      const nPadded = Math.ceil(n / 8) * 8;
      const hadamard = (x: number) => ({ n: x, k: x === 172 ? 172 : 1, pow2: x === 172 ? 1 : x, method: x === 172 ? ('random-orthogonal' as const) : ('sylvester' as const) });
      layers[name] = {
        m, n, nPadded, seed: b, scale: 0.01, residualScale: null, hadamardIn: hadamard(n), hadamardOut: hadamard(m),
        tensors: { codes: `${name}.codes`, codesResidual: null, su: `${name}.su`, sv: `${name}.sv` },
      };
      extra.push({ name: `${name}.codes`, dtype: 'U16', shape: [m, nPadded / 8], data: Buffer.alloc(m * nPadded / 4) });
      extra.push({ name: `${name}.su`, dtype: 'F16', shape: [n], data: Buffer.alloc(2 * n) });
      extra.push({ name: `${name}.sv`, dtype: 'F16', shape: [m], data: Buffer.alloc(2 * m) });
    }
  }
  const q: QuantizationConfig = {
    quant_method: 'quip-sharp', format_version: 1, engine: { name: 'quip-studio', version: '0.1.0' }, codebook: 'e8p', bits: 2,
    incoherence: true, ldlq: true, sigma: 0.01, rho: 0.9, tune_iters: 0, seed: 1, calibration: { textFile: null, samples: 8, ctx: 64 },
    hessian: 'damped-normalised', unquantized_dtype: 'F32', layers,
  };
  edit?.(q);
  const dir = storiesCopy((cfg) => {
    cfg.quantization_config = q;
  });
  temps.push(dir);
  const linear = new Set(Object.keys(layers).map((l) => `${l}.weight`));
  writeSafetensors(path.join(dir, 'model.safetensors'), [...storiesTensors().filter((t) => !linear.has(t.name)), ...extra]);
  return dir;
}

test("the studio's own quantized folder: codes stand for the linear layers, the record is reported", async () => {
  const dir = quantizedStories();
  const r = await inspectModel(dir);
  expect(r.quantization).toMatchObject({ quant_method: 'quip-sharp', codebook: 'e8p', bits: 2 });
  expect(r.linears).toHaveLength(35);
  expect(r.linears[6]).toMatchObject({ name: 'model.layers.0.mlp.down_proj', outFeatures: 64, inFeatures: 172, paddedIn: 176, dtype: 'e8p 2-bit' });
  expect(r.parameters).toEqual({ total: 260_032, linear: 226_560, embedding: 32_768, other: 704 });
  const m = await loadModel(dir);
  try {
    expect(m.tensorInfo('model.layers.0.mlp.down_proj.codes')).toEqual({ dtype: 'U16', shape: [64, 22], file: 'model.safetensors' });
    expect(() => m.tensor('model.layers.0.mlp.down_proj.codes')).toThrow(/holds U16 codes of a quantized layer/);
  } finally {
    m.close();
  }
});

test('quantized folders that do not add up are refused', async () => {
  await expect(inspectModel(quantizedStories((q) => (q.layers['model.layers.1.mlp.up_proj'].m = 171)))).rejects.toThrow(
    /^config\.json: quantization_config records model\.layers\.1\.mlp\.up_proj as 171 x 64 but the architecture .* says 172 x 64/,
  );
  await expect(inspectModel(quantizedStories((q) => (q.layers['model.layers.2.self_attn.q_proj'].tensors.su = 'nope.su')))).rejects.toThrow(
    /^model\.safetensors: tensor nope\.su of the quantized layer model\.layers\.2\.self_attn\.q_proj is missing/,
  );
  await expect(inspectModel(quantizedStories((q) => ((q as { bits: unknown }).bits = 'two')))).rejects.toThrow(/^config\.json: quantization_config is not a valid QuIP# record \(bits:/);
});

test('integer tensors outside a quantized folder are refused by name', async () => {
  const dir = storiesCopy();
  temps.push(dir);
  writeSafetensors(path.join(dir, 'model.safetensors'), [...storiesTensors(), { name: 'extra.codes', dtype: 'U16', shape: [4], data: Buffer.alloc(8) }]);
  await expect(inspectModel(dir)).rejects.toThrow(/^model\.safetensors: U16 tensors are not supported \(tensor extra\.codes\)/);
});
