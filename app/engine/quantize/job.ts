// The quantization job: load -> calibration hidden states -> per block: 4 Hessians -> quantize
// q, k, v (shared H), o, gate, up (shared H), down -> swap the block's linears for their quantized
// versions -> advance the hidden states through the *quantized* block (as the reference does, so
// later blocks are calibrated on the inputs they will see) -> checkpoint; then save, evaluate
// perplexity and write the run record. Memory: one block's weights and Hessians plus the calibration
// hidden states (N x L x hidden floats); weights stay memory-mapped.
// runQuantizeJob reads as its phases: prepare (load and check everything before writing anything),
// openCheckpoint (resume or start the partial folder), calibrate, quantizeBlocks (quantizeLayer per
// linear, checkpointBlock per block), finetuneEndToEnd, save, evaluate, publishRun. Fine-tuning is
// one strategy object (FinetuneHooks) called at fixed points; NO_FINETUNE does nothing.
//
// Determinism: every layer's seed comes from the run seed and the layer name, native reductions do
// not depend on the thread count, and a resumed run rebuilds the hidden states by advancing through
// the saved quantized blocks, so a cancelled-and-resumed run writes byte-identical model files.
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';

import { UserError } from '../../util/errors.js';
import { shippedText } from '../../util/paths.js';
import { removeTempFiles, writeFileAtomic, writeJsonAtomic } from '../../util/atomic-file.js';
import { QuantizeFinetune, type EndToEndOutput, type FinetuneHooks } from '../finetune/job-hook.js';
import { F16_MAX, f32ArrayToF16 } from '../model/half.js';
import { loadModel, type LoadedModel } from '../model/index.js';
import { bytesOf, writeSafetensors, type TensorToWrite } from '../model/safetensors-writer.js';
import { openSafetensors, readSafetensorsFile, readSafetensorsHeader, safetensorsDTypes, weightFileBytes } from '../model/safetensors.js';
import { isCancelled, native } from '../native.js';
import { quantizeLinear } from '../quip/index.js';
import { calibrationIds, defaultCalibrationText, describeCalibrationSource, resolveCalibrationSource, sampledCalibrationIds, type CalibrationSource } from '../runtime/calibration.js';
import { createEngine, setEngineThreads } from '../runtime/native-model.js';
import type { BlockHessians, EngineCalibration, EngineModel, HessianSum } from '../runtime/native-types.js';
import { evaluatePerplexity, perplexityWindows, readEvalText } from '../runtime/perplexity.js';
import {
  describePerplexity, estimateRun, perplexitySpread, proxyLossSummary, runSeconds, RUN_RECORD_FILE, RUN_RECORD_VERSION, sameText, textName,
  type Estimate, type LayerMetrics, type QuantizeEvent, type QuantizeSettings, type RunRecord, type RunSession,
} from '../../domain/quantize/index.js';
import { formatSeconds } from '../../domain/format.js';
import {
  COPIED_FILES, ENGINE_NAME, ENGINE_VERSION, FORMAT_VERSION, MIXED_FORMAT_VERSION, QUANT_METHOD, denseLayerBits, isQuantizedConfig, layerBits, layerSeed,
  type DenseLayerRecord, type QuantizationConfig,
} from '../model/quantized-format.js';
import { allocateWidths, layerOptions, measureSensitivity, type LayerWidth } from './allocate.js';
import { CODEBOOK_TABLE } from '../../domain/quantize/index.js';
import {
  CHECKPOINT_FILE, MODEL_FILE, PENDING_CONFIG, UNQUANTIZED_FILE, blockFileName, checkOutputFolder, finishInterruptedPublish, jobId, partialDir,
  publish, readCheckpoint, sourceFingerprint, stalePartials, writeCheckpoint, type Checkpoint,
} from './output.js';
import { layerFromResult, type LayerTensors } from './qmodel.js';
import { createQuantizedEngine, isLinearWeight, LINEAR_KINDS, specFromRecord } from '../runtime/quantized-model.js';
import type { QuantizedLinearSpec } from '../runtime/qinfer-native-types.js';

export interface EvaluationOptions {
  /** Text to score (default: the shipped WikiText-2 test, defaultEvalText). */
  textFile: string;
  ctx: number;
  maxWindows: number;
  /** Also score the source model on the same windows. */
  full: boolean;
}

export interface QuantizeJobOptions {
  model: string;
  out: string;
  settings: QuantizeSettings;
  force?: boolean;
  evaluation?: EvaluationOptions | null;
  onEvent?: (e: QuantizeEvent) => void;
  /** Set element 0 to 1 to cancel; the run stops at the next check and keeps its checkpoint. */
  cancel?: Int32Array;
  /** Keep the in-memory quantized model (built from the arrays quantizeLinear returned) in the result. */
  keepModel?: boolean;
}

export interface QuantizeJobResult {
  out: string;
  record: RunRecord;
  /** The quantized model as it stood in memory right after quantization (keepModel only). */
  model: EngineModel | null;
  /** What the cost model predicted for this job (the estimate event's); null for a finished save. */
  estimate?: Estimate | null;
}

const GROUPS: Array<{ tap: keyof Omit<BlockHessians, 'block'>; kinds: Array<(typeof LINEAR_KINDS)[number]> }> = [
  { tap: 'qkv', kinds: LINEAR_KINDS.filter((k) => ['q', 'k', 'v'].includes(k.short)) },
  { tap: 'o', kinds: LINEAR_KINDS.filter((k) => k.short === 'o') },
  { tap: 'gateUp', kinds: LINEAR_KINDS.filter((k) => k.short === 'gate' || k.short === 'up') },
  { tap: 'down', kinds: LINEAR_KINDS.filter((k) => k.short === 'down') },
];

/** WikiText-2 test, shipped in assets/wikitext-2-raw. */
export function defaultEvalText(): string {
  return shippedText('evaluation');
}

