// llama.cpp as the reference forward pass of the newer Llama-family options: for qwen3 (q/k norms,
// explicit head_dim), mistral (sliding window on every layer), qwen2 (use_sliding_window from
// max_window_layers, q/k/v biases) and smollm3 (no RoPE on every 4th layer), a small random-weight
// model is written as a Hugging Face folder (F32 safetensors, stories260k's tokenizer) and by our GGUF
// writer as F32 GGUF. llama-perplexity --kl-divergence-base runs the GGUF on windows of 64 tokens (more
// than twice every sliding window of 8) and stores the log-probabilities of each window's second half
// (uint16 steps of at most 16/65535 nats); our engine runs the folder on the same tokens.
//   Tolerance: every log-probability llama.cpp keeps above -12 nats within 1e-3 nats of ours (the
//   uint16 step is 2.4e-4; float32 arithmetic and llama.cpp's F32 KV cache add about 1e-5), mean
//   KL(llama.cpp || ours) below 1e-5, the same top token at every position. The same model with its
//   option switched off differs from llama.cpp's by more than 0.05 nats, so the comparison sees it.
// Skipped, saying so, when llama.cpp is not built (../shared/tools/build-llama-cpp.sh).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import type { Architecture } from '../../contract/model.js';
import { LLAMA_CPP_MISSING, locateLlamaCpp, runTool } from '../../bench/llamacpp.js';
import { exportGguf } from '../gguf/writer.js';
import { loadModel, type LoadedModel } from '../model/index.js';
import { openGguf } from '../gguf/reader.js';
import { randomFamilyFolder } from '../../testing/gguf.js';
import { createEngine } from './native-model.js';
import { llamaCppWindows, readLlamaCppText } from './perplexity-llamacpp.js';

const DATA = path.resolve('../shared/data');
const TEXT = path.join(DATA, 'wikitext-2-raw', 'wiki.test.raw');
const bin = locateLlamaCpp();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-llamacpp-ref-'));
const dirs: string[] = [];
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const CTX = 64, CHUNKS = 2, WINDOW = 8;
const LAYERS = 4, VOCAB = 512; // randomFamilyFolder's

/** llama-perplexity's --kl-divergence-base file: "_logits_", n_ctx, n_vocab, n_chunk, the tokens, then per scored position a row. */
function readKlBase(file: string, ctx: number) {
  const b = readFileSync(file);
  expect(b.subarray(0, 8).toString('latin1')).toBe('_logits_');
  expect(b.readInt32LE(8)).toBe(ctx);
  const vocab = b.readInt32LE(12), chunks = b.readInt32LE(16);
  const tokens = Array.from({ length: chunks * ctx }, (_, i) => b.readInt32LE(20 + 4 * i));
  const nv = 2 * Math.floor((vocab + 1) / 2) + 4;
  const perChunk = ctx - 1 - ctx / 2;
  let at = 20 + 4 * chunks * ctx;
  const rows: Float64Array[][] = [];
  for (let c = 0; c < chunks; c++) {
    const chunk: Float64Array[] = [];
    for (let r = 0; r < perChunk; r++) {
      const scale = b.readFloatLE(at), minLogProb = b.readFloatLE(at + 4);
      const lp = new Float64Array(vocab);
      for (let i = 0; i < vocab; i++) lp[i] = scale * b.readUInt16LE(at + 8 + 2 * i) + minLogProb;
      chunk.push(lp);
      at += 2 * nv;
    }
    rows.push(chunk);
  }
  expect(at).toBe(b.length);
  return { vocab, chunks, tokens, rows };
}

function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - max);
  const lse = max + Math.log(s);
  return Float64Array.from(row, (v) => v - lse);
}

/** Max |ours - llama.cpp| over entries llama.cpp keeps above -12 nats, mean KL(llama.cpp || ours), top agreement. */
function compare(ref: Float64Array[][], ours: Float64Array[][]) {
  let worst = 0, kl = 0, n = 0, same = 0;
  const argmax = (x: Float64Array) => x.reduce((best, v, i) => (v > x[best] ? i : best), 0);
  for (let c = 0; c < ref.length; c++) {
    for (let r = 0; r < ref[c].length; r++) {
      const a = ref[c][r], b = ours[c][r];
      let k = 0;
      for (let i = 0; i < a.length; i++) {
        if (a[i] > -12) worst = Math.max(worst, Math.abs(a[i] - b[i]));
        if (a[i] > -16) k += Math.exp(a[i]) * (a[i] - b[i]);
      }
      kl += k;
      n++;
      if (argmax(a) === argmax(b)) same++;
    }
  }
  return { worst, kl: kl / n, sameTop: same / n };
}

/** Our log-probabilities of each window's second half (positions ctx/2 .. ctx-2), for a given architecture. */
async function ourRows(model: LoadedModel, architecture: Architecture, windows: Int32Array[], decode = false): Promise<Float64Array[][]> {
  const engine = createEngine({ architecture, tensor: (n) => model.tensor(n), tensorNames: () => model.tensorNames() });
  const out: Float64Array[][] = [];
  for (const w of windows) {
    const s = engine.createSession(CTX);
    const rows: Float64Array[] = [];
    if (decode) {
      // Prefill the first half, then decode one token at a time through the KV cache.
      let last = await s.forward(w.subarray(0, CTX / 2), false);
      for (let p = CTX / 2; p <= CTX - 2; p++) {
        last = await s.forward(w.subarray(p, p + 1), false);
        rows.push(logSoftmax(last));
      }
    } else {
      const logits = await s.forward(w, true);
      for (let p = CTX / 2; p <= CTX - 2; p++) rows.push(logSoftmax(logits.subarray(p * VOCAB, (p + 1) * VOCAB)));
    }
    out.push(rows);
  }
  return out;
}

