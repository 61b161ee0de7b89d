// `quip import` through commander on a hand-made GGUF: the JSON result, the refusal to overwrite, and
// `quip inspect` reading the imported folder unchanged.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, expect, test } from 'vitest';

import { tinyModelGguf } from '../../testing/gguf.js';
import { registerImport } from './import.js';
import { registerInspect } from './inspect.js';
import { runQuip } from '../../testing/cli.js';

let dir: string;
let gguf: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'quip-import-cli-'));
  gguf = path.join(dir, 'tiny.gguf');
  await writeFile(gguf, tinyModelGguf({ layers: 2 }).gguf.bytes);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const quip = (...args: string[]) => runQuip([registerImport, registerInspect], args);

test('quip import --json writes the folder and prints the result', async () => {
  const out = path.join(dir, 'tiny');
  const r = JSON.parse(await quip('import', gguf, '--out', out, '--json', '--threads', '1'));
  expect(r).toMatchObject({ outDir: out, architecture: 'llama', tensors: 20, lossy: false, originalTypes: { F32: 20 }, tokenizer: { model: 'gpt2', preTokenizer: 'smollm' } });
  expect(r.sourceSha256).toMatch(/^[0-9a-f]{64}$/);
  await expect(quip('import', gguf, '--out', out)).rejects.toThrow(/already holds a model/);
  const text = await quip('import', gguf, '--out', out, '--force');
  expect(text).toMatch(/^Imported tiny test model \(llama, [\d.]+M parameters, 20 tensors: 20 F32\)/);
});

test('quip inspect reads an imported folder', async () => {
  const out = path.join(dir, 'tiny-inspect');
  await quip('import', gguf, '--out', out, '--json');
  const r = JSON.parse(await quip('inspect', out, '--json'));
  expect(r.architecture).toMatchObject({ hiddenSize: 32, numLayers: 2 });
});
