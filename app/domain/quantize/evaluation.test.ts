// The perplexity's spread and words, against figures worked out by hand.
import { describe, expect, it } from 'vitest';

import { describePerplexity, EVAL_DEFAULTS, formatPerplexity, formatPerplexityChange, perplexitySpread, resolveEvaluation, SettingsError, textName, textsCoincide } from './index.js';

describe('perplexity spread and wording', () => {
  it('the standard error of the mean window NLL, and the +- it puts on the perplexity', () => {
    // Windows 3.0, 3.2, 3.4, 3.6: mean 3.3, sample variance (0.09 + 0.01 + 0.01 + 0.09) / 3 = 0.0667,
    // standard error sqrt(0.0667 / 4) = 0.1291.
    const s = perplexitySpread([3.0, 3.2, 3.4, 3.6]);
    expect(s.meanNll).toBeCloseTo(3.3, 12);
    expect(s.stdErr!).toBeCloseTo(Math.sqrt(0.2 / 3 / 4), 12);
    expect(perplexitySpread([3.1]).stdErr).toBeNull();
    expect(formatPerplexity(193.274, 0.016)).toBe('193.3 ± 3.1');
    expect(formatPerplexity(29.54, 0.0429)).toBe('29.54 ± 1.27');
    expect(formatPerplexity(29.54, null)).toBe('29.54');
    expect(formatPerplexity(null)).toBe('–');
    expect(formatPerplexityChange(32.1, 29.54, 0.0038)).toBe('+8.7% ± 0.4%');
    expect(formatPerplexityChange(100.8, 120.8)).toBe('−17%');
  });

  it('names the text, its windows, and a run evaluated on its own calibration text', () => {
    expect(textName('/opt/studio/assets/wikitext-2-raw/wiki.test.raw')).toBe('WikiText-2 test');
    expect(textName('C:\\data\\notes.txt')).toBe('notes.txt');
    expect(describePerplexity({ dataset: '/a/wiki.test.raw', ctx: 512, windows: 40 })).toBe('WikiText-2 test, 40 windows of 512 tokens');
    expect(describePerplexity({ dataset: '/a/wiki.valid.raw', ctx: 512, windows: 1, calibratedOnText: true })).toBe('WikiText-2 validation, 1 window of 512 tokens · calibrated on this text');
  });

  it('the default texts never coincide; a chosen file that is the other default does', () => {
    expect(textsCoincide(null, null)).toBe(false);
    expect(textsCoincide('/x/wiki.test.raw', null)).toBe(true);
    expect(textsCoincide(null, '/x/wiki.valid.raw')).toBe(true);
    expect(textsCoincide('/x/mine.txt', '/x/mine.txt')).toBe(true);
    expect(textsCoincide('/x/mine.txt', '/y/other.txt')).toBe(false);
    expect(textsCoincide('/x/mine.txt', null)).toBe(false);
  });

  it('evaluation settings: one default for the studio and the CLI, checked values', () => {
    expect(resolveEvaluation()).toEqual({ textFile: null, ctx: EVAL_DEFAULTS.ctx, windows: EVAL_DEFAULTS.windows, full: true });
    expect(resolveEvaluation({ off: true })).toBeNull();
    expect(() => resolveEvaluation({ windows: 0 })).toThrow(SettingsError);
    expect(() => resolveEvaluation({ windows: 0 })).toThrow(/^Perplexity windows 0 is out of range/);
    expect(() => resolveEvaluation({ ctx: 1.5 })).toThrow(/window length/);
  });
});
