// Quantization runs of the studio: estimates, a queue (one run at a time, the rest wait), the live
// state of the running one (fed by the quantize job's events), and cancel / resume / delete. Every
// change goes out as a run.event; what must survive a restart is in runs/ (see registry.ts).
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

import { RunName, type FineTuneEpoch, type RunDetail, type RunEstimate, type RunEventBody, type RunLayer, type RunLogLine, type RunSummary } from '../../contract/runs.js';
import { parseArchitecture, readConfig } from '../../engine/model/config.js';
import { LayerEvent, QuantizeEvent } from '../../engine/quantize/events.js';
import { COPIED_FILES } from '../../engine/quantize/format.js';
import { proxyLossSummary } from '../../engine/quantize/record.js';
import { codeBitsPerWeight, estimateRun, resolveSettings, SettingsError, type QuantizeSettingsInput } from '../../engine/quantize/settings.js';
import { UserError } from '../../util/errors.js';
import type { Emit } from '../dispatch.js';
import type { JobClient, JobHandle } from '../jobs/client.js';
import { RunRegistry, summarize, type RunSidecar } from './registry.js';

const LINEARS_PER_BLOCK = 7;

interface Live {
  sidecar: RunSidecar;
  layers: RunLayer[];
  phase: RunSummary['phase'];
  layersDone: number;
  etaSeconds: number | null;
  handle: JobHandle<unknown> | null;
  /** Resolves once the run has left the queue or its job has settled. */
  settled: Promise<void>;
  settle: () => void;
  /** The window or socket that started it (its jobs stop when it closes). */
  owner: string | undefined;
  cancelRequested: boolean;
}

export interface RunServiceOptions {
  home: string;
  jobs: JobClient;
  emit: Emit;
  /** The thread setting (null = all hardware threads) and the count that means. */
  threads: () => Promise<{ setting: number | null; available: number }>;
}

/** The model's shape from its config.json, with a message naming the folder when it is not a model. */
function readShape(modelDir: string) {
  if (!existsSync(path.join(modelDir, 'config.json'))) {
    throw new UserError(`${modelDir} has no config.json, so it is not a model folder. Open a model on the Models page first.`, 'NOT_A_MODEL');
  }
  return parseArchitecture(readConfig(modelDir));
}

/** Bytes of the output folder besides tensor data: the safetensors header (~4 tensors per linear),
 * config.json with a quantization record per layer, run.json, and the tokenizer files copied over. */
function folderExtras(modelDir: string, linears: number): number {
  const copied = COPIED_FILES.reduce((a, f) => a + (statSync(path.join(modelDir, f), { throwIfNoEntry: false })?.size ?? 0), 0);
  return linears * (4 * 80 + 800 + 320) + copied + 4096;
}

function settingsError(err: unknown): never {
  if (err instanceof SettingsError) throw new UserError(err.message, err.code);
  throw err;
}

export class RunService {
  readonly registry: RunRegistry;
  private readonly live = new Map<string, Live>();
  private readonly queue: string[] = [];
  private active: string | null = null;

  constructor(private readonly opts: RunServiceOptions) {
    this.registry = new RunRegistry(opts.home);
  }

  async estimate(modelDir: string, input: QuantizeSettingsInput): Promise<RunEstimate> {
    const arch = readShape(modelDir);
    let settings;
    try {
      settings = resolveSettings(input);
    } catch (err) {
      settingsError(err);
    }
    const t = await this.opts.threads();
    const threads = settings.threads ?? t.setting ?? t.available;
    const e = estimateRun(arch, settings, threads, arch.contextLength);
    // Output: codes at the codebook's rate plus fp16 sign vectors per linear; everything else 16-bit.
    const h = arch.hiddenSize, q = arch.numHeads * arch.headDim, kv = arch.numKeyValueHeads * arch.headDim, f = arch.intermediateSize;
    const shapes = [[q, h], [kv, h], [kv, h], [h, q], [f, h], [f, h], [h, f]] as const;
    const bits = codeBitsPerWeight(settings.codebook);
    const perBlock = shapes.reduce((a, [m, n]) => a + (m * n * bits) / 8 + (m + n) * 2 + 4, 0) + 2 * h * 2;
    const embeddings = arch.vocabSize * h * 2 * (arch.tiedEmbeddings ? 1 : 2) + h * 2;
    return {
      settings,
      threads,
      tokens: e.tokens,
      seconds: e.seconds,
      peakBytes: e.peakBytes,
      outputBytes: Math.round(perBlock * arch.numLayers + embeddings + folderExtras(modelDir, arch.numLayers * LINEARS_PER_BLOCK)),
      layers: arch.numLayers * LINEARS_PER_BLOCK,
    };
  }

