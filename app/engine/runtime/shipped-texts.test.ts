// The default calibration and evaluation texts ship with the studio (assets/wikitext-2-raw), so a
// fresh install calibrates and scores exactly as a source checkout does: the same bytes as the
// WikiText-2 files of the test data, hence the same tokens and byte-identical quantizations.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';

import { projectRoot } from '../../util/paths.js';
import { loadModel } from '../model/index.js';
import { defaultEvalText } from '../quantize/job.js';
import { calibrationIds, defaultCalibrationText } from './calibration.js';

const root = projectRoot();
const SHARED_WIKI = path.resolve(root, '..', 'shared', 'data', 'wikitext-2-raw');
const saved = process.env.QUIP_DEFAULT_CALIB_TEXT;
afterEach(() => {
  if (saved === undefined) delete process.env.QUIP_DEFAULT_CALIB_TEXT;
  else process.env.QUIP_DEFAULT_CALIB_TEXT = saved;
});

it('defaults to the WikiText-2 files inside the product, byte for byte the test data', () => {
  delete process.env.QUIP_DEFAULT_CALIB_TEXT;
  const assets = path.join(root, 'assets', 'wikitext-2-raw');
  expect(defaultCalibrationText()).toBe(path.join(assets, 'wiki.valid.raw'));
  expect(defaultEvalText()).toBe(path.join(assets, 'wiki.test.raw'));
  expect(readFileSync(defaultCalibrationText()).equals(readFileSync(path.join(SHARED_WIKI, 'wiki.valid.raw')))).toBe(true);
  expect(readFileSync(defaultEvalText()).equals(readFileSync(path.join(SHARED_WIKI, 'wiki.test.raw')))).toBe(true);
  // The licence travels with the text, and the packaged app carries the folder.
  expect(readFileSync(path.join(assets, 'NOTICE'), 'utf8')).toMatch(/CC BY-SA 3\.0[\s\S]*creativecommons\.org\/licenses\/by-sa\/3\.0/);
  expect(readFileSync(path.join(root, 'electron-builder.yml'), 'utf8')).toMatch(/^\s*- assets\/\*\*\s*$/m);
});

it('cuts the same calibration tokens from the default as from the test data named explicitly', async () => {
  delete process.env.QUIP_DEFAULT_CALIB_TEXT;
  const { tokenizer } = await loadModel(path.resolve(root, '..', 'shared', 'data', 'models', 'stories260k'));
  if (!tokenizer) throw new Error('stories260k has a tokenizer');
  const s = { sequences: 16, seqLen: 256 };
  const byDefault = calibrationIds(tokenizer, s);
  const explicit = calibrationIds(tokenizer, { ...s, textFile: path.join(SHARED_WIKI, 'wiki.valid.raw') });
  expect(byDefault).toEqual(explicit);
  expect(byDefault.length).toBe(16 * 256);
});
