// In-block fine-tuning inside the quantization job (spec section 6). The job calls, per block:
//   beginBlock(b)            before any of block b is quantized: the original block's outputs
//   weightToQuantize(kind)   the (tuned) weight to quantize next, instead of the source tensor
//   afterGroup(b, group)     after the group's quantized layers are in the model: tune the rest
//   signs(kind) / norms()    the tuned values to save with the block
//   endBlock()               push this tuner's calibration states through the finished block
// The tuner keeps its own calibration states (the same sequences as the job's), so the job's own
// calibration code stays untouched; both advance through the same (quantized, tuned) blocks.
import { isCancelled, native } from '../native.js';
import type { EngineLinearKind, EngineModel } from '../runtime/native-types.js';
import { UserError } from '../../util/errors.js';
import type { BlockTuneResult, BlockTuneSettings, BlockTuner } from './native-types.js';
import type { FinetuneEvent, FinetuneGroupRecord, FinetuneSettings, TunedGroup } from '../../domain/quantize/index.js';

export interface InBlockFinetuneOptions {
  engine: EngineModel;
  /** The job's calibration ids (sequences x seqLen). */
  ids: Int32Array;
  sequences: number;
  seqLen: number;
  settings: FinetuneSettings;
  /** The run seed: the held-out split and batch order follow it. */
  seed: number;
  onEvent?: (e: FinetuneEvent) => void;
  cancel?: Int32Array;
}

export class InBlockFinetune {
  readonly groups: FinetuneGroupRecord[] = [];
  private readonly tuner: BlockTuner;
  private readonly native: BlockTuneSettings;

  constructor(private readonly o: InBlockFinetuneOptions) {
    if (o.settings.mode === 'none') throw new Error('InBlockFinetune needs --ft block or block+e2e');
    this.tuner = native().createBlockTuner(o.engine, o.ids, o.sequences, o.seqLen);
    const s = o.settings;
    this.native = { epochs: s.epochs, batch: s.batch, lr: s.lr, lrSign: s.lrSign, holdout: s.holdout, patience: s.patience, seed: o.seed };
  }

  get nextBlock(): number {
    return this.tuner.nextBlock;
  }

  /** Brings the states to block b (a resumed job advances through the saved blocks) and records the
   * original block's outputs. */
  async beginBlock(b: number): Promise<void> {
    while (this.tuner.nextBlock < b) await this.call(this.tuner.advance(undefined, this.o.cancel));
    if (this.tuner.nextBlock !== b) throw new Error(`fine-tuning is at block ${this.tuner.nextBlock}, the job at block ${b}`);
    await this.call(this.tuner.captureTargets(undefined, this.o.cancel));
  }

  /** The current (possibly tuned) float32 weight of a linear not yet quantized, to quantize it from. */
  weightToQuantize(kind: EngineLinearKind): Float32Array {
    return this.tuner.denseWeight(kind);
  }

  /** Tunes the block after `group` was quantized and swapped into the engine. */
  async afterGroup(b: number, group: TunedGroup): Promise<FinetuneGroupRecord> {
    if (this.tuner.nextBlock !== b) throw new Error(`fine-tuning is at block ${this.tuner.nextBlock}, the job at block ${b}`);
    const progress = this.o.onEvent
      ? (json: string) => {
          const e = JSON.parse(json) as { type: string; epoch: number; trainLoss: number; heldoutLoss: number; seconds: number };
          if (e.type === 'ft-epoch') this.o.onEvent!({ type: 'ft-epoch', block: b, group, epoch: e.epoch, trainLoss: e.trainLoss, heldoutLoss: e.heldoutLoss, seconds: e.seconds });
        }
      : undefined;
    const r: BlockTuneResult = await this.call(this.tuner.tune(this.native, progress, this.o.cancel));
    const rec: FinetuneGroupRecord = {
      block: b, group, initialHeldoutLoss: r.initialHeldoutLoss, bestHeldoutLoss: r.bestHeldoutLoss, bestEpoch: r.bestEpoch, earlyStopped: r.earlyStopped,
      seconds: r.seconds, tokensPerSecond: r.tokensPerSecond, epochs: r.epochs.map(({ epoch, trainLoss, heldoutLoss }) => ({ epoch, trainLoss, heldoutLoss })),
    };
    this.groups.push(rec);
    this.o.onEvent?.({ type: 'ft-group', ...rec, epochs: r.epochs.length });
    return rec;
  }

  /** MSE of the block as it is now against the original block's outputs, on the held-out sequences. */
  heldoutError(): Promise<number> {
    return this.call(this.tuner.heldoutError(this.native));
  }

  /** The tuned sign vectors of a quantized linear of the current block. */
  signs(kind: EngineLinearKind): { su: Float32Array; sv: Float32Array } {
    return this.tuner.signs(kind);
  }

  /** The tuned RMSNorm weights of the current block. */
  norms(): { attn: Float32Array; mlp: Float32Array } {
    return this.tuner.norms();
  }

  /** After the block is complete in the engine: pushes the tuner's states through it. */
  async endBlock(): Promise<void> {
    await this.call(this.tuner.advance(undefined, this.o.cancel));
  }

  private async call<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (err) {
      if (isCancelled(err)) throw new UserError('Fine-tuning cancelled.', 'CANCELLED');
      throw err;
    }
  }
}