  async start(input: { modelDir: string; settings: QuantizeSettingsInput; name?: string }, owner?: string): Promise<RunSummary> {
    const modelDir = path.resolve(input.modelDir);
    const arch = readShape(modelDir);
    let settings;
    try {
      settings = resolveSettings(input.settings);
    } catch (err) {
      settingsError(err);
    }
    const modelName = path.basename(modelDir);
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
    // The default name from the model folder's name, kept to the characters a run name may use.
    const base = modelName.replace(/[^\w.-]+/g, '-').replace(/^[.-]+/, '').slice(0, 80) || 'model';
    const name = input.name ?? `${base}-${settings.bits}bit-${settings.codebook}-${stamp}`;
    // The contract checked a given name; callers inside the studio (and the default) pass here too.
    const checked = RunName.safeParse(name);
    if (!checked.success) throw new UserError(checked.error.issues[0]?.message ?? `"${name}" can't be a run name.`, 'BAD_NAME');
    if (this.live.has(name) || (await this.registry.exists(name))) {
      throw new UserError(`A run named ${name} exists already. Choose another name or delete that run.`, 'RUN_EXISTS');
    }
    const sidecar: RunSidecar = {
      version: 1,
      name,
      modelDir,
      modelName,
      input: input.settings,
      settings,
      state: 'queued',
      error: null,
      createdAt: new Date().toISOString(),
      finishedAt: null,
      layersTotal: arch.numLayers * LINEARS_PER_BLOCK,
      log: [],
      fineTune: [],
    };
    await this.registry.writeSidecar(sidecar);
    return this.enqueue(sidecar, owner);
  }

  async resume(runId: string, owner?: string): Promise<RunSummary> {
    if (this.live.has(runId)) throw new UserError(`Run ${runId} is already queued or running.`, 'RUN_BUSY');
    const found = await this.registry.find(runId);
    if (!found) throw new UserError(`There is no run ${runId} in ${this.registry.dir}.`, 'NOT_FOUND');
    if (found.finished) throw new UserError(`Run ${runId} is finished; there is nothing to resume.`, 'RUN_FINISHED');
    if (!found.sidecar) {
      throw new UserError(`Run ${runId} was started from the command line; resume it there by running the same quip quantize command again.`, 'CLI_RUN');
    }
    const sidecar: RunSidecar = { ...found.sidecar, state: 'queued', error: null, finishedAt: null };
    sidecar.log = [...sidecar.log, this.line('info', found.checkpoint ? `Resuming after block ${found.checkpoint.blocksDone - 1}.` : 'Starting again (no finished block was saved).')];
    await this.registry.writeSidecar(sidecar);
    return this.enqueue(sidecar, owner);
  }

  private enqueue(sidecar: RunSidecar, owner: string | undefined): RunSummary {
    let settle!: () => void;
    const settled = new Promise<void>((r) => (settle = r));
    const live: Live = { sidecar, layers: [], phase: null, layersDone: 0, etaSeconds: null, handle: null, settled, settle, owner, cancelRequested: false };
    this.live.set(sidecar.name, live);
    this.queue.push(sidecar.name);
    this.sendState(sidecar.name);
    this.pump();
    return this.liveSummary(sidecar.name)!;
  }

