// A run's settings in one line, so runs that differ only in fine-tuning or calibration read apart.
import { describe, expect, it } from 'vitest';
import { resolveSettings } from '../../../../app/domain/quantize/index';
import { codebookLabel, groupByModel, settingsLabel } from './labels';

describe('run labels', () => {
  it('names codebook, fine-tuning, calibration and any setting off its default', () => {
    expect(settingsLabel(resolveSettings({ bits: 2, codebook: 'e8p', calibSamples: 128, calibCtx: 512, finetune: { mode: 'block+e2e' } }))).toBe('2-bit E8P · FT block+e2e · 128×512');
    expect(settingsLabel(resolveSettings({ bits: 2, codebook: 'e8p', calibSamples: 128, calibCtx: 512 }))).toBe('2-bit E8P · no FT · 128×512');
    expect(settingsLabel(resolveSettings({ bits: 4, codebook: 'e8p', calibSamples: 8, calibCtx: 64 }))).toBe('4-bit RVQ · no FT · 8×64');
    expect(settingsLabel(resolveSettings({ bits: 3, codebook: 'rtn', ldlq: false, seed: 3, calibTextFile: '/data/my text.txt' }))).toBe('Scalar 3-bit · no FT · 128×512 my text.txt · no LDLQ · seed 3');
    expect(settingsLabel(null)).toBe('settings unknown');
    // A target bits per weight: each layer at its own width, the target names the run.
    expect(settingsLabel(resolveSettings({ targetBpw: 3, calibSamples: 8, calibCtx: 64 }))).toBe('mixed 3.0 bpw · no FT · 8×64');
    expect(codebookLabel(resolveSettings({ bits: 4, targetBpw: 2.55 }))).toBe('mixed 2.55 bpw');
    expect(codebookLabel(resolveSettings({ targetBpw: 4.5 }))).toBe('mixed 4.5 bpw');
  });

  it('groups runs by base model in the order they first appear', () => {
    const runs = [
      { id: 1, modelDir: '/m/a', modelName: 'a' },
      { id: 2, modelDir: '/m/b', modelName: 'b' },
      { id: 3, modelDir: '/m/a', modelName: 'a' },
      { id: 4, modelDir: null, modelName: 'c' },
    ];
    expect(groupByModel(runs).map((g) => [g.name, g.runs.map((r) => r.id)])).toEqual([
      ['a', [1, 3]],
      ['b', [2]],
      ['c', [4]],
    ]);
  });
});
