// llama.cpp's perplexity convention on stories260k: windows cut from the whole text's tokens (BOS in
// front, each window's first token replaced by BOS), and the score of only the second half of each
// window against a float64 reference over the logits of one full forward per window.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { importGguf } from '../gguf/import.js';
import { loadModel, type LoadedModel } from '../model/index.js';
import { createEngine } from './native-model.js';
import { evaluatePerplexity, perplexityWindows } from './perplexity.js';
import { evaluatePerplexityLlamaCpp, llamaCppWindows, readLlamaCppText } from './perplexity-llamacpp.js';

const DATA = path.resolve('../shared/data');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-ppl-llamacpp-'));
let model: LoadedModel;
beforeAll(async () => {
  model = await loadModel(path.join(DATA, 'models', 'stories260k'));
});
afterAll(() => {
  model?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const BOS = 1;

describe('llama.cpp perplexity convention', () => {
  it('reads the file as it is, dropping only one trailing newline', () => {
    const f = path.join(tmp, 'rows.txt');
    writeFileSync(f, 'a\n b\n\n');
    expect(readLlamaCppText(f)).toBe('a\n b\n');
    writeFileSync(path.join(tmp, 'blank.txt'), '\n');
    expect(() => readLlamaCppText(path.join(tmp, 'blank.txt'))).toThrow(/blank\.txt is empty/);
    expect(() => readLlamaCppText(path.join(tmp, 'missing.txt'))).toThrow(/missing\.txt/);
  });

  it('cuts consecutive ctx-token windows of the whole tokenization, first token replaced by BOS', () => {
    const text = readFileSync(path.join(DATA, 'wikitext-2-raw', 'wiki.valid.raw'), 'utf8').slice(0, 30_000);
    const all = model.tokenizer.encode(text, { addBos: true });
    expect(all[0]).toBe(BOS);
    const ctx = 128;
    const windows = llamaCppWindows(model.tokenizer, text, ctx, 5);
    expect(windows.length).toBe(5);
    windows.forEach((w, i) => {
      expect(w.length).toBe(ctx);
      expect(w[0]).toBe(BOS);
      expect(Array.from(w.subarray(1))).toEqual(all.slice(i * ctx + 1, (i + 1) * ctx));
    });
    // Without a limit: floor(tokens / ctx) windows.
    const small = text.slice(0, 5000);
    const n = model.tokenizer.encode(small, { addBos: true }).length;
    expect(llamaCppWindows(model.tokenizer, small, 64).length).toBe(Math.floor(n / 64));
  });

  it('refuses texts shorter than two windows, as llama-perplexity does', () => {
    expect(() => llamaCppWindows(model.tokenizer, 'Once upon a time there was a cat.', 16)).toThrow(/needs at least 32/);
    expect(() => llamaCppWindows(model.tokenizer, 'x', 2)).toThrow(/--ctx/);
  });

  it("gives SmolLM2 (no BOS) windows equal to llama.cpp's own tokens of wiki.test.raw", async () => {
    const smolDir = path.join(tmp, 'smollm2');
    await importGguf(path.join(DATA, 'models', 'smollm2-135m-instruct-q4_1', 'SmolLM2-135M-Instruct.Q4_1.gguf'), smolDir);
    const smol = await loadModel(smolDir);
    try {
      expect(smol.tokenizer.addBos).toBe(false);
      // Ids from llama-tokenize of the file's first 1000 lines (74,850 ids): the first 64 windows of 1024
      // lie well inside them.
      const ref = JSON.parse(readFileSync(path.join(DATA, 'models', 'smollm2-135m-instruct-q4_1', 'reference-tokens-wiki-test-1000-lines.json'), 'utf8')) as { ids: number[] };
      const windows = llamaCppWindows(smol.tokenizer, readLlamaCppText(path.join(DATA, 'wikitext-2-raw', 'wiki.test.raw')), 1024, 64);
      expect(windows.length).toBe(64);
      const ids = windows.flatMap((w) => Array.from(w));
      expect(ids).toEqual(ref.ids.slice(0, 64 * 1024));
    } finally {
      smol.close();
    }
  });

  it('scores only the second half of each window (ctx 16, 2 windows) like a float64 reference', async () => {
    const text = readFileSync(path.join(DATA, 'wikitext-2-raw', 'wiki.test.raw'), 'utf8').slice(0, 4000);
    const ctx = 16;
    const windows = llamaCppWindows(model.tokenizer, text, ctx, 2);
    expect(windows.length).toBe(2);
    const vocab = model.architecture.vocabSize;
    const engine = createEngine(model);
    const r = await evaluatePerplexityLlamaCpp(engine, windows, vocab, { ctx });
    expect(r.tokensScored).toBe(2 * (ctx - ctx / 2 - 1));

    // Reference: one full forward per window in a fresh session, float64 log-softmax of the logits at
    // positions 8..14 for tokens 9..15.
    let nll = 0;
    let count = 0;
    for (const w of windows) {
      const session = engine.createSession(ctx);
      const logits = await session.forward(w, true);
      for (let p = ctx / 2; p <= ctx - 2; p++) {
        const row = Array.from(logits.subarray(p * vocab, (p + 1) * vocab), Number);
        const max = Math.max(...row);
        const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
        nll += lse - row[w[p + 1]];
        count++;
      }
    }
    expect(count).toBe(r.tokensScored);
    expect(r.nll).toBeCloseTo(nll, 3);
    expect(Math.abs(r.ppl / Math.exp(nll / count) - 1)).toBeLessThan(1e-5);
    // Scoring the whole window instead would give a different figure: the convention matters.
    const whole = await engine.createSession(ctx).score(windows[0]);
    expect(whole.count).toBe(ctx - 1);
  });

  it('scores the same tokens token by token through the decode path (--decode-path), both conventions', async () => {
    const text = readFileSync(path.join(DATA, 'wikitext-2-raw', 'wiki.test.raw'), 'utf8').slice(0, 4000);
    const ctx = 16;
    const engine = createEngine(model);
    const windows = llamaCppWindows(model.tokenizer, text, ctx, 2);
    const batched = await evaluatePerplexityLlamaCpp(engine, windows, model.architecture.vocabSize, { ctx });
    const stepped = await evaluatePerplexityLlamaCpp(engine, windows, model.architecture.vocabSize, { ctx, decodePath: true });
    expect(stepped.tokensScored).toBe(batched.tokensScored);
    // A float model: the one-token matvec and the batched GEMM differ only in rounding.
    expect(Math.abs(stepped.ppl / batched.ppl - 1)).toBeLessThan(1e-4);
    const ours = perplexityWindows(model.tokenizer, text, ctx, 2);
    const a = await evaluatePerplexity(engine, ours, { ctx });
    const b = await evaluatePerplexity(engine, ours, { ctx, decodePath: true });
    expect(b.tokensScored).toBe(a.tokensScored);
    expect(Math.abs(b.ppl / a.ppl - 1)).toBeLessThan(1e-4);
  });
});