  private pump(): void {
    if (this.active || !this.queue.length) return;
    const name = this.queue.shift()!;
    const live = this.live.get(name)!;
    this.active = name;
    live.sidecar.state = 'running';
    live.phase = 'load';
    void this.registry.writeSidecar(live.sidecar);
    this.sendState(name);
    void this.runJob(name, live);
  }

  private async runJob(name: string, live: Live) {
    const { sidecar } = live;
    const t = await this.opts.threads();
    const threads = sidecar.settings.threads ?? t.setting ?? undefined;
    const handle = this.opts.jobs.run(
      'quantize',
      { modelDir: sidecar.modelDir, out: this.registry.outDir(name), settings: sidecar.input },
      {
        label: `Quantize ${sidecar.modelName} to ${sidecar.settings.bits} bits (${sidecar.settings.codebook})`,
        owner: live.owner,
        threads,
        onEvent: (e) => {
          if (e.type === 'progress' && e.data !== undefined) this.onJobData(name, e.data);
          else if (e.type === 'log' && e.message) this.log(name, 'info', e.message);
          else if (e.type === 'queued') this.log(name, 'info', 'Waiting for a job process: other jobs (inspections, chats) use every slot.');
        },
      },
    );
    live.handle = handle;
    if (live.cancelRequested) handle.cancel();
    try {
      await handle.result;
      sidecar.state = 'done';
      live.phase = 'done';
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'ERROR';
      const message = err instanceof Error ? err.message : String(err);
      if (code === 'CANCELLED') {
        sidecar.state = 'cancelled';
        this.log(name, 'warning', 'Cancelled. The finished blocks are kept; resume to continue.');
      } else {
        sidecar.state = 'error';
        sidecar.error = { message, code };
        this.log(name, 'error', message);
      }
    }
    sidecar.finishedAt = new Date().toISOString();
    await this.registry.writeSidecar(sidecar).catch(() => {});
    this.live.delete(name);
    this.active = null;
    this.opts.emit('run.event', { runId: name, at: Date.now(), body: { type: 'state', run: await this.summary(name) } });
    live.settle();
    this.pump();
  }

  /** A quantize job event (app/engine/quantize/events.ts), or a fine-tuning epoch. */
  private onJobData(name: string, data: unknown) {
    const live = this.live.get(name);
    if (!live) return;
    // Fine-tuning epochs first: they may or may not be part of the quantize event union.
    const ft = fineTuneEpoch(data);
    if (ft) {
      live.sidecar.fineTune.push(ft);
      this.send(name, { type: 'fineTune', epoch: ft });
      return;
    }
    const d = data as { type?: unknown; block?: unknown; group?: unknown; bestHeldoutLoss?: unknown; bestEpoch?: unknown; heldoutError?: unknown };
    if (d?.type === 'ft-group' && typeof d.bestHeldoutLoss === 'number') {
      this.log(name, 'info', `Fine-tuned block ${String(d.block)} after ${String(d.group)}: best held-out loss ${d.bestHeldoutLoss.toExponential(3)} at epoch ${String(d.bestEpoch)}.`);
      return;
    }
    if (d?.type === 'ft-block' && typeof d.heldoutError === 'number') {
      this.log(name, 'info', `Block ${String(d.block)} fine-tuned: held-out error ${d.heldoutError.toExponential(3)}.`);
      return;
    }
    const parsed = QuantizeEvent.safeParse(data);
    if (!parsed.success) return;
    const e = parsed.data;
    switch (e.type) {
      case 'estimate':
        this.log(name, 'info', `Estimate on ${e.threads} thread(s): ${Math.round(e.seconds.total)} s, ${Math.round(e.peakBytes / 2 ** 20)} MiB peak, ${e.tokens} calibration tokens.`);
        break;
      case 'phase':
        live.phase = e.phase;
        this.send(name, { type: 'phase', phase: e.phase, message: e.message });
        this.log(name, 'info', e.message);
        void this.registry.writeSidecar(live.sidecar).catch(() => {});
        break;
      case 'layer': {
        const layer = LayerEvent.omit({ type: true }).parse(e);
        live.layers.push(layer);
        live.layersDone = live.layers.length;
        this.send(name, { type: 'layer', layer });
        break;
      }
      case 'eta':
        live.etaSeconds = e.etaSeconds;
        live.sidecar.layersTotal = e.layersTotal;
        this.send(name, { type: 'eta', layersDone: e.layersDone, layersTotal: e.layersTotal, elapsedSeconds: e.elapsedSeconds, etaSeconds: e.etaSeconds });
        break;
      case 'block':
        this.log(name, 'info', `Block ${e.block + 1}/${e.blocks} done in ${e.seconds.toFixed(2)} s${e.checkpointed ? ' (checkpointed)' : ''}.`);
        break;
      case 'warning':
        this.log(name, 'warning', e.layer ? `${e.layer}: ${e.message}` : e.message);
        break;
      case 'resume':
        this.log(name, 'info', `Resumed from the checkpoint after block ${e.fromBlock - 1}.`);
        break;
      case 'summary':
        this.log(
          name,
          'info',
          `Done: ${e.bitsPerWeight.toFixed(3)} bits/weight, ${Math.round(e.bytesOnDisk / 1024)} KiB on disk, mean proxy loss ${e.meanProxyLoss.toExponential(3)}` +
            (e.perplexity !== null ? `, perplexity ${e.perplexity.toFixed(3)}` : '') +
            '.',
        );
        break;
    }
  }