/** The settings that decide the output (threads never does). */
export function settingsKey(s: QuantizeSettings): Omit<QuantizeSettings, 'threads'> {
  const { threads: _threads, ...rest } = s;
  void _threads;
  return rest;
}

class Timer {
  readonly timings: Record<string, number> = {};
  readonly memory: Record<string, number> = {};
  private t = performance.now();
  constructor(prior: Record<string, number> = {}) {
    Object.assign(this.timings, prior);
  }
  lap(phase: string): number {
    const now = performance.now();
    const s = (now - this.t) / 1000;
    this.t = now;
    this.timings[phase] = (this.timings[phase] ?? 0) + s;
    this.memory[phase] = peakRss();
    return s;
  }
}

function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function cancelledError(done: number, blocks: number): UserError {
  return new UserError(
    done > 0
      ? `Quantization cancelled after ${done} of ${blocks} blocks. Run the same command again to resume from block ${done}.`
      : 'Quantization cancelled before the first block finished.',
    'CANCELLED',
  );
}

/** Unquantized tensors in 16 bits: F32 -> F16 (kept F32 when a value would overflow), 16-bit as is. */
async function unquantizedTensors(model: LoadedModel, warn: (m: string) => void): Promise<TensorToWrite[]> {
  const out: TensorToWrite[] = [];
  for (const name of model.tensorNames().sort()) {
    if (isLinearWeight(name, model.architecture.numLayers)) continue;
    const t = model.tensor(name);
    const count = t.shape.reduce((a, b) => a * b, 1);
    const raw = t.file.read(t.offset, count * (t.dtype === 'F32' ? 4 : 2));
    if (t.dtype === 'F32') {
      const f = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      let big = 0;
      for (let i = 0; i < f.length; i++) if (Math.abs(f[i]) > F16_MAX) big++;
      if (big) {
        warn(`${name} has ${big} values beyond the float16 range; it is kept in float32.`);
        out.push({ name, dtype: 'F32', shape: t.shape, source: { bytes: new Uint8Array(raw) } });
      } else {
        out.push({ name, dtype: 'F16', shape: t.shape, source: { bytes: bytesOf(f32ArrayToF16(f)) } });
      }
    } else {
      out.push({ name, dtype: t.dtype, shape: t.shape, source: { bytes: new Uint8Array(raw) } });
    }
  }
  return out;
}

/** Layer specs of a saved block (resume): typed-array copies of its tensors. */
async function loadBlock(dir: string, block: number, cp: Checkpoint, codebook: QuantizeSettings['codebook']): Promise<Array<{ kind: (typeof LINEAR_KINDS)[number]['kind']; spec: QuantizedLinearSpec }>> {
  const { header, data: bytes } = readSafetensorsFile(path.join(dir, blockFileName(block)), true);
  const dtypes = new Map(header.tensors.map((t) => [t.name, t.dtype]));
  const get = (name: string) => {
    const b = bytes.get(name);
    if (!b) throw new UserError(`${path.join(dir, blockFileName(block))} has no tensor ${name}; delete ${dir} and start again.`, 'BAD_CHECKPOINT');
    return b;
  };
  // Layers kept at 16 bits (--target-bpw) stay dense in the engine: nothing to load.
  return LINEAR_KINDS.filter(({ kind, module }) => !cp.dense?.[`model.layers.${block}.${module}.${kind}`]).map(({ kind, module }) => {
    const rec = cp.layers[`model.layers.${block}.${module}.${kind}`];
    return {
      kind,
      spec: specFromRecord(codebook, rec, (name) => {
        const b = get(name);
        return dtypes.get(name) === 'U16' ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2) : b;
      }, (name) => (dtypes.get(name) === 'F32' ? new Float32Array(get(name).buffer) : new Int8Array(get(name).buffer))),
    };
  });
}

/** The job in its phases, each a function below; fine-tuning is one strategy object (FinetuneHooks,
 * app/engine/finetune/job-hook.ts: NO_FINETUNE with --ft none) the phases call at fixed points. */
export async function runQuantizeJob(opts: QuantizeJobOptions): Promise<QuantizeJobResult> {
  const emit = (e: QuantizeEvent) => opts.onEvent?.(e);
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const threads = setEngineThreads(opts.settings.threads ?? undefined);
  emit({ type: 'phase', phase: 'load', message: `loading ${opts.model}` });
  const model = await loadModel(opts.model);
  try {
    const run = await prepare(opts, model, { emit, startedAt, threads, t0 });
    const published = await finishInterruptedSave(run);
    if (published) return published;
    const progress = await openCheckpoint(run);
    try {
      const cal = await calibrate(run, progress);
      await quantizeBlocks(run, progress, cal);
      const e2e = await finetuneEndToEnd(run, progress, cal);
      const bytesOnDisk = await save(run, progress, e2e);
      const { perplexity, qmodel } = await evaluate(run, progress, cal, e2e);
      const record = await publishRun(run, progress, cal, { bytesOnDisk, perplexity });
      return { out: run.out, record, model: opts.keepModel ? qmodel : null, estimate: run.est };
    } catch (err) {
      // A cancelled session's time counts in the run's time when it is resumed (runSeconds).
      if ((err as { code?: string }).code === 'CANCELLED') await writeCheckpoint(progress.partial, { ...progress.cp, sessions: sessionsSoFar(run, progress) }).catch(() => {});
      throw err;
    }
  } finally {
    model.close();
  }
}

