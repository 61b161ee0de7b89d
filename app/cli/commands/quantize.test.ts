// `quip quantize` through commander on stories260k: the result (the closing summary) goes to stdout,
// progress (settings, phases, the layer table) to stderr, so `quip quantize ... > result.txt` keeps
// only the result.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { runQuip } from '../../testing/cli.js';
import { registerQuantize } from './quantize.js';

const STORIES = path.resolve('../shared/data/models/stories260k');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-cli-quantize-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('the closing summary goes to stdout and the progress to stderr', async () => {
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  let stdout: string;
  try {
    const out = path.join(tmp, 'q2');
    stdout = await runQuip([registerQuantize], ['quantize', STORIES, '--out', out, '--bits', '2', '--calib-samples', '2', '--ctx', '64', '--threads', '1', '--no-eval']);
  } finally {
    process.stderr.write = write;
  }
  expect(stdout).toMatch(/^Saved .*q2\n {2}2-bit e8p: [\d.]+ bits per linear weight/);
  expect(stdout).not.toMatch(/Settings:|== /);
  expect(stderr).toMatch(/Settings: 2-bit e8p/);
  expect(stderr).not.toMatch(/Saved /);
});
