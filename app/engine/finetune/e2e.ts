// End-to-end fine-tuning after every block is quantized (spec section 6): the quantized engine model
// learns the original model's next-token distribution on the calibration text (distillation). Tunes
// every block's SU/SV and RMSNorms, the final norm and lm_head in place. lm_head starts as the
// student's own (the embedding table when tied); tuning it unties a tied student: the engine then
// holds its own float32 lm_head (native().lmHead reads it) while the embedding stays as it was.
import { isCancelled, native } from '../native.js';
import type { EngineModel } from '../runtime/native-types.js';
import { UserError } from '../../util/errors.js';
import type { TuneResult } from './native-types.js';
import type { EndToEndEvent, FinetuneSettings } from '../../domain/quantize/index.js';

export interface EndToEndOptions {
  /** The quantized model (tuned in place). */
  student: EngineModel;
  /** The original model: the teacher's logits. */
  teacher: EngineModel;
  ids: Int32Array;
  sequences: number;
  seqLen: number;
  settings: FinetuneSettings;
  seed: number;
  /** Tune lm_head too (default true); false keeps it frozen (and a tied student tied). */
  tuneLmHead?: boolean;
  onEvent?: (e: EndToEndEvent) => void;
  cancel?: Int32Array;
}

export async function finetuneEndToEnd(o: EndToEndOptions): Promise<TuneResult> {
  const s = o.settings;
  try {
    return await native().finetuneEndToEnd(
      o.student, o.teacher, o.ids, o.sequences, o.seqLen, o.tuneLmHead ?? true,
      { epochs: s.epochs, batch: s.batch, lr: s.lr, lrSign: s.lrSign, holdout: s.holdout, patience: s.patience, seed: o.seed },
      o.onEvent ? (json) => o.onEvent!(JSON.parse(json) as EndToEndEvent) : undefined,
      o.cancel,
    );
  } catch (err) {
    if (isCancelled(err)) throw new UserError('End-to-end fine-tuning cancelled.', 'CANCELLED');
    throw err;
  }
}
