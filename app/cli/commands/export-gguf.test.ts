// `quip eval --convention llama.cpp`, `quip export-gguf` and `quip synth --gguf` through commander on
// stories260k: the convention's figures (second halves scored), a GGUF our reader opens, and clear
// errors for a bad convention or type.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { openGguf } from '../../engine/gguf/reader.js';
import { registerEval } from './eval.js';
import { registerExportGguf } from './export-gguf.js';
import { registerSynth } from './synth.js';
import { runQuip } from '../../testing/cli.js';

const STORIES = path.resolve('../shared/data/models/stories260k');
const WIKI_TEST = path.resolve('../shared/data/wikitext-2-raw/wiki.test.raw');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-cli-gguf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run = (...args: string[]) => runQuip([registerEval, registerExportGguf, registerSynth], args, { silenceStderr: true });

test('quip eval --convention llama.cpp scores the second half of each window', async () => {
  const r = JSON.parse(await run('eval', STORIES, '--text', WIKI_TEST, '--ctx', '64', '--max-windows', '3', '--threads', '1', '--convention', 'llama.cpp', '--json'));
  expect(r.convention).toBe('llama.cpp');
  expect(r.windows).toBe(3);
  expect(r.tokensScored).toBe(3 * 31);
  expect(r.ppl).toBeGreaterThan(1);
  await expect(run('eval', STORIES, '--text', WIKI_TEST, '--convention', 'hf')).rejects.toThrow(/--convention must be ours or llama\.cpp/);
});

test('quip export-gguf and quip synth --gguf write GGUF files our reader opens', async () => {
  const out = path.join(tmp, 'stories.gguf');
  const r = JSON.parse(await run('export-gguf', STORIES, '--out', out, '--json'));
  expect(r.tensors).toBe(47);
  const g = openGguf(out);
  expect(g.header.metadata.string('tokenizer.ggml.model')).toBe('llama');
  g.file.close();
  await expect(run('export-gguf', STORIES, '--out', out, '--type', 'q4_0')).rejects.toThrow(/--type must be f16 or f32/);

  const gguf = path.join(tmp, 'synth.gguf');
  const s = JSON.parse(await run('synth', '--hidden', '128', '--intermediate', '256', '--layers', '1', '--vocab', '600', '--out', path.join(tmp, 'synth'), '--gguf', gguf, '--json'));
  expect(s.gguf.file).toBe(gguf);
  expect(existsSync(gguf)).toBe(true);
  const h = openGguf(gguf);
  expect(h.header.metadata.stringArray('tokenizer.ggml.tokens')?.length).toBe(600);
  expect(h.header.tensors.find((t) => t.name === 'blk.0.attn_q.weight')?.type.name).toBe('F16');
  h.file.close();
});