/** What every phase reads: the options, the loaded model and what prepare() worked out. */
interface Run {
  opts: QuantizeJobOptions;
  s: QuantizeSettings;
  emit: (e: QuantizeEvent) => void;
  warn: (message: string, layer?: string) => void;
  startedAt: string;
  /** performance.now() when this session's job began (model load included). */
  t0: number;
  threads: number;
  out: string;
  model: LoadedModel;
  arch: LoadedModel['architecture'];
  /** Tokens per calibration sequence: the setting, at most the model's context. */
  ctx: number;
  calibSource: CalibrationSource;
  /** The calibration text's path, or "model-sampled, seed S". */
  calibFrom: string;
  est: Estimate;
  /** Cut from the text at prepare(); sampled from the model at calibrate() when there is no text. */
  ids: Int32Array | null;
  evalWindows: Int32Array[] | null;
  fingerprint: string;
  /** The job's identity (source and settings): names its partial folder and checkpoint. */
  id: string;
}

/** The partial folder with its checkpoint (fresh, or left by a stopped run of the same job). */
interface Progress {
  partial: string;
  cp: Checkpoint;
  resumedFromBlock: number;
  timer: Timer;
  /** The sessions before this one (a resumed run's), with their active seconds. */
  priorSessions: RunSession[];
}

/** Every session of the run with this one's active time so far (the run record's `sessions`). */
function sessionsSoFar(run: Pick<Run, 'startedAt' | 't0'>, progress: Pick<Progress, 'priorSessions'>): RunSession[] {
  return [...progress.priorSessions, { startedAt: run.startedAt, seconds: (performance.now() - run.t0) / 1000 }];
}

/** The calibrated engine, its hidden states, the fine-tuning hooks and the layers quantized so far. */
interface Calibrated {
  engine: EngineModel;
  cal: EngineCalibration;
  tuning: FinetuneHooks;
  specs: Array<{ block: number; kind: (typeof LINEAR_KINDS)[number]['kind']; spec: QuantizedLinearSpec }>;
  eta: Eta;
  /** Throws the cancellation error when the job was cancelled. */
  check(): void;
  /** Awaits a native call, turning its cancellation into the job's cancellation error. */
  call<T>(p: Promise<T>): Promise<T>;
}

// ---- prepare: load and check everything before writing anything -------------------------------

async function prepare(opts: QuantizeJobOptions, model: LoadedModel, o: { emit: Run['emit']; startedAt: string; threads: number; t0: number }): Promise<Run> {
  const { emit, threads } = o;
  const s = opts.settings;
  const warn = (message: string, layer?: string) => emit({ type: 'warning', message, ...(layer ? { layer } : {}) });
  if (isQuantizedConfig(model.config)) throw new UserError(`${model.dir} is already a quantized model; quantize its full-precision source instead.`, 'ALREADY_QUANTIZED');
  const arch = model.architecture;
  if (s.finetune.mode !== 'none') refuseUntrainableBlock(arch);
  const ctx = Math.min(s.calibration.ctx, arch.contextLength);
  if (ctx < s.calibration.ctx) warn(`The calibration length of ${s.calibration.ctx} tokens is longer than the model's context; using ${ctx} tokens per sequence.`);
  // No text given and the default text missing (a damaged install): calibrate on sequences the model samples.
  const calibSource = resolveCalibrationSource(s.calibration.textFile, s.seed);
  const calibFrom = describeCalibrationSource(calibSource);
  const sampled = calibSource.kind === 'model-sampled';
  const est = estimateRun(arch, s, threads, arch.contextLength, opts.evaluation ? opts.evaluation.ctx * opts.evaluation.maxWindows * (opts.evaluation.full ? 2 : 1) : 0, sampled);
  emit({ type: 'estimate', settings: s, threads, tokens: est.tokens, seconds: est.seconds, peakBytes: est.peakBytes, calibrationSource: calibFrom });
  if (sampled) {
    warn(`No calibration text given and ${defaultCalibrationText()} is not there: calibrating on ${s.calibration.samples} sequences of ${ctx} tokens sampled from the model (temperature 1, seed ${calibSource.seed}). Choose a calibration text to calibrate on your own text.`);
  }
  // Text: cut (and checked) now, before anything is written. Sampled: generated at the calibration phase.
  const ids = calibSource.kind === 'file' ? calibrationIds(model.tokenizer, { textFile: calibSource.file, sequences: s.calibration.samples, seqLen: ctx }) : null;
  const evalWindows = opts.evaluation ? perplexityWindows(model.tokenizer, readEvalText(opts.evaluation.textFile), Math.min(opts.evaluation.ctx, arch.contextLength), opts.evaluation.maxWindows) : null;
  const fingerprint = await sourceFingerprint(model.dir);
  // Sampled calibration data differs from the default text's, so a run on one never resumes the other.
  const id = jobId(fingerprint, sampled ? { ...settingsKey(s), calibrationSource: calibFrom } : settingsKey(s));
  return { opts, s, emit, warn, startedAt: o.startedAt, t0: o.t0, threads, out: path.resolve(opts.out), model, arch, ctx, calibSource, calibFrom, est, ids, evalWindows, fingerprint, id };
}

/** The fine-tuning trainers (native/src/finetune) implement the Llama block only: a model whose block
 * has q/k norms, sliding-window attention or layers without RoPE would be tuned towards the wrong
 * function, so such a run is refused before anything is written. */
function refuseUntrainableBlock(arch: LoadedModel['architecture']): void {
  const beyond = [
    arch.qkNorm ? 'q/k norms' : null,
    arch.slidingWindow !== undefined ? 'sliding-window attention' : null,
    arch.noRopeLayers?.length ? 'layers without RoPE' : null,
  ].filter((x): x is string => x !== null);
  if (beyond.length) {
    throw new UserError(`Fine-tuning does not support ${beyond.join(', ')} (this ${arch.family} model has them) yet. Quantize it without fine-tuning.`, 'UNSUPPORTED_FINETUNE');
  }
}

