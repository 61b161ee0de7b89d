// Settings of a quantization run: every bits/family pairing, the defaults, the checks (named as the
// studio names each setting), and fine-tuning's settings.
import { describe, expect, it } from 'vitest';

import { UserError } from '../../util/errors.js';
import { codebookFor, QuantizeSettings, resolveFinetuneSettings, resolveSettings, SETTING_LABELS, SettingsError, type QuantizeSettingsInput, type SettingField } from './index.js';

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('settings', () => {
  it('maps every bits/codebook pairing to its codebook', () => {
    expect(codebookFor(2, 'e8p')).toBe('e8p');
    expect(codebookFor(3, 'e8p')).toBe('rvq3');
    expect(codebookFor(4, 'e8p')).toBe('rvq4');
    expect(codebookFor(3, 'rvq')).toBe('rvq3');
    for (const b of [2, 3, 4]) expect(codebookFor(b, 'rtn')).toBe(`rtn${b}`);
  });
  it('refuses unsupported pairings with a message naming them', () => {
    expect(() => codebookFor(2, 'rvq')).toThrow(/rvq.*3 or 4 bits/);
    expect(() => codebookFor(1, 'e8p')).toThrow(/^Bits 1 is not supported/);
    expect(() => codebookFor(8, 'rtn')).toThrow(/^Bits 8 is not supported/);
    expect(() => codebookFor(2, 'gptq')).toThrow(/^Codebook "gptq" is not a codebook/);
    const e = thrown(() => resolveSettings({ bits: 5 }));
    expect(e).toBeInstanceOf(SettingsError);
    expect(e).toBeInstanceOf(UserError); // every face shows it as it is, with its code
    expect(e).toMatchObject({ code: 'UNSUPPORTED_PAIRING', field: 'bits' });
  });
  it('fills defaults for a CPU workstation and checks ranges', () => {
    const s = resolveSettings({});
    expect(s).toMatchObject({ bits: 2, codebook: 'e8p', incoherence: true, ldlq: true, sigma: 0.01, rho: 1.03, tuneIters: 0, seed: 0 });
    expect(s.calibration).toEqual({ textFile: null, samples: 128, ctx: 512 });
    expect(resolveSettings({ bits: 4 }).rho).toBe(1.03);
    expect(() => resolveSettings({ sigma: 0 })).toThrow(/^Damping σ 0 is out of range/);
    expect(() => resolveSettings({ tuneIters: 11 })).toThrow(/^Tune iterations 11 is out of range/);
    expect(() => resolveSettings({ calibSamples: 0 })).toThrow(/^Calibration samples 0 is out of range/);
  });
  it('names a wrong setting as the studio shows it, never by a command-line flag', () => {
    const bad: Array<[QuantizeSettingsInput, SettingField]> = [
      [{ bits: 5 }, 'bits'], [{ bits: 2, codebook: 'rvq' }, 'codebook'], [{ codebook: 'gptq' }, 'codebook'], [{ sigma: 11 }, 'sigma'], [{ rho: -1 }, 'rho'],
      [{ tuneIters: 0.5 }, 'tuneIters'], [{ calibSamples: 0 }, 'calibSamples'], [{ calibCtx: 4 }, 'calibCtx'], [{ seed: -1 }, 'seed'], [{ threads: 0 }, 'threads'],
      [{ finetune: { mode: 'all' as never } }, 'finetune.mode'], [{ finetune: { epochs: -1 } }, 'finetune.epochs'], [{ finetune: { lr: 2 } }, 'finetune.lr'],
      [{ finetune: { lrSign: -1 } }, 'finetune.lrSign'], [{ finetune: { batch: 0 } }, 'finetune.batch'], [{ finetune: { holdout: 1 } }, 'finetune.holdout'],
      [{ finetune: { patience: 0 } }, 'finetune.patience'],
    ];
    for (const [input, field] of bad) {
      const e = thrown(() => resolveSettings(input)) as SettingsError;
      expect(e).toBeInstanceOf(SettingsError);
      expect(e.field).toBe(field);
      expect(e.message).toBe(`${SETTING_LABELS[field]} ${e.detail}`);
      expect(e.message).not.toMatch(/--/);
    }
  });
  it('resolving what it resolved changes nothing (the sidecar keeps resolved settings, the job runs them)', () => {
    for (const input of [{}, { bits: 3 }, { bits: 4, codebook: 'rtn', rho: 2.5, finetune: { mode: 'block' as const, epochs: 2 } }]) {
      const s = resolveSettings(input);
      expect(QuantizeSettings.parse(JSON.parse(JSON.stringify(s)))).toEqual(s);
    }
  });
});

describe('fine-tuning settings', () => {
  it('fills the reference defaults and names the wrong setting', () => {
    expect(resolveFinetuneSettings({})).toEqual({ mode: 'none', epochs: 5, lr: 5e-5, lrSign: 5e-4, batch: 8, holdout: 0.1, patience: 3 });
    expect(() => resolveFinetuneSettings({ holdout: 1 })).toThrow(/^Held-out fraction 1 is not valid/);
    expect(() => resolveFinetuneSettings({ batch: 0 })).toThrow(/^Fine-tuning batch 0 is not valid/);
    expect(() => resolveFinetuneSettings({ mode: 'all' as never })).toThrow(/^Fine-tuning "all" is not valid/);
  });
});
