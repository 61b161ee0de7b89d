// Fine-tuning epochs of the job (the quantize job's typed 'ft-epoch' and 'ft-e2e-epoch' events)
// become the contract's FineTuneEpoch, which the Run screen draws as loss curves.
import { describe, expect, it } from 'vitest';

import { FineTuneEpoch } from '../../contract/runs.js';
import { QuantizeEvent, type FinetuneRecord, type FtEndToEndEpochEvent, type FtEpochEvent, type RunRecord } from '../../domain/quantize/index.js';
import { fineTuneOf } from './registry.js';
import { fineTuneEpoch } from './service.js';

describe('fine-tuning events', () => {
  it('an in-block epoch keeps its block, group, epoch and both losses', () => {
    const e: FtEpochEvent = { type: 'ft-epoch', block: 2, group: 'gateUp', epoch: 3, trainLoss: 0.0125, heldoutLoss: 0.0131, seconds: 0.4 };
    expect(QuantizeEvent.parse(e)).toEqual(e); // what the job process lets through
    const got = fineTuneEpoch(e);
    expect(FineTuneEpoch.parse(got)).toEqual({ stage: 'block', block: 2, group: 'gateUp', epoch: 3, trainLoss: 0.0125, heldOutLoss: 0.0131 });
  });

  it('an end-to-end epoch has no block', () => {
    const e: FtEndToEndEpochEvent = { type: 'ft-e2e-epoch', epoch: 0, trainLoss: 2.5, heldoutLoss: 2.6, seconds: 3 };
    expect(QuantizeEvent.parse(e)).toEqual(e);
    expect(fineTuneEpoch(e)).toEqual({ stage: 'e2e', block: null, group: null, epoch: 0, trainLoss: 2.5, heldOutLoss: 2.6 });
  });

  it('the job cannot send an epoch in another spelling: the events schema refuses it', () => {
    expect(QuantizeEvent.safeParse({ type: 'finetune-epoch', block: 0, epoch: 1, loss: 0.3 }).success).toBe(false);
    expect(QuantizeEvent.safeParse({ type: 'ft-epoch', block: 0, group: 'qkv', epoch: 1, train: 0.3, heldoutLoss: 0.3, seconds: 1 }).success).toBe(false);
  });

  it('a finished run record gives its curves back: in-block epochs per group, then end-to-end', () => {
    const group = { initialHeldoutLoss: 1, bestHeldoutLoss: 0.5, bestEpoch: 1, earlyStopped: false, seconds: 1, tokensPerSecond: 10 };
    const finetune: FinetuneRecord = {
      mode: 'block+e2e',
      blocks: [
        {
          block: 0,
          heldoutError: 0.01,
          groups: [
            { ...group, block: 0, group: 'qkv', epochs: [{ epoch: 0, trainLoss: 0.3, heldoutLoss: 0.31 }, { epoch: 1, trainLoss: 0.2, heldoutLoss: 0.22 }] },
            { ...group, block: 0, group: 'o', epochs: [{ epoch: 0, trainLoss: 0.1, heldoutLoss: 0.12 }] },
          ],
        },
      ],
      endToEnd: { initialHeldoutLoss: 3, bestHeldoutLoss: 2, bestEpoch: 0, seconds: 2, tokensPerSecond: 5, epochs: [{ epoch: 0, trainLoss: 2.1, heldoutLoss: 2.0 }] },
      seconds: 3,
    };
    const curves = fineTuneOf({ finetune } as unknown as RunRecord);
    expect(curves.map((c) => [c.stage, c.block, c.group, c.epoch, c.trainLoss])).toEqual([
      ['block', 0, 'qkv', 0, 0.3],
      ['block', 0, 'qkv', 1, 0.2],
      ['block', 0, 'o', 0, 0.1],
      ['e2e', null, null, 0, 2.1],
    ]);
    expect(curves.every((c) => FineTuneEpoch.safeParse(c).success)).toBe(true);
    expect(fineTuneOf(null)).toEqual([]);
  });
});
