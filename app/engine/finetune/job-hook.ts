// The quantization job's fine-tuning step (spec section 6), as one strategy object (FinetuneHooks)
// the job calls at fixed points (app/engine/quantize/job.ts); with --ft none it is NO_FINETUNE,
// whose hooks do nothing, so the job has no fine-tuning branches of its own:
//   QuantizeFinetune.start(...)        after the engine and calibration exist (NO_FINETUNE for --ft none)
//   beginBlock(b)                      before quantizing block b: the original block's outputs
//   weight(kind, source)               the weight to quantize (tuned by the previous groups)
//   afterGroup(b, group, layers)       the group's quantized layers go into the engine, then tuning
//   endBlock(b, layers)                before the block is saved: tuned SU/SV into the layers
//   endToEnd(specs, unquantizedFile)   after all blocks (block+e2e): distillation; returns the tensors
//                                      the assembled folder takes instead of the saved pieces'
//   progress() / record()              for the checkpoint and the run record
// The tuned RMSNorm weights are folded into the input-side sign vectors of the layers they feed
// (q/k/v for the attention norm, gate/up for the MLP norm): W diag(su) diag(w_tuned) x-hat =
// W diag(su .* w_tuned / w_source) diag(w_source) x-hat, so a fine-tuned folder keeps the source's
// norms and differs from a plain one only in its real-valued (float32) sign vectors. End-to-end also
// tunes the final norm, which feeds lm_head, so it is saved as is (float32), and lm_head itself: a
// source with tied embeddings is untied (the folder gets lm_head.weight, in the stored embedding's
// dtype, and tie_word_embeddings false; model.embed_tokens.weight stays as it was).
import type { LoadedModel } from '../model/index.js';
import { F16_MAX, f32ArrayToF16 } from '../model/half.js';
import { bytesOf, type TensorToWrite } from '../model/safetensors-writer.js';
import { readSafetensorsHeader } from '../model/safetensors.js';
import { native, type TensorRef } from '../native.js';
import type { QuantizedLinearSpec } from '../runtime/qinfer-native-types.js';
import { linearName } from '../runtime/quantized-model.js';
import { createEngine } from '../runtime/native-model.js';
import type { EngineLinearKind, EngineModel } from '../runtime/native-types.js';
import { UserError } from '../../util/errors.js';
import { InBlockFinetune, type InBlockFinetuneOptions } from './block.js';
import { finetuneEndToEnd } from './e2e.js';
import { TUNED_GROUPS, type QuantizeFinetuneEvent, type TunedGroup, type FinetuneRecord } from '../../domain/quantize/index.js';

/** The parts of a quantized layer the hook reads and updates (the job's LayerTensors has them). */
export interface FinetuneLayer {
  name: string;
  kind: EngineLinearKind;
  spec: QuantizedLinearSpec;
  tensors: TensorToWrite[];
}

export interface QuantizeFinetuneOptions extends Omit<InBlockFinetuneOptions, 'onEvent'> {
  model: Pick<LoadedModel, 'architecture' | 'tensor' | 'tensorNames'>;
  onEvent?: (e: QuantizeFinetuneEvent) => void;
  /** A resumed job: what the checkpoint kept of the saved blocks' tuning (progress()). */
  resume?: Pick<FinetuneRecord, 'blocks' | 'seconds'>;
}

/** What end-to-end fine-tuning changes in the saved folder. */
export interface EndToEndOutput {
  /** Tensors that replace the saved pieces' tensors of the same name, or are added (lm_head.weight
   * of a source with tied embeddings). */
  tensors: TensorToWrite[];
  /** The source tied lm_head to the embeddings and the folder now has its own: config.json gets
   * tie_word_embeddings false. */
  untied: boolean;
}

/** float32 -> bfloat16 bits, round to nearest even (as common/half.h's f32_to_bf16). */
function f32ArrayToBf16(src: Float32Array): Uint16Array {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i];
    out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** The tuned lm_head stored like the embedding table it was untied from: 16 bits when that is, so
 * untying adds one more table of the same size (float32 if a value would overflow float16). */
export function lmHeadTensor(head: Float32Array, shape: number[], dtype: string): TensorToWrite {
  if (dtype === 'BF16') return { name: 'lm_head.weight', dtype: 'BF16', shape, source: { bytes: bytesOf(f32ArrayToBf16(head)) } };
  if (dtype === 'F16' && head.every((v) => Math.abs(v) <= F16_MAX)) return { name: 'lm_head.weight', dtype: 'F16', shape, source: { bytes: bytesOf(f32ArrayToF16(head)) } };
  return { name: 'lm_head.weight', dtype: 'F32', shape, source: { bytes: bytesOf(head) } };
}

