// Quantized inference from JS: for every codebook, with and without incoherence, the layer qinfer
// builds from quantizeLinear's output applies exactly the W^ the numeric core reports (its own
// float32 dequantization in the original basis), through the decode (1 token) and prefill paths.
// On CPUs with AVX-512 VBMI/VNNI + GFNI the decode path of the lattice codebooks rounds x to int8
// (native/src/qinfer/decode_avx512.cc): there it is held to a relative RMS error, not to float rounding.
import { describe, expect, it } from 'vitest';

import { native } from '../native.js';
import { quantizeLinear } from '../quip/index.js';
import { layerFromResult } from './qmodel.js';
import { CODEBOOKS } from '../../domain/quantize/index.js';

function gaussian(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

describe('qinfer layers equal the numeric core', () => {
  const m = 48, n = 172; // n = K 172 with padding to 176, like stories260k's down_proj
  const W = gaussian(m * n, 1);
  const X = gaussian(64 * n, 2);
  const H = new Float64Array(n * n);
  for (let t = 0; t < 64; t++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) H[i * n + j] += (X[t * n + i] * X[t * n + j]) / 64;

  for (const codebook of CODEBOOKS) {
    for (const incoherence of [true, false]) {
      it(`${codebook}, incoherence ${incoherence}`, async () => {
        const r = await quantizeLinear(W, H, { m, n, codebook, incoherence, ldlq: true, seed: 5 });
        const { spec } = layerFromResult(0, 'down_proj', r);
        const Wq = native().qinferDequantize(spec);
        let err = 0, mag = 0;
        for (let i = 0; i < m * n; i++) {
          err = Math.max(err, Math.abs(Wq[i] - r.dequantized[i]));
          mag = Math.max(mag, Math.abs(r.dequantized[i]));
        }
        expect(err).toBeLessThanOrEqual(1e-5 * mag);
        // forward (3 tokens: prefill path; 1 token: decode path) against float64 W^ x
        const x = gaussian(3 * n, 3);
        const y3 = native().qinferForward(spec, x, 3);
        const y1 = native().qinferForward(spec, x.subarray(0, n), 1);
        const int8 = native().cpuInfo().avx512 && !codebook.startsWith('rtn');
        let e2 = 0, r2 = 0;
        for (let t = 0; t < 3; t++) {
          for (let o = 0; o < m; o++) {
            let ref = 0, abs = 0;
            for (let i = 0; i < n; i++) {
              ref += r.dequantized[o * n + i] * x[t * n + i];
              abs += Math.abs(r.dequantized[o * n + i] * x[t * n + i]);
            }
            expect(Math.abs(y3[t * m + o] - ref)).toBeLessThanOrEqual(1e-5 * abs + 1e-6);
            if (t === 0 && !int8) expect(Math.abs(y1[o] - ref)).toBeLessThanOrEqual(1e-5 * abs + 1e-6);
            if (t === 0) (e2 += (y1[o] - ref) ** 2), (r2 += ref ** 2);
          }
        }
        expect(Math.sqrt(e2 / r2)).toBeLessThan(int8 ? 0.02 : 1e-5);
      });
    }
  }
});