interface Case {
  name: string;
  config: Record<string, unknown>;
  ggufArch: string;
  /** The architecture with the option under test switched off. */
  without: (a: Architecture) => Architecture;
  check: (a: Architecture) => void;
}

const CASES: Case[] = [
  {
    name: 'qwen3 (q/k norms, explicit head_dim 32 with hidden 64 / 4 heads)',
    config: { model_type: 'qwen3', head_dim: 32, rope_theta: 1_000_000, use_sliding_window: false, sliding_window: null, max_window_layers: LAYERS, attention_bias: false },
    ggufArch: 'qwen3',
    without: (a) => ({ ...a, qkNorm: undefined }),
    check: (a) => expect(a).toMatchObject({ qkNorm: true, headDim: 32 }),
  },
  {
    name: `mistral (sliding window ${WINDOW} on every layer)`,
    config: { model_type: 'mistral', sliding_window: WINDOW },
    ggufArch: 'granite_swa',
    without: (a) => ({ ...a, slidingWindow: undefined, slidingLayers: undefined }),
    check: (a) => expect(a).toMatchObject({ slidingWindow: WINDOW, slidingLayers: [0, 1, 2, 3] }),
  },
  {
    name: `qwen2 (use_sliding_window, window ${WINDOW} from max_window_layers 2, q/k/v biases)`,
    config: { model_type: 'qwen2', use_sliding_window: true, sliding_window: WINDOW, max_window_layers: 2 },
    ggufArch: 'granite_swa',
    without: (a) => ({ ...a, slidingWindow: undefined, slidingLayers: undefined }),
    check: (a) => expect(a).toMatchObject({ slidingWindow: WINDOW, slidingLayers: [2, 3], attentionBias: true }),
  },
  {
    name: 'smollm3 (no RoPE on layer 3 of 4)',
    config: { model_type: 'smollm3', rope_theta: 5_000_000, no_rope_layers: [1, 1, 1, 0], use_sliding_window: false },
    ggufArch: 'smollm3',
    without: (a) => ({ ...a, noRopeLayers: undefined }),
    check: (a) => expect(a).toMatchObject({ noRopeLayers: [3] }),
  },
];

describe("llama.cpp as the reference forward pass (llama-perplexity's stored log-probabilities)", () => {
  for (const [n, c] of CASES.entries()) {
    it.skipIf(!bin)(`${c.name}: our logits equal llama.cpp's${bin ? '' : ` (SKIPPED: ${LLAMA_CPP_MISSING})`}`, async () => {
      const dir = randomFamilyFolder(c.config, 1000 + n);
      dirs.push(dir);
      const gguf = path.join(tmp, `${n}.gguf`);
      await exportGguf(dir, gguf, { type: 'F32' });
      const g = openGguf(gguf);
      try {
        expect(g.header.metadata.string('general.architecture')).toBe(c.ggufArch);
      } finally {
        g.file.close();
      }
      const base = path.join(tmp, `${n}.kld`);
      const text = path.join(tmp, 'text.txt');
      writeFileSync(text, readFileSync(TEXT, 'utf8').slice(0, 20_000));
      await runTool(bin!, 'llama-perplexity', [
        '-m', gguf, '-f', text, '-c', String(CTX), '-b', String(CTX), '--chunks', String(CHUNKS), '-t', '2',
        '-ctk', 'f32', '-ctv', 'f32', '-fa', 'off', '--no-warmup', '--kl-divergence-base', base,
      ]);
      const ref = readKlBase(base, CTX);
      expect(ref.vocab).toBe(VOCAB);
      expect(ref.chunks).toBe(CHUNKS);

      const model = await loadModel(dir);
      try {
        c.check(model.architecture);
        const windows = llamaCppWindows(model.tokenizer, readLlamaCppText(text), CTX, CHUNKS);
        // The same tokens (llama.cpp's file holds them before it puts BOS at each window's start).
        windows.forEach((w, i) => expect(Array.from(w.subarray(1))).toEqual(ref.tokens.slice(i * CTX + 1, (i + 1) * CTX)));
        const full = compare(ref.rows, await ourRows(model, model.architecture, windows));
        expect(full.worst).toBeLessThan(1e-3);
        expect(Math.abs(full.kl)).toBeLessThan(1e-5);
        expect(full.sameTop).toBe(1);
        const decoded = compare(ref.rows.slice(0, 1), await ourRows(model, model.architecture, windows.slice(0, 1), true));
        expect(decoded.worst).toBeLessThan(1e-3);
        // The option matters: without it our log-probabilities leave llama.cpp's.
        const off = compare(ref.rows, await ourRows(model, c.without(model.architecture), windows));
        expect(off.worst).toBeGreaterThan(0.05);
        console.log(`${c.name}: max |dlogp| ${full.worst.toExponential(2)} (decode ${decoded.worst.toExponential(2)}), KL ${full.kl.toExponential(2)}; option off: ${off.worst.toFixed(3)}`);
      } finally {
        model.close();
      }
    }, 120_000);
  }
});