/** A previous run of this job that was killed after its folder was renamed: finish it (null: none). */
async function finishInterruptedSave({ out, id, emit }: Run): Promise<QuantizeJobResult | null> {
  if (!existsSync(path.join(out, PENDING_CONFIG)) || existsSync(path.join(out, 'config.json'))) return null;
  const rec = JSON.parse(await fs.readFile(path.join(out, RUN_RECORD_FILE), 'utf8').catch(() => '{}')) as { jobId?: string };
  if (rec.jobId !== id || !(await finishInterruptedPublish(out))) return null;
  emit({ type: 'phase', phase: 'done', message: `finished the interrupted save of ${out}` });
  const record = JSON.parse(await fs.readFile(path.join(out, RUN_RECORD_FILE), 'utf8')) as RunRecord;
  return { out, record, model: null };
}

/** The partial folder: resumed from its checkpoint, or started afresh with the unquantized tensors. */
async function openCheckpoint({ opts, out, id, model, emit, warn }: Run): Promise<Progress> {
  checkOutputFolder(out, !!opts.force);
  const partial = partialDir(out, id);
  for (const p of stalePartials(out, id)) warn(`${p} holds an unfinished run with other settings; delete it if you no longer need it.`);

  let cp = await readCheckpoint(partial, id);
  if (cp) {
    emit({ type: 'resume', fromBlock: cp.blocksDone, checkpoint: path.join(partial, CHECKPOINT_FILE) });
    // Half-written files of the killed run (never part of a model; some are large).
    await removeTempFiles(partial, { onlyStale: true });
  } else {
    await fs.rm(partial, { recursive: true, force: true });
    await fs.mkdir(partial, { recursive: true });
    cp = { version: 1, id, blocksDone: 0, layers: {}, metrics: [], timings: {} };
  }
  // Checkpoints from before sessions were kept: their phase timings stand for the earlier sessions.
  const earlier = Object.values(cp.timings).reduce((a, x) => a + x, 0);
  const priorSessions = cp.sessions ?? (earlier > 0 ? [{ startedAt: '', seconds: earlier }] : []);
  const progress: Progress = { partial, cp, resumedFromBlock: cp.blocksDone, timer: new Timer({ ...cp.timings }), priorSessions };
  if (!existsSync(path.join(partial, UNQUANTIZED_FILE))) {
    await writeSafetensors(path.join(partial, UNQUANTIZED_FILE), await unquantizedTensors(model, warn));
    await writeCheckpoint(partial, cp);
  }
  progress.timer.lap('load');
  return progress;
}

// ---- calibrate ----------------------------------------------------------------------------------

/** The engine and its calibration hidden states, advanced through the blocks a checkpoint saved. */
async function calibrate(run: Run, progress: Progress): Promise<Calibrated> {
  const { s, model, arch, ctx, emit } = run;
  const cancel = run.opts.cancel;
  const { partial, cp, timer } = progress;
  emit({ type: 'phase', phase: 'calibrate', message: `${s.calibration.samples} sequences x ${ctx} tokens from ${run.calibFrom}` });
  const engine = createEngine(model);
  const check = () => {
    if (cancel?.[0]) throw cancelledError(cp.blocksDone, arch.numLayers);
  };
  const call = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      if (isCancelled(err)) throw cancelledError(cp.blocksDone, arch.numLayers);
      throw err;
    }
  };
  let ids = run.ids;
  if (!ids) {
    const seed = (run.calibSource as { seed: number }).seed;
    try {
      ids = await sampledCalibrationIds(engine, model.tokenizer, arch.contextLength, { sequences: s.calibration.samples, seqLen: ctx, seed, cancel });
    } catch (err) {
      check();
      throw err;
    }
    timer.lap('sample');
  }
  if (s.targetBpw !== null && !cp.widths) {
    await allocate(run, progress, ids);
    timer.lap('allocate');
  }
  const cal = engine.createCalibration(ids, s.calibration.samples, ctx);
  const eta = new Eta(run, arch.numLayers * GROUPS.reduce((a, g) => a + g.kinds.length, 0));
  const tuning = QuantizeFinetune.start({
    model, engine, ids, sequences: s.calibration.samples, seqLen: ctx, settings: s.finetune, seed: s.seed, cancel, resume: cp.finetune,
    onEvent: (e) => {
      emit(e);
      if (e.type === 'ft-e2e-epoch') eta.endToEndEpochDone(e.seconds);
    },
  });
  const specs: Calibrated['specs'] = [];
  for (let b = 0; b < cp.blocksDone; b++) {
    check();
    for (const { kind, spec } of await loadBlock(partial, b, cp, s.codebook)) {
      native().qinferSetLinear(engine, b, kind, spec);
      specs.push({ block: b, kind, spec });
    }
    await call(cal.advance(undefined, cancel));
  }
  timer.lap('calibrate');
  return { engine, cal, tuning, specs, eta, check, call };
}

/**
 * --target-bpw: every layer's width from its measured sensitivity (allocate.ts), into the checkpoint
 * before the first block so a resumed run quantizes the same mix. With fine-tuning no layer stays at
 * 16 bits: in-block tuning changes the weights of the layers not yet quantized, and a dense layer's
 * tuned weights have no place in the engine (its widths are 2, 3 and 4 bits).
 */
