// Types of the fine-tuning functions of the addon (native/addon/finetune_bindings.cc).
import type { ProgressFn } from '../native-types.js';
import type { EngineLinearKind, EngineModel } from '../runtime/native-types.js';

/** What one in-block tuning step runs with (the native trainer's settings). */
export interface BlockTuneSettings {
  epochs: number;
  /** Sequences per Adam step. */
  batch: number;
  /** Learning rate of dense weights and RMSNorm weights. */
  lr: number;
  /** Learning rate of the sign vectors SU/SV. */
  lrSign: number;
  /** Fraction of the calibration sequences held out to choose the best epoch. */
  holdout: number;
  /** Epochs without held-out improvement before stopping. */
  patience: number;
  /** Seeds the held-out split and the batch order. */
  seed: number;
}

export interface BlockTuneEpoch {
  epoch: number;
  /** Mean MSE of the epoch's mini-batches. */
  trainLoss: number;
  /** MSE on the held-out sequences after the epoch. */
  heldoutLoss: number;
  seconds: number;
}

/** The outcome of one tuning run (a block's, or the end-to-end one). */
export interface TuneResult {
  trainSequences: number;
  heldoutSequences: number;
  initialTrainLoss: number;
  initialHeldoutLoss: number;
  bestHeldoutLoss: number;
  /** 0 when no epoch improved on the start (the block is left as it was). */
  bestEpoch: number;
  earlyStopped: boolean;
  seconds: number;
  /** Tokens through forward + backward per second. */
  tokensPerSecond: number;
  epochs: BlockTuneEpoch[];
}

export interface BlockTuneResult extends TuneResult {
  block: number;
}

/** In-block fine-tuning over an EngineModel: its own calibration states, one block at a time. */
export interface BlockTuner {
  readonly nextBlock: number;
  /** Records the outputs of block nextBlock as it is now (call before quantizing any of it). */
  captureTargets(onProgress?: ProgressFn, cancel?: Int32Array): Promise<number>;
  /** Tunes block nextBlock's continuous parameters and writes them into the model. Progress: one
   * {"type":"ft-epoch", block, epoch, trainLoss, heldoutLoss, seconds} per epoch. */
  tune(settings: BlockTuneSettings, onProgress?: ProgressFn, cancel?: Int32Array): Promise<BlockTuneResult>;
  /** MSE of block nextBlock as it is now against its targets, on the held-out split of `settings`. */
  heldoutError(settings: BlockTuneSettings): Promise<number>;
  /** Pushes the states through block nextBlock; resolves to the new nextBlock. */
  advance(onProgress?: ProgressFn, cancel?: Int32Array): Promise<number>;
  /** The (tuned) float32 weight of a still-dense linear of block nextBlock (m x n). */
  denseWeight(kind: EngineLinearKind): Float32Array;
  /** The (tuned, real-valued) sign vectors of a quantized linear of block nextBlock. */
  signs(kind: EngineLinearKind): { su: Float32Array; sv: Float32Array };
  /** The (tuned) RMSNorm weights of block nextBlock. */
  norms(): { attn: Float32Array; mlp: Float32Array };
}

export interface TrainNative {
  createBlockTuner(model: EngineModel, ids: Int32Array, sequences: number, seqLen: number): BlockTuner;
  /** Distillation of the quantized `student` towards the original `teacher` on the ids (sequences x
   * seqLen): every block's SU/SV and RMSNorms, the final norm and (tuneLmHead) lm_head are tuned and
   * written into the student. lm_head starts as the student's own (the embedding when tied); tuning it
   * unties a tied student (its own float32 lm_head; the embedding unchanged).
   * Progress: {"type":"ft-e2e-epoch", epoch, trainLoss, heldoutLoss, seconds} per epoch. */
  finetuneEndToEnd(
    student: EngineModel,
    teacher: EngineModel,
    ids: Int32Array,
    sequences: number,
    seqLen: number,
    tuneLmHead: boolean,
    settings: BlockTuneSettings,
    onProgress?: ProgressFn,
    cancel?: Int32Array,
  ): Promise<TuneResult>;
  /** The sign vectors of a quantized linear of any engine model (real-valued after fine-tuning). */
  linearSigns(model: EngineModel, block: number, kind: EngineLinearKind): { su: Float32Array; sv: Float32Array };
  /** The RMSNorm weights of a block of any engine model. */
  blockNorms(model: EngineModel, block: number): { attn: Float32Array; mlp: Float32Array };
  /** Replaces the RMSNorm weights of a block (hidden values each). */
  setBlockNorms(model: EngineModel, block: number, attn: Float32Array, mlp: Float32Array): void;
  /** The final RMSNorm weights of an engine model (hidden values; tuned after end-to-end). */
  finalNorm(model: EngineModel): Float32Array;
  /** The lm_head of an engine model as float32 (vocab x hidden; the embedding table while tied). */
  lmHead(model: EngineModel): Float32Array;
}
