// `quip eval`, `quip generate` and `quip synth` through commander on stories260k: JSON output with the
// figures the issue names, the reference greedy text, and clear errors for bad settings.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { registerEval } from './eval.js';
import { registerGenerate } from './generate.js';
import { registerSynth } from './synth.js';
import { runQuip } from '../../testing/cli.js';

const STORIES = path.resolve('../shared/data/models/stories260k');
const WIKI_TEST = path.resolve('../shared/data/wikitext-2-raw/wiki.test.raw');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-cli-engine-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run = (...args: string[]) => runQuip([registerEval, registerGenerate, registerSynth], args, { silenceStderr: true });

test('quip eval --json prints ppl, tokens scored and tokens/s', async () => {
  const r = JSON.parse(await run('eval', STORIES, '--text', WIKI_TEST, '--ctx', '64', '--max-windows', '2', '--threads', '1', '--json'));
  expect(r.tokensScored).toBe(126);
  expect(r.windows).toBe(2);
  expect(Number.isFinite(r.ppl) && r.ppl > 1).toBe(true);
  expect(r.tokensPerSecond).toBeGreaterThan(0);
  await expect(run('eval', STORIES, '--text', WIKI_TEST, '--ctx', '4096')).rejects.toThrow(/longer than the model's context/);
});

test('quip eval --kl-base: KLD, top agreement and the base perplexity in one pass (llama.cpp convention)', async () => {
  const r = JSON.parse(await run('eval', STORIES, '--kl-base', STORIES, '--text', WIKI_TEST, '--ctx', '64', '--max-windows', '2', '--threads', '1', '--json'));
  expect(r.convention).toBe('llama.cpp');
  expect(r.tokensScored).toBe(2 * 31);
  expect(Math.abs(r.kld)).toBeLessThan(1e-5);
  expect(r.sameTop).toBe(1);
  expect(r.basePpl).toBe(r.ppl);
  const plain = JSON.parse(await run('eval', STORIES, '--text', WIKI_TEST, '--ctx', '64', '--max-windows', '2', '--convention', 'llama.cpp', '--json'));
  expect(Math.abs(r.ppl / plain.ppl - 1)).toBeLessThan(1e-9);
  const text = await run('eval', STORIES, '--kl-base', STORIES, '--text', WIKI_TEST, '--ctx', '64', '--max-windows', '1');
  expect(text).toMatch(/Mean KLD\s+-?0\.0000\d\d \+- /);
  expect(text).toMatch(/Same top token\s+100\.000 \+- 0\.000 %/);
  await expect(run('eval', STORIES, '--kl-base', STORIES, '--text', WIKI_TEST, '--convention', 'ours')).rejects.toThrow(/llama\.cpp's convention/);
});

test('quip generate greedy reproduces the reference text; --chat without a template is refused', async () => {
  const ref = JSON.parse(readFileSync(path.join(STORIES, 'reference-greedy-ids.json'), 'utf8')) as number[];
  // The tokenizer's encoding of "Once" is the reference's first generated token after BOS.
  const r = JSON.parse(await run('generate', STORIES, '--prompt', 'Once', '--temperature', '0', '--max-tokens', '20', '--json'));
  expect(r.promptIds).toEqual(ref.slice(0, 2));
  expect(r.ids).toEqual(ref.slice(2, 22));
  expect(r.text.startsWith(' upon a time, there was a little girl named Lily.')).toBe(true);
  expect(r.prefillTokensPerSecond).toBeGreaterThan(0);
  expect(r.decodeTokensPerSecond).toBeGreaterThan(0);
  await expect(run('generate', STORIES, '--prompt', 'x', '--chat')).rejects.toThrow(/no chat template/);
  await expect(run('generate', STORIES, '--prompt', 'x', '--top-p', '2')).rejects.toThrow(/top-p/);
});

test('quip synth writes a folder that quip eval runs on', async () => {
  const out = path.join(tmp, 'synth');
  const s = JSON.parse(await run('synth', '--hidden', '64', '--intermediate', '96', '--layers', '1', '--vocab', '512', '--dtype', 'f32', '--out', out, '--json'));
  expect(s.config.hidden_size).toBe(64);
  const r = JSON.parse(await run('eval', out, '--text', WIKI_TEST, '--ctx', '32', '--max-windows', '1', '--json'));
  // Random weights with std 0.02 give nearly uniform predictions: ppl close to the vocabulary size.
  expect(r.ppl).toBeGreaterThan(400);
  expect(r.ppl).toBeLessThan(640);
  await expect(run('synth', '--hidden', '64', '--intermediate', '96', '--layers', '1', '--dtype', 'f8', '--out', out)).rejects.toThrow(/--dtype/);
});

test('quip generate --chat renders the chat template before encoding', async () => {
  const { cpSync, writeFileSync } = await import('node:fs');
  const dir = path.join(tmp, 'chat');
  cpSync(STORIES, dir, { recursive: true });
  const tc = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  tc.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
  const r = JSON.parse(await run('generate', dir, '--prompt', 'Tell a story', '--chat', '--max-tokens', '3', '--json'));
  const { loadModel } = await import('../../engine/model/index.js');
  const m = await loadModel(dir);
  try {
    // BOS written by the template once, not twice.
    expect(r.promptIds).toEqual(m.tokenizer.encode('<s>user: Tell a story\nassistant:', { addBos: false }));
    expect(r.promptIds.filter((x: number) => x === 1)).toHaveLength(1);
  } finally {
    m.close();
  }
});
