// Quantization runs of the studio: estimates, a queue (one run at a time, the rest wait), the live
// state of the running one (fed by the quantize job's typed events), and cancel / resume / delete.
// Settings are resolved here once, when a run is estimated or started; the sidecar keeps the resolved
// settings and the job runs exactly those. Every change goes out as a run.event; what must survive a
// restart is in runs/ (see registry.ts).
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';

import { RunName, type FineTuneEpoch, type RunDetail, type RunEstimate, type RunEventBody, type RunLayer, type RunLogLine, type RunSummary } from '../../contract/runs.js';
import { parseArchitecture, readConfig } from '../../engine/model/config.js';
import { addObservation, calibrateEstimate, modelParams, MACHINE_RATES_FILE, MachineRates, predictedGroups, type RateObservation, describePerplexity, evaluationTokens, resolveEvaluation, type EvaluationInput, estimateRun, estimateWeightBytes, formatPerplexity, proxyLossSummary, resolveSettings, type FtEndToEndEpochEvent, type FtEpochEvent, type QuantizeEvent, type QuantizeSettingsInput } from '../../domain/quantize/index.js';
import { formatBytes, formatSeconds } from '../../domain/format.js';
import { UserError } from '../../util/errors.js';
import { writeJsonAtomic } from '../../util/atomic-file.js';
import { weightFileBytes } from '../../engine/model/safetensors.js';
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
  /** Run the probe job the first time an estimate is asked for (default true). */
  probe?: boolean;
}

/** The model's shape from its config.json, with a message naming the folder when it is not a model. */
function readShape(modelDir: string) {
  if (!existsSync(path.join(modelDir, 'config.json'))) {
    throw new UserError(`${modelDir} has no config.json, so it is not a model folder. Open a model on the Models page first.`, 'NOT_A_MODEL');
  }
  return parseArchitecture(readConfig(modelDir));
}

export class RunService {
  readonly registry: RunRegistry;
  private readonly live = new Map<string, Live>();
  private readonly queue: string[] = [];
  private active: string | null = null;

  constructor(private readonly opts: RunServiceOptions) {
    this.registry = new RunRegistry(opts.home);
  }

  async estimate(modelDir: string, input: QuantizeSettingsInput, evaluationInput?: EvaluationInput): Promise<RunEstimate> {
    const arch = readShape(modelDir);
    const settings = resolveSettings(input);
    const evaluation = resolveEvaluation(evaluationInput);
    const t = await this.opts.threads();
    const threads = settings.threads ?? t.setting ?? t.available;
    const e = estimateRun(arch, settings, threads, arch.contextLength, evaluationTokens(evaluation, arch.contextLength));
    const rates = await this.rates();
    // The first time, a short probe measures this machine (never beside a run: runs measure it too).
    if (!rates && !this.active && !this.queue.length) void this.probe();
    const time = calibrateEstimate(predictedGroups(e, weightFileBytes(modelDir) ?? 0), modelParams(arch), rates?.observations ?? [], e.units);
    return {
      settings,
      threads,
      tokens: e.tokens,
      seconds: e.seconds,
      peakBytes: e.peakBytes,
      time: { seconds: time.seconds, low: time.low, high: time.high, basis: time.basis, observations: time.observations, probing: this.probing !== null, phases: time.groups },
      evaluation,
      outputBytes: estimateWeightBytes(arch, settings),
      layers: arch.numLayers * LINEARS_PER_BLOCK,
    };
  }

  /** This machine's observations (machine-rates.json), null before the first. */
  async rates(): Promise<MachineRates | null> {
    try {
      const parsed = MachineRates.safeParse(JSON.parse(await fs.readFile(path.join(this.opts.home, MACHINE_RATES_FILE), 'utf8')));
      return parsed.success ? parsed.data : null;
    } catch {
      return null;
    }
  }

  private ratesWrite: Promise<void> = Promise.resolve();
  /** Adds one finished job's timings to machine-rates.json (writes one at a time). */
  recordObservation(o: RateObservation): Promise<void> {
    this.ratesWrite = this.ratesWrite.then(async () => {
      await fs.mkdir(this.opts.home, { recursive: true });
      await writeJsonAtomic(path.join(this.opts.home, MACHINE_RATES_FILE), addObservation(await this.rates(), o));
    }).catch(() => {});
    return this.ratesWrite;
  }

  /** The probe job, while it runs. */
  probing: Promise<void> | null = null;
  private readonly waitingForProbe = new Set<string>();
  /** Starts the short probe (once, in the background) that calibrates estimates on this machine. */
  probe(): Promise<void> {
    if (this.opts.probe === false) return Promise.resolve();
    this.probing ??= this.opts.jobs
      .run('probeRates', {}, { label: 'Measure this machine for estimates (a short probe run)' })
      .result.then(async (r) => {
        for (const o of r.observations) await this.recordObservation(o);
      })
      .catch(() => {})
      .finally(() => {
        this.probing = null;
      });
    return this.probing;
  }