async function allocate(run: Run, progress: Progress, ids: Int32Array): Promise<void> {
  const { s, model, arch, ctx, emit, warn } = run;
  const target = s.targetBpw!;
  const t0 = performance.now();
  const total = arch.numLayers * LINEAR_KINDS.length;
  emit({ type: 'phase', phase: 'calibrate', message: `--target-bpw ${target}: measuring each of the ${total} linear layers' sensitivity (proxy loss at 2, 3 and 4 bits on the 16-bit model's Hessians, output KLD with the layer alone at 2 bits)` });
  const sens = await measureSensitivity({
    model, settings: s, ids, sequences: s.calibration.samples, seqLen: ctx, cancel: run.opts.cancel,
    onProgress: (p) => {
      if (p.done === p.total || p.done % 7 === 0) emit({ type: 'phase', phase: 'calibrate', message: `sensitivity: ${p.phase === 'proxy' ? 'proxy loss' : 'KLD'} of ${p.done} / ${p.total} layers` });
    },
  }).catch((err) => {
    if (isCancelled(err)) throw cancelledError(0, arch.numLayers);
    throw err;
  });
  const widths: LayerWidth[] = s.finetune.mode === 'none' ? ['e8p', 'rvq3', 'rvq4', 'f16'] : ['e8p', 'rvq3', 'rvq4'];
  // Sign vectors as they will be stored: fine-tuned ones and row-scaled SV are float32.
  const tuned = s.finetune.mode !== 'none';
  const signs = { incoherence: s.incoherence, su: tuned ? 4 : 1, sv: tuned || s.rowScale ? 4 : 1 };
  const a = allocateWidths(sens.map((l) => layerOptions(l, widths, signs)), target);
  if (target < a.range[0] - 0.02 || target > a.range[1] + 0.02) {
    warn(`--target-bpw ${target} is outside what this model's linear layers can take with these widths (${a.range[0].toFixed(3)} to ${a.range[1].toFixed(3)} bits per weight, sign vectors and scales included${s.finetune.mode === 'none' ? '' : '; with fine-tuning no layer stays at 16 bits'}); using ${a.bitsPerWeight.toFixed(3)}.`);
  }
  const progressCp = progress.cp;
  progressCp.widths = a.widths;
  progressCp.allocation = {
    kld2: Object.fromEntries(sens.map((l) => [l.name, l.kld2])),
    predictedBitsPerWeight: a.bitsPerWeight,
    predictedLoss: a.predictedLoss,
    range: a.range,
    seconds: (performance.now() - t0) / 1000,
  };
  const count = (w: LayerWidth) => Object.values(a.widths).filter((x) => x === w).length;
  emit({ type: 'phase', phase: 'calibrate', message: `widths for ${target} bits per weight: ${count('e8p')} e8p, ${count('rvq3')} rvq3, ${count('rvq4')} rvq4, ${count('f16')} at 16 bits (${a.bitsPerWeight.toFixed(3)} bits per weight)` });
  await writeCheckpoint(progress.partial, progressCp);
}

/**
 * The ETA the job reports: the observed time per layer for the layers left, plus end-to-end
 * fine-tuning (block+e2e) at its estimate scaled by how the observed per-layer time compares with the
 * estimated one; each end-to-end epoch measured replaces the estimate for the epochs left.
 */
class Eta {
  private readonly estPerLayer: number;
  /** Observed / estimated seconds per layer. */
  private speed = 1;
  private e2eEpochsLeft: number;
  private start = 0;
  private doneAtStart = 0;

  constructor(
    private readonly run: Pick<Run, 'est' | 's' | 'emit'>,
    /** Linear layers in the model. */
    readonly totalWork: number,
  ) {
    const { est, s } = run;
    this.estPerLayer = (est.seconds.calibration + est.seconds.hessians + est.seconds.quantization + est.finetuneSeconds.block) / totalWork;
    this.e2eEpochsLeft = s.finetune.mode === 'block+e2e' ? s.finetune.epochs : 0;
  }

  /** Quantization starts with `done` layers already done (a resumed run). */
  begin(done: number): void {
    this.start = performance.now();
    this.doneAtStart = done;
  }

  elapsed(): number {
    return (performance.now() - this.start) / 1000;
  }

  /** Seconds of end-to-end fine-tuning left. */
  endToEndLeft(): number {
    const { s, est } = this.run;
    return (this.e2eEpochsLeft / Math.max(1, s.finetune.epochs)) * est.finetuneSeconds.endToEnd * this.speed;
  }

  layerDone(done: number): void {
    const elapsed = this.elapsed();
    const perLayer = elapsed / (done - this.doneAtStart);
    this.speed = perLayer / this.estPerLayer;
    this.run.emit({ type: 'eta', layersDone: done, layersTotal: this.totalWork, elapsedSeconds: elapsed, etaSeconds: perLayer * (this.totalWork - done) + this.endToEndLeft() });
  }

  /** Every layer is done; end to end begins. */
  endToEndStarts(): void {
    this.run.emit({ type: 'eta', layersDone: this.totalWork, layersTotal: this.totalWork, elapsedSeconds: this.elapsed(), etaSeconds: this.endToEndLeft() });
  }

  endToEndEpochDone(seconds: number): void {
    this.e2eEpochsLeft = Math.max(0, this.e2eEpochsLeft - 1);
    this.run.emit({ type: 'eta', layersDone: this.totalWork, layersTotal: this.totalWork, elapsedSeconds: this.elapsed(), etaSeconds: this.e2eEpochsLeft * seconds });
  }
}

// ---- quantize block by block --------------------------------------------------------------------

