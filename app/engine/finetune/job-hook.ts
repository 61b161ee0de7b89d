// The quantization job's fine-tuning step (spec section 6), as one object the job calls at fixed
// points (app/engine/quantize/job.ts):
//   QuantizeFinetune.start(...)        after the engine and calibration exist (null for --ft none)
//   beginBlock(b)                      before quantizing block b: the original block's outputs
//   weight(kind)                       the weight to quantize (tuned by the previous groups)
//   afterGroup(b, group, layers)       the group's quantized layers go into the engine, then tuning
//   endBlock(b, layers)                before the block is saved: tuned SU/SV into the layers
//   endToEnd(specs, blockFile, unquantizedFile)
//                                      after all blocks (block+e2e): distillation; saved blocks and the
//                                      final norm (in the unquantized tensors' file) rewritten
//   record()                           for the run record
// The tuned RMSNorm weights are folded into the input-side sign vectors of the layers they feed
// (q/k/v for the attention norm, gate/up for the MLP norm): W diag(su) diag(w_tuned) x-hat =
// W diag(su .* w_tuned / w_source) diag(w_source) x-hat, so a fine-tuned folder keeps the source's
// norms and differs from a plain one only in its real-valued (float32) sign vectors. End-to-end also
// tunes the final norm, which feeds the dense lm_head, so it is saved as is (float32); lm_head stays
// frozen (tuning it would untie tied embeddings and change the folder's format).
import type { LoadedModel } from '../model/index.js';
import { bytesOf, writeSafetensors, type TensorToWrite } from '../model/safetensors-writer.js';
import { readSafetensorsFile } from '../model/safetensors.js';
import { native } from '../native.js';
import type { QuantizedLinearSpec } from '../quantize/native-types.js';
import { createEngine } from '../runtime/engine.js';
import type { EngineLinearKind, EngineModel } from '../runtime/native-types.js';
import { UserError } from '../../util/errors.js';
import { InBlockFinetune, type InBlockFinetuneOptions } from './block.js';
import { finetuneEndToEnd } from './e2e.js';
import { TUNED_GROUPS, type QuantizeFinetuneEvent, type TunedGroup } from './events.js';
import type { FinetuneRecord } from './record.js';




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
}

/** Rewrites a safetensors file, replacing the vectors for which `replace` gives float32 values (saved
 * as F32); every other tensor is kept as it is. */
async function rewriteTensors(file: string, replace: (name: string) => Float32Array | null): Promise<void> {
  const { header, data } = readSafetensorsFile(file, true);
  const out: TensorToWrite[] = [];
  for (const { name, dtype, shape } of header.tensors) {
    const v = replace(name);
    out.push(v ? { name, dtype: 'F32', shape: [v.length], source: { bytes: bytesOf(v) } } : { name, dtype, shape, source: { bytes: data.get(name)! } });
  }
  await writeSafetensors(file, out);
}

const ATTN_INPUTS: EngineLinearKind[] = ['q_proj', 'k_proj', 'v_proj'];
const MLP_INPUTS: EngineLinearKind[] = ['gate_proj', 'up_proj'];

export class QuantizeFinetune {
  private readonly inBlock: InBlockFinetune;
  /** The source model as an engine: its norms to fold against, the teacher of end-to-end. */
  private readonly source: EngineModel;
  private readonly blocks: FinetuneRecord['blocks'] = [];
  private endToEndRecord: FinetuneRecord['endToEnd'] = null;
  private seconds = 0;

  /** null when the settings turn fine-tuning off. */
  static start(o: QuantizeFinetuneOptions): QuantizeFinetune | null {
    return o.settings.mode === 'none' ? null : new QuantizeFinetune(o);
  }

  private constructor(private readonly o: QuantizeFinetuneOptions) {
    this.inBlock = new InBlockFinetune({ ...o, onEvent: o.onEvent });
    this.source = createEngine(o.model);
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
   * the calibration sequences; every layer's spec and saved block file get the new sign vectors, the
   * unquantized tensors' file the tuned final norm (float32). */
  async endToEnd(
    specs: Array<{ block: number; kind: EngineLinearKind; spec: QuantizedLinearSpec }>,
    blockFile: (b: number) => string,
    unquantizedFile: string,
  ): Promise<void> {
    if (this.o.settings.mode !== 'block+e2e') return;
    // The engine holds the saved state (source norms, folded SU); specs are what inference will use.
    for (const { block, kind, spec } of specs) native().qinferSetLinear(this.o.engine, block, kind, spec);
    const r = await this.timed(() =>
      finetuneEndToEnd({
        student: this.o.engine, teacher: this.source, source: this.o.model, ids: this.o.ids, sequences: this.o.sequences, seqLen: this.o.seqLen,
        settings: this.o.settings, seed: this.o.seed, onEvent: this.o.onEvent, cancel: this.o.cancel,
      }),
    );
    this.endToEndRecord = {
      initialHeldoutLoss: r.initialHeldoutLoss, bestHeldoutLoss: r.bestHeldoutLoss, bestEpoch: r.bestEpoch, seconds: r.seconds, tokensPerSecond: r.tokensPerSecond,
      epochs: r.epochs.map(({ epoch, trainLoss, heldoutLoss }) => ({ epoch, trainLoss, heldoutLoss })),
    };
    const blocks = [...new Set(specs.map((s) => s.block))].sort((a, c) => a - c);
    for (const b of blocks) {
      const layers = specs.filter((s) => s.block === b);
      const tuned = layers.map((s) => ({ name: '', kind: s.kind, spec: s.spec, tensors: [] as TensorToWrite[] }));
      this.foldBlock(b, tuned);
      // Rewrite the block's saved tensors with the new sign vectors (codes unchanged).
      await rewriteTensors(blockFile(b), (name) => {
        const hit = tuned.find((l) => name.endsWith(`.${l.kind}.su`) || name.endsWith(`.${l.kind}.sv`));
        const v = hit ? (name.endsWith('.su') ? hit.spec.su : hit.spec.sv) : null;
        return v ? Float32Array.from(v) : null;
      });
    }
    const finalNorm = native().finalNorm(this.o.engine);
    await rewriteTensors(unquantizedFile, (name) => (name === 'model.norm.weight' ? finalNorm : null));
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
            throw new UserError(`block ${b}: the ${norm === 'attn' ? 'input' : 'post-attention'} RMSNorm weight ${i} of the source model is 0, so its fine-tuned value cannot be folded into ${l.kind}'s sign vector; run with --ft none.`, 'FINETUNE_FOLD');
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