  async start(input: { modelDir: string; settings: QuantizeSettingsInput; evaluation?: EvaluationInput; name?: string }, owner?: string): Promise<RunSummary> {
    const modelDir = path.resolve(input.modelDir);
    const arch = readShape(modelDir);
    const settings = resolveSettings(input.settings);
    const evaluation = resolveEvaluation(input.evaluation);
    const modelName = path.basename(modelDir);
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
    // The default name from the model folder's name, kept to the characters a run name may use.
    const base = modelName.replace(/[^\w.-]+/g, '-').replace(/^[.-]+/, '').slice(0, 80) || 'model';
    const name = input.name ?? `${base}-${settings.targetBpw !== null ? `mixed-${settings.targetBpw}bpw` : `${settings.bits}bit-${settings.codebook}`}-${stamp}`;
    // The contract checked a given name; callers inside the studio (and the default) pass here too.
    const checked = RunName.safeParse(name);
    if (!checked.success) throw new UserError(checked.error.issues[0]?.message ?? `"${name}" can't be a run name.`, 'BAD_NAME');
    if (this.live.has(name) || (await this.registry.exists(name))) {
      throw new UserError(`A run named ${name} exists already. Choose another name or delete that run.`, 'RUN_EXISTS');
    }
    const sidecar: RunSidecar = {
      version: 2,
      name,
      modelDir,
      modelName,
      settings,
      evaluation,
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
    sidecar.log = [...sidecar.log, this.line('info', found.checkpoint ? `Resuming after block ${found.checkpoint.blocksDone} (the blocks before it are saved).` : 'Starting again (no finished block was saved).')];
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
    // The first-time probe measures this machine for a few seconds: a run waits for it rather than
    // share the cores with it (both would be slower, and the probe would measure the contention).
    if (this.probing) {
      const first = this.queue[0]!;
      if (!this.waitingForProbe.has(first)) {
        this.waitingForProbe.add(first);
        this.log(first, 'info', 'Waiting a few seconds for the first-time probe that measures this machine for estimates.');
      }
      void this.probing.then(() => this.pump());
      return;
    }
    const name = this.queue.shift()!;
    const live = this.live.get(name)!;
    this.active = name;
    live.sidecar.state = 'running';
    live.phase = 'load';
    void this.registry.writeSidecar(live.sidecar).catch(() => {});
    this.sendState(name);
    void this.runJob(name, live);
  }

  private async runJob(name: string, live: Live) {
    const { sidecar } = live;
    const t = await this.opts.threads();
    const threads = sidecar.settings.threads ?? t.setting ?? undefined;
    const handle = this.opts.jobs.run(
      'quantize',
      { modelDir: sidecar.modelDir, out: this.registry.outDir(name), settings: sidecar.settings, ...(sidecar.evaluation !== undefined ? { evaluation: sidecar.evaluation } : {}) },
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
      const result = await handle.result;
      sidecar.state = 'done';
      live.phase = 'done';
      if (result.observation) await this.recordObservation(result.observation);
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

  /** One event of the quantize job (app/domain/quantize/events.ts, checked in the job process). */
  private onJobData(name: string, e: QuantizeEvent) {
    const live = this.live.get(name);
    if (!live) return;
    switch (e.type) {
      case 'estimate':
        this.log(name, 'info', `Estimate on ${e.threads} thread(s): ${formatSeconds(e.seconds.total)}, ${formatBytes(e.peakBytes)} peak, ${e.tokens} calibration tokens.`);
        break;
      case 'phase':
        live.phase = e.phase;
        this.send(name, { type: 'phase', phase: e.phase, message: e.message });
        this.log(name, 'info', e.message);
        void this.registry.writeSidecar(live.sidecar).catch(() => {});
        break;
      case 'layer': {
        const { type: _type, ...layer } = e;
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
          `Done: ${e.bitsPerWeight.toFixed(3)} bits/weight, weights ${formatBytes(e.weightBytes ?? e.bytesOnDisk)}, mean proxy loss ${e.meanProxyLoss.toExponential(3)}` +
            (e.perplexity !== null ? `, perplexity ${formatPerplexity(e.perplexity, e.perplexityInfo?.stdErr)}${e.perplexityInfo ? ` (${describePerplexity(e.perplexityInfo)})` : ''}` : '') +
            '.',
        );
        break;
      case 'ft-epoch':
      case 'ft-e2e-epoch': {
        const epoch = fineTuneEpoch(e);
        live.sidecar.fineTune.push(epoch);
        this.send(name, { type: 'fineTune', epoch });
        break;
      }
      case 'ft-group':
        this.log(name, 'info', `Fine-tuned block ${e.block} after ${e.group}: best held-out loss ${e.bestHeldoutLoss.toExponential(3)} at epoch ${e.bestEpoch}.`);
        break;
      case 'ft-block':
        this.log(name, 'info', `Block ${e.block + 1} fine-tuned: held-out error ${e.heldoutError.toExponential(3)}.`);
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

/** A fine-tuning epoch of the job as the Run screen draws it: in-block ('ft-epoch': block, group)
 * or end to end ('ft-e2e-epoch': no block, no group). */
export function fineTuneEpoch(e: FtEpochEvent | FtEndToEndEpochEvent): FineTuneEpoch {
  return e.type === 'ft-epoch'
    ? { stage: 'block', block: e.block, group: e.group, epoch: e.epoch, trainLoss: e.trainLoss, heldOutLoss: e.heldoutLoss }
    : { stage: 'e2e', block: null, group: null, epoch: e.epoch, trainLoss: e.trainLoss, heldOutLoss: e.heldoutLoss };
}
