// The quantization job: load -> calibration hidden states -> per block: 4 Hessians -> quantize
// q, k, v (shared H), o, gate, up (shared H), down -> swap the block's linears for their quantized
// versions -> advance the hidden states through the *quantized* block (as the reference does, so
// later blocks are calibrated on the inputs they will see) -> checkpoint; then save, evaluate
// perplexity and write the run record. Memory: one block's weights and Hessians plus the calibration
// hidden states (N x L x hidden floats); weights stay memory-mapped.
//
// Determinism: every layer's seed comes from the run seed and the layer name, native reductions do
// not depend on the thread count, and a resumed run rebuilds the hidden states by advancing through
// the saved quantized blocks, so a cancelled-and-resumed run writes byte-identical model files.
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';

import { UserError } from '../../util/errors.js';
import { projectRoot } from '../../util/paths.js';
import { removeTempFiles, writeFileAtomic, writeJsonAtomic } from '../../util/atomic-file.js';
import { QuantizeFinetune, type EndToEndOutput } from '../finetune/job-hook.js';
import { F16_MAX, f32ArrayToF16 } from '../model/half.js';
import { loadModel, type LoadedModel } from '../model/index.js';
import { bytesOf, writeSafetensors, type TensorToWrite } from '../model/safetensors-writer.js';
import { openSafetensors, readSafetensorsFile, readSafetensorsHeader, safetensorsDTypes } from '../model/safetensors.js';
import { isCancelled, native } from '../native.js';
import { quantizeLinear } from '../quip/index.js';
import { calibrationIds, defaultCalibrationText, describeCalibrationSource, resolveCalibrationSource, sampledCalibrationIds } from '../runtime/calibration.js';
import { createEngine, setEngineThreads } from '../runtime/engine.js';
import type { BlockHessians, EngineModel, HessianSum } from '../runtime/native-types.js';
import { evaluatePerplexity, perplexityWindows, readEvalText } from '../runtime/perplexity.js';
import type { QuantizeEvent } from './events.js';
import { COPIED_FILES, ENGINE_NAME, ENGINE_VERSION, FORMAT_VERSION, QUANT_METHOD, isQuantizedConfig, layerBits, layerSeed, type QuantizationConfig } from './format.js';
import {
  CHECKPOINT_FILE, MODEL_FILE, PENDING_CONFIG, UNQUANTIZED_FILE, blockFileName, checkOutputFolder, finishInterruptedPublish, jobId, partialDir,
  publish, readCheckpoint, sourceFingerprint, stalePartials, writeCheckpoint, type Checkpoint,
} from './output.js';
import { createQuantizedEngine, isLinearWeight, layerFromResult, LINEAR_KINDS, specFromRecord, type LayerTensors } from './qmodel.js';
import type { QuantizedLinearSpec } from './native-types.js';
import { RUN_RECORD_FILE, RUN_RECORD_VERSION, proxyLossSummary, type LayerMetrics, type RunRecord } from './record.js';
import { estimateRun, formatSeconds, type QuantizeSettings } from './settings.js';

export interface EvaluationOptions {
  /** Text to score (default: WikiText-2 test next to the project). */
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
}

const GROUPS: Array<{ tap: keyof Omit<BlockHessians, 'block'>; kinds: Array<(typeof LINEAR_KINDS)[number]> }> = [
  { tap: 'qkv', kinds: LINEAR_KINDS.filter((k) => ['q', 'k', 'v'].includes(k.short)) },
  { tap: 'o', kinds: LINEAR_KINDS.filter((k) => k.short === 'o') },
  { tap: 'gateUp', kinds: LINEAR_KINDS.filter((k) => k.short === 'gate' || k.short === 'up') },
  { tap: 'down', kinds: LINEAR_KINDS.filter((k) => k.short === 'down') },
];

