// Every linear-layer width of the families issue #20 brings (published configs: hidden, intermediate,
// q and k/v widths) has a true Hadamard factorisation n = K x 2^k (never the random-orthogonal
// fallback), the one `quip inspect` shows; and the transform built for it is a scaled Hadamard matrix:
// each sampled column has every entry +-1/sqrt(n) and the sampled columns are orthonormal.
import { describe, expect, it } from 'vitest';

import { native } from '../native.js';
import { formatHadamard, hadamardFactor } from './inspect.js';

// [model, widths] from each model's config.json: hidden_size, intermediate_size, heads x head_dim,
// kv_heads x head_dim.
const MODELS: Array<[string, number[]]> = [
  ['Qwen2.5-0.5B', [896, 4864, 128]],
  ['Qwen2.5-1.5B', [1536, 8960, 256]],
  ['Qwen2.5-3B', [2048, 11008, 256]],
  ['Qwen2.5-7B', [3584, 18944, 512]],
  ['Qwen3-0.6B', [1024, 3072, 2048, 1024]],
  ['Qwen3-1.7B', [2048, 6144, 1024]],
  ['Qwen3-4B', [2560, 9728, 4096, 1024]],
  ['Qwen3-8B', [4096, 12288, 1024]],
  ['Gemma 3 270M', [640, 2048, 1024, 256]],
  ['Gemma 3 1B', [1152, 6912, 1024, 256]],
  ['Gemma 2 2B', [2304, 9216, 2048, 1024]],
  ['Phi-3-mini / Phi-4-mini', [3072, 8192, 1024]],
  ['SmolLM2-135M', [576, 1536, 192]],
  ['SmolLM2-360M', [960, 2560, 320]],
  ['SmolLM3-3B', [2048, 11008, 512]],
  ['Llama 3.2 1B', [2048, 8192, 512]],
  ['Llama 3.2 3B', [3072, 8192, 1024]],
  ['Mistral 7B / Ministral 8B', [4096, 14336, 12288, 1024]],
];

describe('Hadamard factorisation of the widths of the supported families', () => {
  it.each(MODELS)('%s: every width has a Hadamard factorisation', (_model, widths) => {
    for (const n of widths) {
      const f = hadamardFactor(n);
      expect(f.method, `${n}: ${formatHadamard(f)}`).not.toBe('random-orthogonal');
      expect(f.k * f.pow2).toBe(n);
      expect(Math.log2(f.pow2) % 1).toBe(0);
    }
  });

  it.each([640, 2048, 4864, 9728, 18944])('%i: the built transform is a scaled Hadamard matrix (sampled columns)', (n) => {
    const su = new Int8Array(n).fill(1);
    const cols = [0, 1, n >> 1, n - 1].map((i) => {
      const e = new Float32Array(n);
      e[i] = 1;
      return native().rhtInput(e, su);
    });
    const entry = 1 / Math.sqrt(n);
    for (const c of cols) for (let j = 0; j < n; j++) if (Math.abs(Math.abs(c[j]) - entry) > 1e-5) throw new Error(`${n}: entry ${j} is ${c[j]}, not +-${entry}`);
    for (let a = 0; a < cols.length; a++)
      for (let b = a; b < cols.length; b++) {
        let dot = 0;
        for (let j = 0; j < n; j++) dot += cols[a][j] * cols[b][j];
        expect(dot).toBeCloseTo(a === b ? 1 : 0, 4);
      }
  });
});