  private line(level: RunLogLine['level'], message: string): RunLogLine {
    return { at: Date.now(), level, message };
  }

  private log(name: string, level: RunLogLine['level'], message: string) {
    const live = this.live.get(name);
    const line = this.line(level, message);
    if (live) live.sidecar.log.push(line);
    this.send(name, { type: 'log', line });
  }

  private send(runId: string, body: RunEventBody) {
    this.opts.emit('run.event', { runId, at: Date.now(), body });
  }

  private sendState(name: string) {
    const run = this.liveSummary(name);
    if (run) this.send(name, { type: 'state', run });
  }

  private liveDetail(name: string): RunDetail | null {
    const live = this.live.get(name);
    if (!live) return null;
    const s = live.sidecar;
    return {
      runId: name,
      name,
      dir: this.registry.outDir(name),
      modelDir: s.modelDir,
      modelName: s.modelName,
      settings: s.settings,
      state: s.state,
      phase: s.state === 'queued' ? null : live.phase,
      error: s.error,
      origin: 'studio',
      createdAt: s.createdAt,
      finishedAt: null,
      layersDone: live.layersDone,
      layersTotal: s.layersTotal,
      etaSeconds: live.etaSeconds,
      bitsPerWeight: null,
      bytesOnDisk: null,
      perplexity: null,
      perplexityFull: null,
      seconds: null,
      meanProxyLoss: live.layers.length ? proxyLossSummary(live.layers).mean : null,
      layers: live.layers,
      fineTune: s.fineTune,
      log: s.log,
      timings: {},
    };
  }

  private liveSummary(name: string): RunSummary | null {
    const d = this.liveDetail(name);
    if (!d) return null;
    const { layers: _l, fineTune: _f, log: _g, timings: _t, ...summary } = d;
    return summary;
  }

  async get(runId: string): Promise<RunDetail> {
    const live = this.liveDetail(runId);
    if (live) {
      // A resumed run shows the layers of its checkpoint before the new ones arrive.
      if (!live.layers.length) {
        const found = await this.registry.find(runId);
        if (found?.checkpoint) return { ...live, layers: found.checkpoint.metrics, layersDone: found.checkpoint.metrics.length };
      }
      return live;
    }
    const found = await this.registry.find(runId);
    if (!found) throw new UserError(`There is no run ${runId} in ${this.registry.dir}.`, 'NOT_FOUND');
    return summarize(found, this.registry.outDir(runId));
  }

