// Fine-tuning epochs of the job (app/engine/finetune's events) become the contract's FineTuneEpoch,
// which the Run screen draws as loss curves; summaries of a group are not epochs.
import { describe, expect, it } from 'vitest';

import { FineTuneEpoch } from '../../contract/runs.js';
import type { EndToEndEvent, FinetuneEvent } from '../../engine/finetune/index.js';
import { fineTuneEpoch } from './service.js';

describe('fine-tuning events', () => {
  it('an in-block epoch keeps its block, group, epoch and both losses', () => {
    const e: FinetuneEvent = { type: 'ft-epoch', block: 2, group: 'gateUp', epoch: 3, trainLoss: 0.0125, heldoutLoss: 0.0131, seconds: 0.4 };
    const got = fineTuneEpoch(e);
    expect(FineTuneEpoch.parse(got)).toEqual({ stage: 'block', block: 2, group: 'gateUp', epoch: 3, trainLoss: 0.0125, heldOutLoss: 0.0131 });
  });

  it('a group summary and quantize events are not epochs', () => {
    const summary: FinetuneEvent = { type: 'ft-group', block: 0, group: 'qkv', initialHeldoutLoss: 1, bestHeldoutLoss: 0.5, bestEpoch: 2, epochs: 4, earlyStopped: true, seconds: 1, tokensPerSecond: 100 };
    expect(fineTuneEpoch(summary)).toBeNull();
    expect(fineTuneEpoch({ type: 'phase', phase: 'quantize', message: 'x' })).toBeNull();
    expect(fineTuneEpoch(null)).toBeNull();
  });

  it('an end-to-end epoch has no block', () => {
    const e: EndToEndEvent = { type: 'ft-e2e-epoch', epoch: 0, trainLoss: 2.5, heldoutLoss: 2.6, seconds: 3 };
    expect(fineTuneEpoch(e)).toEqual({ stage: 'e2e', block: null, group: null, epoch: 0, trainLoss: 2.5, heldOutLoss: 2.6 });
  });
});
