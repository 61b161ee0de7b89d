// Perplexity windows: the text convention (rows joined by blank lines), BOS per window where the
// tokenizer adds it, and windows cut from a tokenized prefix equal those of the whole text.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type LoadedModel } from '../model/index.js';
import { perplexityWindows, readEvalText } from './perplexity.js';

const DATA = path.resolve('../shared/data');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-ppl-'));
let model: LoadedModel;
beforeAll(async () => {
  model = await loadModel(path.join(DATA, 'models', 'stories260k'));
});
afterAll(() => {
  model?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('perplexity windows', () => {
  it('joins rows with blank lines', () => {
    const f = path.join(tmp, 'rows.txt');
    writeFileSync(f, 'a\n b\n\nc\n');
    expect(readEvalText(f)).toBe('a\n\n b\n\n\n\nc');
    writeFileSync(path.join(tmp, 'empty.txt'), '\n\n');
    expect(() => readEvalText(path.join(tmp, 'empty.txt'))).toThrow(/empty/);
    expect(() => readEvalText(path.join(tmp, 'missing.txt'))).toThrow(/missing\.txt/);
  });

  it('cuts BOS + ctx-1 token windows, equal to those of the whole text', () => {
    const text = readEvalText(path.join(DATA, 'wikitext-2-raw', 'wiki.valid.raw')).slice(0, 20000);
    const all = model.tokenizer.encode(text, { addBos: false });
    const ctx = 100;
    const windows = perplexityWindows(model.tokenizer, text, ctx, 4);
    expect(windows.length).toBe(4);
    windows.forEach((w, i) => {
      expect(w[0]).toBe(1);
      expect(Array.from(w.subarray(1))).toEqual(all.slice(i * (ctx - 1), (i + 1) * (ctx - 1)));
    });
    const every = perplexityWindows(model.tokenizer, text, ctx);
    expect(every.length).toBe(Math.floor(all.length / (ctx - 1)));
  });

  it('refuses settings and texts that give no window', () => {
    expect(() => perplexityWindows(model.tokenizer, 'short', 1)).toThrow(/--ctx/);
    expect(() => perplexityWindows(model.tokenizer, 'short text', 64)).toThrow(/fewer than one window/);
    expect(() => perplexityWindows(model.tokenizer, 'short text', 4, 0)).toThrow(/--max-windows/);
  });
});