const ATTN_INPUTS: EngineLinearKind[] = ['q_proj', 'k_proj', 'v_proj'];
const MLP_INPUTS: EngineLinearKind[] = ['gate_proj', 'up_proj'];

/** What fine-tuning does at the quantization job's fixed points (see the top of this file). */
export interface FinetuneHooks {
  /** False for NO_FINETUNE: nothing is tuned (the job then has no fine-tuning time to record). */
  readonly active: boolean;
  beginBlock(b: number): Promise<void>;
  /** The weight to quantize instead of the source's. */
  weight(kind: EngineLinearKind, source: TensorRef): TensorRef | Float32Array;
  afterGroup(b: number, group: 'qkv' | 'o' | 'gateUp' | 'down', layers: FinetuneLayer[]): Promise<void>;
  endBlock(b: number, layers: FinetuneLayer[]): Promise<void>;
  /** null: the saved pieces stand as they are. */
  endToEnd(specs: Array<{ block: number; kind: EngineLinearKind; spec: QuantizedLinearSpec }>, unquantizedFile: string): Promise<EndToEndOutput | null>;
  /** What a checkpoint keeps (null: nothing). */
  progress(): Pick<FinetuneRecord, 'blocks' | 'seconds'> | null;
  /** What the run record keeps (null: fine-tuning was off). */
  record(): FinetuneRecord | null;
}

/** --ft none: the source weights are quantized as they are and nothing else happens. */
export const NO_FINETUNE: FinetuneHooks = {
  active: false,
  beginBlock: async () => {},
  weight: (_kind, source) => source,
  afterGroup: async () => {},
  endBlock: async () => {},
  endToEnd: async () => null,
  progress: () => null,
  record: () => null,
};

export class QuantizeFinetune implements FinetuneHooks {
  readonly active = true;
  private readonly inBlock: InBlockFinetune;
  /** The source model as an engine: its norms to fold against, the teacher of end-to-end. */
  private readonly source: EngineModel;
  private readonly blocks: FinetuneRecord['blocks'] = [];
  private endToEndRecord: FinetuneRecord['endToEnd'] = null;
  private seconds = 0;

  /** NO_FINETUNE when the settings turn fine-tuning off. */
  static start(o: QuantizeFinetuneOptions): FinetuneHooks {
    return o.settings.mode === 'none' ? NO_FINETUNE : new QuantizeFinetune(o);
  }

  private constructor(private readonly o: QuantizeFinetuneOptions) {
    this.inBlock = new InBlockFinetune({ ...o, onEvent: o.onEvent });
    this.source = createEngine(o.model);
    if (o.resume) {
      this.blocks.push(...o.resume.blocks);
      this.seconds = o.resume.seconds;
    }
  }

  /** What a checkpoint keeps: the finished blocks' tuning and the seconds spent so far. */
  progress(): Pick<FinetuneRecord, 'blocks' | 'seconds'> {
    return { blocks: [...this.blocks], seconds: this.seconds };
  }

  async beginBlock(b: number): Promise<void> {
    await this.timed(() => this.inBlock.beginBlock(b));
  }

  /** The weight to quantize: the source weight as tuned so far (float32). */
  weight(kind: EngineLinearKind): Float32Array {
    return this.inBlock.weightToQuantize(kind);
  }

  /** After a group is quantized: its layers go into the engine, then the block's rest is tuned. */
  async afterGroup(b: number, group: 'qkv' | 'o' | 'gateUp' | 'down', layers: FinetuneLayer[]): Promise<void> {
    for (const l of layers) native().qinferSetLinear(this.o.engine, b, l.kind, l.spec);
    if ((TUNED_GROUPS as readonly string[]).includes(group)) await this.timed(() => this.inBlock.afterGroup(b, group as TunedGroup));
  }

  /** Before block b is saved: records its held-out error and puts the tuned (norm-folded) sign
   * vectors into the layers; the engine gets the source norms back, matching what is saved. */
  async endBlock(b: number, layers: FinetuneLayer[]): Promise<void> {
    const heldoutError = await this.timed(() => this.inBlock.heldoutError());
    const groups = this.inBlock.groups.filter((g) => g.block === b);
    this.blocks.push({ block: b, heldoutError, groups });
    this.o.onEvent?.({ type: 'ft-block', block: b, heldoutError });
    this.foldBlock(b, layers);
  }

