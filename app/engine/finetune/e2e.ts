// End-to-end fine-tuning after every block is quantized (spec section 6): the quantized engine model
// learns the original model's next-token distribution on the calibration text (distillation). Tunes
// every block's SU/SV and RMSNorms and the final norm in place. lm_head stays frozen: tuning it would
// untie tied embeddings and change the saved folder's format.
import type { LoadedModel } from '../model/index.js';
import { isCancelled, native } from '../native.js';
import type { EngineModel } from '../runtime/native-types.js';
import { UserError } from '../../util/errors.js';
import type { TuneResult } from './native-types.js';
import type { EndToEndEvent } from './events.js';

import type { FinetuneSettings } from './settings.js';

export type { EndToEndEvent } from './events.js';



export interface EndToEndOptions {
  /** The quantized model (tuned in place). */
  student: EngineModel;
  /** The original model: its engine and its tensors (lm_head or the tied embedding). */
  teacher: EngineModel;
  source: Pick<LoadedModel, 'tensor' | 'tensorNames'>;
  ids: Int32Array;
  sequences: number;
  seqLen: number;
  settings: FinetuneSettings;
  seed: number;
  onEvent?: (e: EndToEndEvent) => void;
  cancel?: Int32Array;
}

export async function finetuneEndToEnd(o: EndToEndOptions): Promise<TuneResult> {
  const names = new Set(o.source.tensorNames());
  const head = names.has('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight';
  const s = o.settings;
  try {
    return await native().finetuneEndToEnd(
      o.student, o.teacher, o.ids, o.sequences, o.seqLen, o.source.tensor(head),
      { epochs: s.epochs, batch: s.batch, lr: s.lr, lrSign: s.lrSign, holdout: s.holdout, patience: s.patience, seed: o.seed },
      o.onEvent ? (json) => o.onEvent!(JSON.parse(json) as EndToEndEvent) : undefined,
      o.cancel,
    );
  } catch (err) {
    if (isCancelled(err)) throw new UserError('End-to-end fine-tuning cancelled.', 'CANCELLED');
    throw err;
  }
}