async function quantizeBlocks(run: Run, progress: Progress, c: Calibrated): Promise<void> {
  const { s, arch, emit } = run;
  const cancel = run.opts.cancel;
  const { cp, timer } = progress;
  emit({ type: 'phase', phase: 'quantize', message: `${arch.numLayers} blocks x 7 linear layers, ${s.targetBpw !== null ? `mixed widths for ${s.targetBpw} bits per weight` : `${s.bits}-bit ${s.codebook}`}` });
  let done = cp.blocksDone * 7;
  c.eta.begin(done);
  for (let b = cp.blocksDone; b < arch.numLayers; b++) {
    c.check();
    const blockStart = performance.now();
    const hs = await c.call(c.cal.hessians(undefined, cancel));
    timer.lap('hessians');
    await c.call(c.tuning.beginBlock(b));
    const layers: LayerTensors[] = [];
    const dense: DenseLayer[] = [];
    const metrics: LayerMetrics[] = [];
    for (const group of GROUPS) {
      const groupLayers: LayerTensors[] = [];
      const h: HessianSum = hs[group.tap];
      if (h.count === 0) throw new Error(`block ${b}: the ${group.tap} Hessian has no tokens`);
      // Normalised in place: a copy would hold a second n x n float64 matrix per group.
      const H = h.sum;
      for (let i = 0; i < H.length; i++) H[i] /= h.count;
      for (const k of group.kinds) {
        c.check();
        const name = `model.layers.${b}.${k.module}.${k.kind}`;
        const width = progress.cp.widths?.[name];
        const kld2 = progress.cp.allocation?.kld2[name];
        const mixed = width ? { width, ...(kld2 !== undefined ? { kld2 } : {}) } : {};
        if (width === 'f16') {
          const d = denseLayer(run, b, k);
          dense.push(d);
          const metric: LayerMetrics = { block: b, name, kind: k.short, shape: [d.record.m, d.record.n], proxyLoss: 0, frobeniusError: 0, seconds: 0, cholesky: 'none', ...mixed };
          metrics.push(metric);
          emit({ type: 'layer', ...metric });
          done++;
          c.eta.layerDone(done);
          continue;
        }
        const { layer, metric: m0 } = await quantizeLayer(run, c, b, k, H, width);
        const metric = { ...m0, ...mixed };
        layers.push(layer);
        groupLayers.push(layer);
        metrics.push(metric);
        emit({ type: 'layer', ...metric });
        done++;
        c.eta.layerDone(done);
      }
      await c.call(c.tuning.afterGroup(b, group.tap, groupLayers));
    }
    await c.call(c.tuning.endBlock(b, layers));
    timer.lap('quantize');
    await checkpointBlock(run, progress, c, b, layers, metrics, dense);
    emit({ type: 'block', block: b, blocks: arch.numLayers, seconds: (performance.now() - blockStart) / 1000, checkpointed: true });
    if (b + 1 < arch.numLayers) {
      await c.call(c.cal.advance(undefined, cancel));
      timer.lap('advance');
    }
  }
}

/** One linear layer of block b against its group's (normalised) Hessian H. */
async function quantizeLayer(
  run: Run, c: Calibrated, b: number, k: (typeof LINEAR_KINDS)[number], H: Float64Array, width?: Exclude<LayerWidth, 'f16'>,
): Promise<{ layer: LayerTensors; metric: LayerMetrics }> {
  const { s, model } = run;
  const name = `model.layers.${b}.${k.module}.${k.kind}`;
  const source = model.tensor(`${name}.weight`);
  const [m, n] = source.shape;
  // Mixed widths: each codebook at its own default rho (the widths were allocated with them).
  const codebook = width ?? s.codebook;
  const rho = width ? CODEBOOK_TABLE[width].defaultRho : s.rho;
  const r = await c.call(
    quantizeLinear(c.tuning.weight(k.kind, source), H, {
      m, n, codebook, incoherence: s.incoherence, rowScale: s.rowScale, ldlq: s.ldlq, sigma: s.sigma, rho, tuneIters: s.tuneIters, seed: layerSeed(s.seed, name),
    }, { cancel: run.opts.cancel }),
  );
  if (r.choleskyFallback) run.warn(`Cholesky of the Hessian failed in float32; retried: ${r.choleskyFallback}.`, name);
  const metric: LayerMetrics = { block: b, name, kind: k.short, shape: [m, n], proxyLoss: r.proxyLoss, frobeniusError: r.frobeniusError, seconds: r.seconds, cholesky: r.choleskyFallback ?? 'float32' };
  const layer = layerFromResult(b, k.kind, r);
  // Mixed folders name every layer's codebook; uniform ones stay as they were (format version 1).
  if (width) layer.record = { codebook: width, ...layer.record };
  return { layer, metric };
}

/** A layer kept at 16 bits (--target-bpw): its source weight as a plain tensor (F32 sources in F16, as
 * the unquantized tensors; kept F32 where a value would overflow). */
interface DenseLayer {
  name: string;
  record: DenseLayerRecord;
  tensors: TensorToWrite[];
}

function denseLayer(run: Run, b: number, k: (typeof LINEAR_KINDS)[number]): DenseLayer {
  const name = `model.layers.${b}.${k.module}.${k.kind}`;
  const t = run.model.tensor(`${name}.weight`);
  const [m, n] = t.shape;
  const raw = t.file.read(t.offset, m * n * (t.dtype === 'F32' ? 4 : 2));
  let dtype: DenseLayerRecord['dtype'] = t.dtype;
  let bytes: Uint8Array = new Uint8Array(raw);
  if (t.dtype === 'F32') {
    const f = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    if (f.every((v) => Math.abs(v) <= F16_MAX)) {
      dtype = 'F16';
      bytes = bytesOf(f32ArrayToF16(f));
    }
  }
  const tensor = `${name}.weight`;
  return { name, record: { m, n, dtype, tensor }, tensors: [{ name: tensor, dtype, shape: [m, n], source: { bytes } }] };
}

/** Block b to disk and into the checkpoint, and its quantized layers into the engine (the
 * calibration states then advance through the quantized block). */
async function checkpointBlock(run: Run, progress: Progress, c: Calibrated, b: number, layers: LayerTensors[], metrics: LayerMetrics[], dense: DenseLayer[] = []): Promise<void> {
  const { partial, cp, timer } = progress;
  const tensors = [...dense.flatMap((d) => d.tensors), ...layers.flatMap((l) => l.tensors)].sort((a, z) => dtypeOrder(a.dtype) - dtypeOrder(z.dtype));
  // Dense layers stay as they are in the engine (it holds the source weights).
  for (const d of dense) cp.dense = { ...cp.dense, [d.name]: d.record };
  await writeSafetensors(path.join(partial, blockFileName(b)), tensors);
  for (const l of layers) {
    cp.layers[l.name] = l.record;
    native().qinferSetLinear(c.engine, b, l.kind, l.spec);
    c.specs.push({ block: b, kind: l.kind, spec: l.spec });
  }
  cp.metrics.push(...metrics);
  cp.blocksDone = b + 1;
  cp.timings = { ...timer.timings };
  cp.sessions = sessionsSoFar(run, progress);
  const tuned = c.tuning.progress();
  if (tuned) cp.finetune = tuned;
  await writeCheckpoint(partial, cp);
  timer.lap('save');
}