  async summary(runId: string): Promise<RunSummary> {
    const { layers: _l, fineTune: _f, log: _g, timings: _t, ...summary } = await this.get(runId);
    return summary;
  }

  async list(): Promise<RunSummary[]> {
    const found = await this.registry.all();
    const byName = new Map(found.map((f) => [f.name, f]));
    const out: RunSummary[] = [];
    for (const name of new Set([...byName.keys(), ...this.live.keys()])) {
      out.push(this.liveSummary(name) ?? (await this.summary(name)));
    }
    return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  async cancel(runId: string): Promise<RunSummary> {
    const live = this.live.get(runId);
    if (!live) throw new UserError(`Run ${runId} is not queued or running.`, 'NOT_RUNNING');
    const queued = this.queue.indexOf(runId);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      live.sidecar.state = 'cancelled';
      live.sidecar.finishedAt = new Date().toISOString();
      await this.registry.writeSidecar(live.sidecar);
      this.live.delete(runId);
      live.settle();
      const run = await this.summary(runId);
      this.send(runId, { type: 'state', run });
      return run;
    }
    live.cancelRequested = true;
    live.handle?.cancel();
    await live.settled;
    return this.summary(runId);
  }

  async delete(runId: string): Promise<void> {
    this.registry.outDir(runId); // refuses an id that is not one name inside runs/ before anything
    if (this.live.has(runId)) await this.cancel(runId);
    if (!(await this.registry.exists(runId))) throw new UserError(`There is no run ${runId} in ${this.registry.dir}.`, 'NOT_FOUND');
    await this.registry.remove(runId);
  }

  /** The job of a running run (its process id, e.g. for a diagnostic), null when it is not running. */
  jobOf(runId: string): { jobId: string; pid: number | undefined } | null {
    const h = this.live.get(runId)?.handle;
    return h ? { jobId: h.jobId, pid: h.pid } : null;
  }

  async folder(runId: string): Promise<string> {
    const d = await this.get(runId);
    return d.dir;
  }

  /** Cancels the queued and running runs a closed window started. */
  async cancelOwnedBy(owner: string): Promise<void> {
    const mine = [...this.live.entries()].filter(([, l]) => l.owner === owner).map(([name]) => name);
    await Promise.all(mine.map((name) => this.cancel(name).catch(() => {})));
  }

  /** Cancels queued and running runs and waits for them (quit, server close). */
  async shutdown(): Promise<void> {
    for (const name of [...this.queue]) await this.cancel(name).catch(() => {});
    const active = this.active ? this.live.get(this.active) : null;
    if (active) {
      active.cancelRequested = true;
      active.handle?.cancel();
      await active.settled;
    }
  }
}

/** A fine-tuning epoch from the job (app/engine/finetune's 'ft-epoch' event: block, group, epoch,
 * train and held-out loss; an end-to-end epoch has no block). Other ft events are summaries. */
export function fineTuneEpoch(data: unknown): FineTuneEpoch | null {
  const d = data as Record<string, unknown> | null;
  if (!d || typeof d !== 'object' || !/^(finetune|fineTune|ft|epoch)/.test(String(d.type))) return null;
  const trainLoss = Number(d.trainLoss ?? d.train ?? d.loss);
  const epoch = Number(d.epoch);
  if (!Number.isFinite(trainLoss) || !Number.isInteger(epoch)) return null;
  const held = d.heldoutLoss ?? d.heldOutLoss ?? d.validLoss ?? null;
  const block = typeof d.block === 'number' ? d.block : null;
  const stage = d.stage === 'e2e' || (block === null && d.stage !== 'block') ? 'e2e' : 'block';
  const group = typeof d.group === 'string' ? d.group : null;
  return { stage, block, group, epoch, trainLoss, heldOutLoss: held === null ? null : Number(held) };
}
