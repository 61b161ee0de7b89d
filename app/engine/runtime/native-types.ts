// Types of the engine's native functions (native/addon/runtime_bindings.cc), joined into NativeAddon.
import type { Architecture } from '../../contract/model.js';
import type { ProgressFn, TensorRef } from '../native-types.js';

/** One decoding stream: a KV cache of `capacity` positions over a model. One call at a time. */
export interface EngineSession {
  readonly position: number;
  readonly capacity: number;
  /** Runs ids at the next positions; logits of the last token (vocab) or of all (ids.length x vocab).
   * fastPrefill: only the next token matters (chat / generation prefill), so quantized layers may use
   * the int8 prefill GEMM; off (the default), every layer stays float32 (scoring, perplexity, KLD). */
  forward(ids: Int32Array, allLogits: boolean, onProgress?: ProgressFn, cancel?: Int32Array, fastPrefill?: boolean): Promise<Float32Array>;
  /** One perplexity window from position 0: summed -log p(ids[i+1] | ids[..i]) (float64) and its count. */
  score(ids: Int32Array, onProgress?: ProgressFn, cancel?: Int32Array): Promise<{ nll: number; count: number }>;
  reset(): void;
  /** Keeps the first `position` cached positions (0 <= position <= this.position). */
  rewind(position: number): void;
}

/** sum over tokens of x x^T (row-major n x n, float64) and the token count; H = sum / count. */
export interface HessianSum {
  n: number;
  count: number;
  sum: Float64Array;
}

/** The four Hessians of one decoder block (inputs of q/k/v, o_proj, gate/up, down_proj). */
export interface BlockHessians {
  block: number;
  qkv: HessianSum;
  o: HessianSum;
  gateUp: HessianSum;
  down: HessianSum;
}

/** Hidden states of N calibration sequences at the input of block `nextBlock` (one block's worth). */
export interface EngineCalibration {
  readonly nextBlock: number;
  readonly sequences: number;
  readonly seqLen: number;
  /** Hessians of block nextBlock; the states stay where they are. Progress: {phase, block, sequence, sequences}. */
  hessians(onProgress?: ProgressFn, cancel?: Int32Array): Promise<BlockHessians>;
  /** Pushes the states through block nextBlock with the linears it holds now; resolves to the new nextBlock. */
  advance(onProgress?: ProgressFn, cancel?: Int32Array): Promise<number>;
}

export type EngineLinearKind = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';

/** A Llama-family model over memory-mapped weights (float32 compute). */
export interface EngineModel {
  /** A session whose KV cache holds `capacity` positions (default: the context, at most 4096). */
  createSession(capacity?: number): EngineSession;
  createCalibration(ids: Int32Array, sequences: number, seqLen: number): EngineCalibration;
  /** e.g. "dense BF16 2048x5632". */
  describeLinear(block: number, kind: EngineLinearKind): string;
}

export interface EngineNative {
  /** Weights by Hugging Face tensor name; the model reads them in place from their mappings. */
  createModel(config: Architecture, weights: Record<string, TensorRef>): EngineModel;
  /** Streaming read bandwidth (GB/s) and our GEMM's peak (GFLOP/s) on an in-cache F32 problem. */
  engineRoofline(
    o?: { bandwidthBytes?: number; gemmTokens?: number; gemmM?: number; gemmK?: number; repeats?: number },
    onProgress?: ProgressFn,
    cancel?: Int32Array,
  ): Promise<{ readGBs: number; gemmGflops: number }>;
}