  /** block+e2e, after every block: distillation of the whole quantized model towards the source on
   * the calibration sequences. Every layer's spec gets the new sign vectors; the returned tensors
   * (su/sv, the final norm in float32, lm_head in the stored embedding's dtype) go into the assembled
   * folder instead of the saved pieces', which stay as the checkpoint left them: a run cancelled or
   * killed from here on resumes from the same state and repeats this step exactly. */
  async endToEnd(specs: Array<{ block: number; kind: EngineLinearKind; spec: QuantizedLinearSpec }>, unquantizedFile: string): Promise<EndToEndOutput> {
    if (this.o.settings.mode !== 'block+e2e') return { tensors: [], untied: false };
    // The engine holds the saved state (source norms, folded SU); specs are what inference will use.
    for (const { block, kind, spec } of specs) native().qinferSetLinear(this.o.engine, block, kind, spec);
    const r = await this.timed(() =>
      finetuneEndToEnd({
        student: this.o.engine, teacher: this.source, ids: this.o.ids, sequences: this.o.sequences, seqLen: this.o.seqLen,
        settings: this.o.settings, seed: this.o.seed, onEvent: this.o.onEvent, cancel: this.o.cancel,
      }),
    );
    const untied = this.o.model.architecture.tiedEmbeddings;
    this.endToEndRecord = {
      initialHeldoutLoss: r.initialHeldoutLoss, bestHeldoutLoss: r.bestHeldoutLoss, bestEpoch: r.bestEpoch, seconds: r.seconds, tokensPerSecond: r.tokensPerSecond,
      epochs: r.epochs.map(({ epoch, trainLoss, heldoutLoss }) => ({ epoch, trainLoss, heldoutLoss })),
      lmHead: { tuned: true, untied },
    };
    const tensors: TensorToWrite[] = [];
    const f32 = (name: string, v: Float32Array): TensorToWrite => ({ name, dtype: 'F32', shape: [v.length], source: { bytes: bytesOf(v) } });
    for (const b of [...new Set(specs.map((s) => s.block))].sort((a, c) => a - c)) {
      const tuned = specs.filter((s) => s.block === b).map((s) => ({ name: linearName(b, s.kind), kind: s.kind, spec: s.spec, tensors: [] as TensorToWrite[] }));
      this.foldBlock(b, tuned);
      for (const l of tuned) if (l.spec.su && l.spec.sv) tensors.push(f32(`${l.name}.su`, Float32Array.from(l.spec.su)), f32(`${l.name}.sv`, Float32Array.from(l.spec.sv)));
    }
    tensors.push(f32('model.norm.weight', native().finalNorm(this.o.engine)));
    const stored = new Map(readSafetensorsHeader(unquantizedFile, true).tensors.map((t) => [t.name, t]));
    const like = stored.get('lm_head.weight') ?? stored.get('model.embed_tokens.weight');
    if (!like) throw new Error(`${unquantizedFile} has neither lm_head.weight nor model.embed_tokens.weight`);
    tensors.push(lmHeadTensor(native().lmHead(this.o.engine), like.shape, like.dtype));
    return { tensors, untied };
  }

  record(): FinetuneRecord {
    return { mode: this.o.settings.mode as 'block' | 'block+e2e', blocks: this.blocks, endToEnd: this.endToEndRecord, seconds: this.seconds };
  }

  /** The engine's tuned norms of block b folded into the layers' su; the engine gets the source norms
   * and these layers (so it computes exactly what the saved folder will). */
  private foldBlock(b: number, layers: FinetuneLayer[]): void {
    const tuned = native().blockNorms(this.o.engine, b);
    const orig = native().blockNorms(this.source, b);
    for (const l of layers) {
      const { su, sv } = native().linearSigns(this.o.engine, b, l.kind);
      const norm = ATTN_INPUTS.includes(l.kind) ? 'attn' : MLP_INPUTS.includes(l.kind) ? 'mlp' : null;
      if (norm) {
        for (let i = 0; i < su.length; i++) {
          const w0 = orig[norm][i];
          if (!(Math.abs(w0) > 1e-12)) {
            throw new UserError(`block ${b}: the ${norm === 'attn' ? 'input' : 'post-attention'} RMSNorm weight ${i} of the source model is 0, so its fine-tuned value cannot be folded into ${l.kind}'s sign vector; quantize this model without fine-tuning.`, 'FINETUNE_FOLD');
          }
          su[i] *= tuned[norm][i] / w0;
        }
      }
      l.spec.su = su;
      l.spec.sv = sv;
      for (const t of l.tensors) {
        if (t.name === `${l.name}.su` || t.name === `${l.name}.sv`) {
          const v = t.name.endsWith('.su') ? su : sv;
          t.dtype = 'F32';
          t.shape = [v.length];
          t.source = { bytes: bytesOf(v) };
        }
      }
      native().qinferSetLinear(this.o.engine, b, l.kind, l.spec);
    }
    native().setBlockNorms(this.o.engine, b, orig.attn, orig.mlp);
  }

  private async timed<T>(f: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      this.seconds += (performance.now() - t0) / 1000;
    }
  }
}