// ---- fine-tune end to end -----------------------------------------------------------------------

/** block+e2e: its tensors go into the assembled folder; the pieces stay as checkpointed. */
async function finetuneEndToEnd(run: Run, progress: Progress, c: Calibrated): Promise<EndToEndOutput | null> {
  const { s, ctx, emit } = run;
  if (s.finetune.mode === 'block+e2e') {
    const f = s.finetune;
    emit({ type: 'phase', phase: 'finetune', message: `end to end: ${f.epochs} epoch${f.epochs === 1 ? '' : 's'} of distillation towards the source model on ${s.calibration.samples} x ${ctx} calibration tokens (~${formatSeconds(c.eta.endToEndLeft())})` });
    c.eta.endToEndStarts();
  }
  const e2e = await c.call(c.tuning.endToEnd(c.specs, path.join(progress.partial, UNQUANTIZED_FILE)));
  if (c.tuning.active) progress.timer.lap('finetune');
  return e2e;
}

// ---- save ---------------------------------------------------------------------------------------

/** The assembled model folder inside the partial folder; returns its size in bytes. */
async function save(run: Run, progress: Progress, e2e: EndToEndOutput | null): Promise<number> {
  const { s, out, model, arch, emit } = run;
  if (run.opts.cancel?.[0]) throw cancelledError(progress.cp.blocksDone, arch.numLayers);
  emit({ type: 'phase', phase: 'save', message: `assembling ${path.join(out, MODEL_FILE)}` });
  const qconfig: QuantizationConfig = {
    quant_method: QUANT_METHOD,
    format_version: FORMAT_VERSION,
    engine: { name: ENGINE_NAME, version: ENGINE_VERSION },
    codebook: s.codebook,
    bits: s.bits,
    incoherence: s.incoherence,
    ldlq: s.ldlq,
    sigma: s.sigma,
    rho: s.rho,
    tune_iters: s.tuneIters,
    seed: s.seed,
    calibration: s.calibration,
    hessian: 'damped-normalised',
    layers: progress.cp.layers,
  };
  if (s.targetBpw !== null) {
    qconfig.format_version = MIXED_FORMAT_VERSION;
    qconfig.target_bpw = s.targetBpw;
    if (progress.cp.dense && Object.keys(progress.cp.dense).length) qconfig.dense_layers = progress.cp.dense;
  }
  const bytesOnDisk = await assembleFolder(model, progress.partial, arch.numLayers, qconfig, e2e);
  progress.timer.lap('save');
  return bytesOnDisk;
}

// ---- evaluate -----------------------------------------------------------------------------------

/** The quantized model as saved (codes as quantizeLinear returned them) and, with an evaluation,
 * its perplexity (and the source's on the same windows). */
async function evaluate(run: Run, progress: Progress, c: Calibrated, e2e: EndToEndOutput | null): Promise<{ perplexity: RunRecord['perplexity']; qmodel: EngineModel | null }> {
  const { opts, arch, evalWindows, model, emit, calibSource } = run;
  let perplexity: RunRecord['perplexity'] = null;
  let qmodel: EngineModel | null = null;
  const { file: mapped, header } = openSafetensors(path.join(progress.partial, MODEL_FILE), true);
  try {
    const unquantized = new Map<string, { dtype: 'F32' | 'F16' | 'BF16'; shape: number[]; offset: number; bytes: number }>();
    for (const e of header.tensors) if (e.dtype === 'F32' || e.dtype === 'F16' || e.dtype === 'BF16') unquantized.set(e.name, { dtype: e.dtype, shape: e.shape, offset: e.offset, bytes: e.bytes });
    // In memory: codes as quantizeLinear returned them; unquantized tensors as saved.
    qmodel = createQuantizedEngine(e2e?.untied ? { ...arch, tiedEmbeddings: false } : arch, { unquantized, layers: c.specs, file: mapped });
    if (evalWindows && opts.evaluation) {
      const ectx = evalWindows[0].length;
      const textFile = path.resolve(opts.evaluation.textFile);
      const calibratedOnText = calibSource.kind === 'file' && sameText(path.resolve(calibSource.file), textFile);
      const measure = { dataset: textFile, text: textName(textFile), ctx: ectx, windows: evalWindows.length, calibratedOnText };
      emit({ type: 'phase', phase: 'evaluate', message: `perplexity on ${describePerplexity(measure)} (${textFile})` });
      if (calibratedOnText) run.warn(`The perplexity is measured on the text the run calibrated${run.s.finetune.mode !== 'none' ? ' and fine-tuned' : ''} on (${textFile}): it flatters the model. Evaluate on held-out text to compare with other models.`);
      const q = await c.call(evaluatePerplexity(qmodel, evalWindows, { ctx: ectx, cancel: opts.cancel }));
      const full = opts.evaluation.full ? await c.call(evaluatePerplexity(createEngine(model), evalWindows, { ctx: ectx, cancel: opts.cancel })) : null;
      const ratioStdErr = full ? perplexitySpread(q.windowNll.map((x, i) => x - full.windowNll[i]!)).stdErr : null;
      perplexity = {
        ...measure, windows: q.windows, tokens: q.tokensScored, quantized: q.ppl, full: full ? full.ppl : null, stdErr: q.stdErr, fullStdErr: full ? full.stdErr : null, ratioStdErr,
      };
      progress.timer.lap('evaluate');
    }
  } finally {
    if (!opts.keepModel) {
      qmodel = null;
      mapped.close();
    }
  }
  return { perplexity, qmodel };
}