/** ../shared/data/wikitext-2-raw/wiki.test.raw beside the project (absent in an installed studio). */
export function defaultEvalText(): string {
  return path.join(projectRoot(), '..', 'shared', 'data', 'wikitext-2-raw', 'wiki.test.raw');
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
  return LINEAR_KINDS.map(({ kind, module }) => {
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

export async function runQuantizeJob(opts: QuantizeJobOptions): Promise<QuantizeJobResult> {
  const s = opts.settings;
  const emit = (e: QuantizeEvent) => opts.onEvent?.(e);
  const warn = (message: string, layer?: string) => emit({ type: 'warning', message, ...(layer ? { layer } : {}) });
  const cancel = opts.cancel;
  const startedAt = new Date().toISOString();
  const threads = setEngineThreads(s.threads ?? undefined);
  const out = path.resolve(opts.out);

  // ---- load and check everything before writing anything ---------------------------------------
  emit({ type: 'phase', phase: 'load', message: `loading ${opts.model}` });
  const model = await loadModel(opts.model);
  try {
    if (isQuantizedConfig(model.config)) throw new UserError(`${model.dir} is already a quantized model; quantize its full-precision source instead.`, 'ALREADY_QUANTIZED');
    const arch = model.architecture;
    const ctx = Math.min(s.calibration.ctx, arch.contextLength);
    if (ctx < s.calibration.ctx) warn(`--ctx ${s.calibration.ctx} is longer than the model's context; using ${ctx} tokens per sequence.`);
    // No text given and no WikiText-2 at hand (an installed studio): calibrate on sequences the model samples.
    const calibSource = resolveCalibrationSource(s.calibration.textFile, s.seed);
    const calibFrom = describeCalibrationSource(calibSource);
    const sampled = calibSource.kind === 'model-sampled';
    const est = estimateRun(arch, s, threads, arch.contextLength, opts.evaluation ? opts.evaluation.ctx * opts.evaluation.maxWindows * (opts.evaluation.full ? 2 : 1) : 0, sampled);
    emit({ type: 'estimate', settings: s, threads, tokens: est.tokens, seconds: est.seconds, peakBytes: est.peakBytes, calibrationSource: calibFrom });
    if (sampled) {
      warn(`No calibration text given and ${defaultCalibrationText()} is not there: calibrating on ${s.calibration.samples} sequences of ${ctx} tokens sampled from the model (temperature 1, seed ${calibSource.seed}). Pass --calib-text FILE to calibrate on your own text.`);
    }
    // Text: cut (and checked) now, before anything is written. Sampled: generated at the calibration phase.
    let ids = calibSource.kind === 'file' ? calibrationIds(model.tokenizer, { textFile: calibSource.file, sequences: s.calibration.samples, seqLen: ctx }) : null;
    const evalWindows = opts.evaluation ? perplexityWindows(model.tokenizer, readEvalText(opts.evaluation.textFile), Math.min(opts.evaluation.ctx, arch.contextLength), opts.evaluation.maxWindows) : null;

    const fingerprint = await sourceFingerprint(model.dir);
    // Sampled calibration data differs from the default text's, so a run on one never resumes the other.
    const id = jobId(fingerprint, sampled ? { ...settingsKey(s), calibrationSource: calibFrom } : settingsKey(s));
    // A previous run of this job that was killed after its folder was renamed: finish it.
    if (existsSync(path.join(out, PENDING_CONFIG)) && !existsSync(path.join(out, 'config.json'))) {
      const rec = JSON.parse(await fs.readFile(path.join(out, RUN_RECORD_FILE), 'utf8').catch(() => '{}')) as { jobId?: string };
      if (rec.jobId === id && (await finishInterruptedPublish(out))) {
        emit({ type: 'phase', phase: 'done', message: `finished the interrupted save of ${out}` });
        const record = JSON.parse(await fs.readFile(path.join(out, RUN_RECORD_FILE), 'utf8')) as RunRecord;
        return { out, record, model: null };
      }
    }
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
    const resumedFromBlock = cp.blocksDone;
    const timings0 = { ...cp.timings };
    const t = new Timer(timings0);
    if (!existsSync(path.join(partial, UNQUANTIZED_FILE))) {
      await writeSafetensors(path.join(partial, UNQUANTIZED_FILE), await unquantizedTensors(model, warn));
      await writeCheckpoint(partial, cp);
    }
    t.lap('load');

    // ---- calibration --------------------------------------------------------------------------
    emit({ type: 'phase', phase: 'calibrate', message: `${s.calibration.samples} sequences x ${ctx} tokens from ${calibFrom}` });
    const engine = createEngine(model);
    const check = () => {
      if (cancel?.[0]) throw cancelledError(cp!.blocksDone, arch.numLayers);
    };
    const nativeCall = async <T>(p: Promise<T>): Promise<T> => {
      try {
        return await p;
      } catch (err) {
        if (isCancelled(err)) throw cancelledError(cp!.blocksDone, arch.numLayers);
        throw err;
      }
    };
    if (!ids) {
      const seed = (calibSource as { seed: number }).seed;
      try {
        ids = await sampledCalibrationIds(engine, model.tokenizer, arch.contextLength, { sequences: s.calibration.samples, seqLen: ctx, seed, cancel });
      } catch (err) {
        check();
        throw err;
      }
      t.lap('sample');
    }
    const cal = engine.createCalibration(ids, s.calibration.samples, ctx);
    // Fine-tuning hook (--ft block | block+e2e; app/engine/finetune/job-hook.ts); null when off.
    // ETA: the observed time per layer for the layers left, plus end-to-end fine-tuning (block+e2e) at
    // its estimate scaled by how the observed per-layer time compares with the estimated one.
    const totalWork = arch.numLayers * GROUPS.reduce((a, g) => a + g.kinds.length, 0);
    const estPerLayer = (est.seconds.calibration + est.seconds.hessians + est.seconds.quantization + est.finetuneSeconds.block) / totalWork;
    let speed = 1; // observed / estimated seconds per layer
    let e2eEpochsLeft = s.finetune.mode === 'block+e2e' ? s.finetune.epochs : 0;
    const e2eLeft = () => (e2eEpochsLeft / Math.max(1, s.finetune.epochs)) * est.finetuneSeconds.endToEnd * speed;
    const onFinetuneEvent = (e: QuantizeEvent) => {
      emit(e);
      if (e.type !== 'ft-e2e-epoch') return;
      // Each epoch measured replaces the estimate for the epochs left.
      e2eEpochsLeft = Math.max(0, e2eEpochsLeft - 1);
      const elapsed = (performance.now() - quantStart) / 1000;
      emit({ type: 'eta', layersDone: totalWork, layersTotal: totalWork, elapsedSeconds: elapsed, etaSeconds: e2eEpochsLeft * e.seconds });
    };
    const ft = QuantizeFinetune.start({ model, engine, ids, sequences: s.calibration.samples, seqLen: ctx, settings: s.finetune, seed: s.seed, onEvent: onFinetuneEvent, cancel, resume: cp.finetune });
    const specs: Array<{ block: number; kind: (typeof LINEAR_KINDS)[number]['kind']; spec: QuantizedLinearSpec }> = [];
    for (let b = 0; b < cp.blocksDone; b++) {
      check();
      for (const { kind, spec } of await loadBlock(partial, b, cp, s.codebook)) {
        native().qinferSetLinear(engine, b, kind, spec);
        specs.push({ block: b, kind, spec });
      }
      await nativeCall(cal.advance(undefined, cancel));
    }
    t.lap('calibrate');

    // ---- quantize block by block --------------------------------------------------------------
    emit({ type: 'phase', phase: 'quantize', message: `${arch.numLayers} blocks x 7 linear layers, ${s.bits}-bit ${s.codebook}` });
    let done = cp.blocksDone * 7;
    const quantStart = performance.now();
    const doneAtStart = done;
    for (let b = cp.blocksDone; b < arch.numLayers; b++) {
      check();
      const blockStart = performance.now();
      const hs = await nativeCall(cal.hessians(undefined, cancel));
      t.lap('hessians');
      if (ft) await nativeCall(ft.beginBlock(b));
      const layers: LayerTensors[] = [];
      const metrics: LayerMetrics[] = [];
      for (const group of GROUPS) {
        const h: HessianSum = hs[group.tap];
        if (h.count === 0) throw new Error(`block ${b}: the ${group.tap} Hessian has no tokens`);
        // Normalised in place: a copy would hold a second n x n float64 matrix per group.
        const H = h.sum;
        for (let i = 0; i < H.length; i++) H[i] /= h.count;
        for (const k of group.kinds) {
          check();
          const name = `model.layers.${b}.${k.module}.${k.kind}`;
          const source = model.tensor(`${name}.weight`);
          const [m, n] = source.shape;
          const W = ft ? ft.weight(k.kind) : source;
          const r = await nativeCall(
            quantizeLinear(W, H, {
              m, n, codebook: s.codebook, incoherence: s.incoherence, rowScale: s.rowScale, ldlq: s.ldlq, sigma: s.sigma, rho: s.rho, tuneIters: s.tuneIters, seed: layerSeed(s.seed, name),
            }, { cancel }),
          );
          const lt = layerFromResult(b, k.kind, r);
          layers.push(lt);
          const cholesky = r.choleskyFallback ?? 'float32';
          if (r.choleskyFallback) warn(`Cholesky of the Hessian failed in float32; retried: ${r.choleskyFallback}.`, name);
          const metric: LayerMetrics = { block: b, name, kind: k.short, shape: [m, n], proxyLoss: r.proxyLoss, frobeniusError: r.frobeniusError, seconds: r.seconds, cholesky };
          metrics.push(metric);
          emit({ type: 'layer', ...metric });
          done++;
          const elapsed = (performance.now() - quantStart) / 1000;
          const perLayer = elapsed / (done - doneAtStart);
          speed = perLayer / estPerLayer;
          emit({ type: 'eta', layersDone: done, layersTotal: totalWork, elapsedSeconds: elapsed, etaSeconds: perLayer * (totalWork - done) + e2eLeft() });
        }
        if (ft) await nativeCall(ft.afterGroup(b, group.tap, layers.slice(-group.kinds.length)));
      }
      if (ft) await nativeCall(ft.endBlock(b, layers));
      t.lap('quantize');
      // Checkpoint the block, then run the calibration states through its quantized version.
      const tensors = [...layers.flatMap((l) => l.tensors)].sort((a, c) => dtypeOrder(a.dtype) - dtypeOrder(c.dtype));
      await writeSafetensors(path.join(partial, blockFileName(b)), tensors);
      for (const l of layers) {
        cp.layers[l.name] = l.record;
        native().qinferSetLinear(engine, b, l.kind, l.spec);
        specs.push({ block: b, kind: l.kind, spec: l.spec });
      }
      cp.metrics.push(...metrics);
      cp.blocksDone = b + 1;
      cp.timings = { ...t.timings };
      if (ft) cp.finetune = ft.progress();
      await writeCheckpoint(partial, cp);
      t.lap('save');
      emit({ type: 'block', block: b, blocks: arch.numLayers, seconds: (performance.now() - blockStart) / 1000, checkpointed: true });
      if (b + 1 < arch.numLayers) {
        await nativeCall(cal.advance(undefined, cancel));
        t.lap('advance');
      }
    }

    // End to end (block+e2e): its tensors go into the assembled folder; the pieces stay as checkpointed.
    if (s.finetune.mode === 'block+e2e') {
      const f = s.finetune;
      emit({ type: 'phase', phase: 'finetune', message: `end to end: ${f.epochs} epoch${f.epochs === 1 ? '' : 's'} of distillation towards the source model on ${s.calibration.samples} x ${ctx} calibration tokens (~${formatSeconds(e2eLeft())})` });
      emit({ type: 'eta', layersDone: totalWork, layersTotal: totalWork, elapsedSeconds: (performance.now() - quantStart) / 1000, etaSeconds: e2eLeft() });
    }
    const e2e = ft ? await nativeCall(ft.endToEnd(specs, path.join(partial, UNQUANTIZED_FILE))) : null;
    if (ft) t.lap('finetune');

    // ---- save ---------------------------------------------------------------------------------
    check();
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
      layers: cp.layers,
    };
    const bytesOnDisk = await assembleFolder(model, partial, arch.numLayers, qconfig, e2e);
    t.lap('save');

    // ---- evaluate -----------------------------------------------------------------------------
    let perplexity: RunRecord['perplexity'] = null;
    let qmodel: EngineModel | null = null;
    const { file: mapped, header } = openSafetensors(path.join(partial, MODEL_FILE), true);
    try {
      const unquantized = new Map<string, { dtype: 'F32' | 'F16' | 'BF16'; shape: number[]; offset: number; bytes: number }>();
      for (const e of header.tensors) if (e.dtype === 'F32' || e.dtype === 'F16' || e.dtype === 'BF16') unquantized.set(e.name, { dtype: e.dtype, shape: e.shape, offset: e.offset, bytes: e.bytes });
      // In memory: codes as quantizeLinear returned them; unquantized tensors as saved.
      qmodel = createQuantizedEngine(e2e?.untied ? { ...arch, tiedEmbeddings: false } : arch, { unquantized, layers: specs, file: mapped });
      if (evalWindows && opts.evaluation) {
        emit({ type: 'phase', phase: 'evaluate', message: `perplexity on ${evalWindows.length} windows of ${opts.evaluation.ctx} tokens from ${opts.evaluation.textFile}` });
        const ectx = evalWindows[0].length;
        const q = await nativeCall(evaluatePerplexity(qmodel, evalWindows, { ctx: ectx, cancel }));
        const full = opts.evaluation.full ? await nativeCall(evaluatePerplexity(createEngine(model), evalWindows, { ctx: ectx, cancel })) : null;
        perplexity = { dataset: opts.evaluation.textFile, ctx: ectx, windows: q.windows, tokens: q.tokensScored, quantized: q.ppl, full: full ? full.ppl : null };
        t.lap('evaluate');
      }
    } finally {
      if (!opts.keepModel) {
        qmodel = null;
        mapped.close();
      }
    }

    // ---- run record and publish ---------------------------------------------------------------
    const linearWeights = Object.values(cp.layers).reduce((a, l) => a + l.m * l.n, 0);
    const dtypeOf = safetensorsDTypes(path.join(partial, MODEL_FILE), true);
    const layerBitsTotal = Object.values(cp.layers).reduce((a, l) => a + layerBits(l, s.codebook, dtypeOf), 0);
    const params = model.tensorNames().reduce((a, n) => a + model.tensorInfo(n).shape.reduce((x, y) => x * y, 1), 0);
    const record: RunRecord & { jobId: string } = {
      version: RUN_RECORD_VERSION,
      jobId: id,
      source: { dir: model.dir, fingerprint },
      settings: s,
      proxyLossHessian: 'damped-normalised',
      calibrationFlow: 'quantized-inputs',
      calibrationSource: calibFrom,
      threads,
      layers: cp.metrics,
      timings: t.timings,
      phasePeakRss: t.memory,
      peakRssBytes: peakRss(),
      resumedFromBlock,
      sizes: { bytesOnDisk, linearWeights, bitsPerWeight: layerBitsTotal / linearWeights, bitsPerParameter: (bytesOnDisk * 8) / params },
      perplexity,
      finetune: ft ? ft.record() : null,
      startedAt,
      finishedAt: new Date().toISOString(),
    };
    await writeJsonAtomic(path.join(partial, RUN_RECORD_FILE), record);
    for (const f of [CHECKPOINT_FILE, UNQUANTIZED_FILE, ...Array.from({ length: arch.numLayers }, (_, b) => blockFileName(b))]) await fs.rm(path.join(partial, f), { force: true });
    await publish(partial, out, !!opts.force);
    const pl = proxyLossSummary(cp.metrics);
    emit({
      type: 'summary', out, codebook: s.codebook, bits: s.bits, bitsPerWeight: record.sizes.bitsPerWeight, bytesOnDisk, layers: cp.metrics.length,
      meanProxyLoss: pl.mean, worstProxyLoss: pl.worst, perplexity: perplexity?.quantized ?? null, perplexityFull: perplexity?.full ?? null,
      seconds: Object.values(t.timings).reduce((a, x) => a + x, 0), peakRssBytes: record.peakRssBytes,
    });
    emit({ type: 'phase', phase: 'done', message: `saved ${out}` });
    return { out, record, model: opts.keepModel ? qmodel : null };
  } finally {
    model.close();
  }
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