// ---- run record and publish ---------------------------------------------------------------------

/** run.json, then the partial folder renamed into place; the summary and the end. */
async function publishRun(run: Run, progress: Progress, c: Calibrated, r: { bytesOnDisk: number; perplexity: RunRecord['perplexity'] }): Promise<RunRecord> {
  const { s, out, model, arch, emit } = run;
  const { partial, cp, timer } = progress;
  const denseLayers = Object.values(cp.dense ?? {});
  const linearWeights = Object.values(cp.layers).reduce((a, l) => a + l.m * l.n, 0) + denseLayers.reduce((a, d) => a + d.m * d.n, 0);
  const dtypeOf = safetensorsDTypes(path.join(partial, MODEL_FILE), true);
  const layerBitsTotal = Object.values(cp.layers).reduce((a, l) => a + layerBits(l, s.codebook, dtypeOf), 0) + denseLayers.reduce((a, d) => a + denseLayerBits(d), 0);
  const params = model.tensorNames().reduce((a, n) => a + model.tensorInfo(n).shape.reduce((x, y) => x * y, 1), 0);
  const record: RunRecord & { jobId: string } = {
    version: RUN_RECORD_VERSION,
    jobId: run.id,
    source: { dir: model.dir, fingerprint: run.fingerprint },
    settings: s,
    proxyLossHessian: 'damped-normalised',
    calibrationFlow: 'quantized-inputs',
    calibrationSource: run.calibFrom,
    threads: run.threads,
    layers: cp.metrics,
    timings: timer.timings,
    phasePeakRss: timer.memory,
    peakRssBytes: peakRss(),
    resumedFromBlock: progress.resumedFromBlock,
    sessions: sessionsSoFar(run, progress),
    sizes: { bytesOnDisk: r.bytesOnDisk, weightBytes: weightFileBytes(partial) ?? undefined, linearWeights, bitsPerWeight: layerBitsTotal / linearWeights, bitsPerParameter: (r.bytesOnDisk * 8) / params },
    perplexity: r.perplexity,
    finetune: c.tuning.record(),
    startedAt: run.startedAt,
    finishedAt: new Date().toISOString(),
  };
  await writeJsonAtomic(path.join(partial, RUN_RECORD_FILE), record);
  for (const f of [CHECKPOINT_FILE, UNQUANTIZED_FILE, ...Array.from({ length: arch.numLayers }, (_, b) => blockFileName(b))]) await fs.rm(path.join(partial, f), { force: true });
  await publish(partial, out, !!run.opts.force);
  const pl = proxyLossSummary(cp.metrics);
  emit({
    type: 'summary', out, codebook: s.codebook, bits: s.bits, bitsPerWeight: record.sizes.bitsPerWeight, bytesOnDisk: r.bytesOnDisk, layers: cp.metrics.length,
    meanProxyLoss: pl.mean, worstProxyLoss: pl.worst, perplexity: r.perplexity?.quantized ?? null, perplexityFull: r.perplexity?.full ?? null,
    perplexityInfo: r.perplexity, weightBytes: record.sizes.weightBytes,
    seconds: runSeconds(record), peakRssBytes: record.peakRssBytes,
  });
  emit({ type: 'phase', phase: 'done', message: `saved ${out}` });
  return record;
}

function dtypeOrder(d: string): number {
  return d === 'U8' || d === 'I8' ? 1 : 0;
}

/** model.safetensors from the pieces (2-byte tensors first, so code planes stay aligned) with
 * end-to-end fine-tuning's tensors in place of theirs (new ones, an untied lm_head.weight, after the
 * unquantized tensors), tokenizer files, config.pending.json (tie_word_embeddings false once
 * untied). Returns the folder's size in bytes (run.json not counted). */
async function assembleFolder(model: LoadedModel, partial: string, blocks: number, qconfig: QuantizationConfig, e2e: EndToEndOutput | null): Promise<number> {
  const pieces = [UNQUANTIZED_FILE, ...Array.from({ length: blocks }, (_, b) => blockFileName(b))];
  const tuned = new Map((e2e?.tensors ?? []).map((t) => [t.name, t]));
  const wide: TensorToWrite[] = [], narrow: TensorToWrite[] = [];
  let unquantizedEnd = 0;
  for (const p of pieces) {
    const file = path.join(partial, p);
    for (const e of readSafetensorsHeader(file, true).tensors) {
      const t = tuned.get(e.name) ?? { name: e.name, dtype: e.dtype, shape: e.shape, source: { file, offset: e.offset, length: e.bytes } };
      tuned.delete(e.name);
      (dtypeOrder(t.dtype) ? narrow : wide).push(t);
    }
    if (p === UNQUANTIZED_FILE) unquantizedEnd = wide.length;
  }
  wide.splice(unquantizedEnd, 0, ...tuned.values());
  let bytes = await writeSafetensors(path.join(partial, MODEL_FILE), [...wide, ...narrow], { format: 'pt', quant_method: QUANT_METHOD });
  for (const f of COPIED_FILES) {
    const src = path.join(model.dir, f);
    if (!existsSync(src)) continue;
    const data = await fs.readFile(src);
    await writeFileAtomic(path.join(partial, f), data);
    bytes += data.length;
  }
  const config = { ...model.config, ...(e2e?.untied ? { tie_word_embeddings: false } : {}), quantization_config: qconfig };
  const text = JSON.stringify(config, null, 2) + '\n';
  await writeFileAtomic(path.join(partial, PENDING_CONFIG), Buffer.from(text));
  return bytes + Buffer.byteLength(text);
}

