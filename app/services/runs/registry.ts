// The run registry is the runs/ folder of the studio home itself, in the quantize job's own formats:
//   runs/<name>/                 a finished quantized model (config.json, run.json = RunRecord)
//   runs/<name>.partial-<id>/    an unfinished one (checkpoint.json with the layers done so far)
//   runs/.studio/<name>.json     what the studio adds for runs it started: the source model, the
//                                resolved settings the job runs, state, error, log and fine-tuning
//                                losses
// So `quip quantize --out <home>/runs/<name>` shows up here, and a studio run is a normal model folder.
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

import { nameProblem } from '../../contract/limits.js';
import { FineTuneEpoch, RunFailure, RunLogLine, RunState, type RunDetail, type RunLayer, type RunSummary } from '../../contract/runs.js';
import { EvaluationSettings, FinetuneRecord, proxyLossSummary, QuantizeSettings, QuantizeSettingsInput, resolveSettings, RUN_RECORD_FILE, RunRecord, runSeconds } from '../../domain/quantize/index.js';
import { weightFileBytes } from '../../engine/model/safetensors.js';
import { CHECKPOINT_FILE, Checkpoint } from '../../engine/quantize/output.js';
import { writeJsonAtomic } from '../../util/atomic-file.js';
import { childPath } from '../../util/paths.js';

export const RUNS_DIR = 'runs';
const SIDECAR_DIR = '.studio';
const MAX_LOG = 400;

const SidecarFields = {
  name: z.string(),
  modelDir: z.string(),
  modelName: z.string(),
  /** Resolved once when the run was started: what the job runs, on every resume too (a later change
   * of the defaults never changes a run already started). */
  settings: QuantizeSettings,
  /** How the perplexity is measured, resolved at the start like the settings (null: not measured;
   * absent in sidecars from before it was kept: the defaults of the day). */
  evaluation: EvaluationSettings.nullable().optional(),
  state: RunState,
  error: RunFailure.nullable(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
  layersTotal: z.number().int().nullable(),
  log: z.array(RunLogLine),
  fineTune: z.array(FineTuneEpoch),
};

/** What the studio keeps beside a run it started. */
export const RunSidecar = z.object({ version: z.literal(2), ...SidecarFields });
export type RunSidecar = z.infer<typeof RunSidecar>;

/**
 * Sidecars written before version 2 kept the settings as the user gave them (`input`) beside the
 * resolved ones, and the job resolved `input` again on every resume. Read once more that way, so a
 * run interrupted then resumes the checkpoint it made (the stored settings when `input` no longer
 * resolves); the next write stores version 2 and the run keeps those settings from then on.
 */
const RunSidecarV1 = z.object({ version: z.literal(1), input: QuantizeSettingsInput, ...SidecarFields }).transform(({ version: _v, input, ...rest }): RunSidecar => {
  let settings = rest.settings;
  try {
    settings = resolveSettings(input);
  } catch {
    // A setting the current rules refuse: keep what was resolved at the start.
  }
  return { version: 2, ...rest, settings };
});
const StoredSidecar = z.union([RunSidecar, RunSidecarV1]);

export interface FoundRun {
  name: string;
  /** runs/<name> when finished, else the newest partial folder, else null (queued, nothing on disk). */
  dir: string | null;
  finished: boolean;
  record: RunRecord | null;
  checkpoint: Checkpoint | null;
  sidecar: RunSidecar | null;
}

async function readJson<T>(file: string, schema: z.ZodType<T>): Promise<T | null> {
  try {
    const parsed = schema.safeParse(JSON.parse(await fs.readFile(file, 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export class RunRegistry {
  readonly dir: string;
  private readonly sidecars: string;

  constructor(home: string) {
    this.dir = path.join(home, RUNS_DIR);
    this.sidecars = path.join(this.dir, SIDECAR_DIR);
  }

  /** runs/<name>; throws (BAD_NAME) for a name that is not one safe folder name inside runs/. */
  outDir(name: string): string {
    return childPath(this.dir, name, 'run id');
  }

  private sidecarFile(name: string): string {
    return `${childPath(this.sidecars, name, 'run id')}.json`;
  }

  async writeSidecar(s: RunSidecar): Promise<void> {
    const file = this.sidecarFile(s.name);
    await fs.mkdir(this.sidecars, { recursive: true });
    await writeJsonAtomic(file, { ...s, log: s.log.slice(-MAX_LOG) });
  }

  async readSidecar(name: string): Promise<RunSidecar | null> {
    return readJson(this.sidecarFile(name), StoredSidecar);
  }

  /** True when a run of this name exists in any form. */
  async exists(name: string): Promise<boolean> {
    return (await this.names()).includes(name);
  }

  private async names(): Promise<string[]> {
    const entries = await fs.readdir(this.dir, { withFileTypes: true }).catch(() => []);
    const names = new Set<string>();
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      if (e.isDirectory()) names.add(e.name.replace(/\.partial-[0-9a-f]+$/, ''));
    }
    const side = await fs.readdir(this.sidecars).catch(() => [] as string[]);
    for (const f of side) if (f.endsWith('.json')) names.add(f.slice(0, -5));
    // A folder the studio could not address by id (made by hand or by the CLI, e.g. "CON" or a name
    // ending in a space) is left out rather than breaking the list.
    return [...names].filter((n) => nameProblem(n, 'run id') === null);
  }

  async partials(name: string): Promise<string[]> {
    this.outDir(name); // checks the name
    const entries = await fs.readdir(this.dir).catch(() => [] as string[]);
    // Entries of runs/ itself: one name each, never "." or "..".
    return entries.filter((f) => f.startsWith(`${name}.partial-`)).map((f) => path.join(this.dir, f));
  }

  async find(name: string): Promise<FoundRun | null> {
    const out = this.outDir(name);
    const sidecar = await this.readSidecar(name);
    if (existsSync(path.join(out, RUN_RECORD_FILE)) && existsSync(path.join(out, 'config.json'))) {
      return { name, dir: out, finished: true, record: await readJson(path.join(out, RUN_RECORD_FILE), RunRecord), checkpoint: null, sidecar };
    }
    // The partial folder with the most progress (a setting change makes a new one beside it).
    let best: { dir: string; cp: Checkpoint | null; mtime: number } | null = null;
    for (const dir of await this.partials(name)) {
      const cp = await readJson(path.join(dir, CHECKPOINT_FILE), Checkpoint);
      const mtime = (await fs.stat(dir).catch(() => null))?.mtimeMs ?? 0;
      if (!best || (cp?.blocksDone ?? -1) > (best.cp?.blocksDone ?? -1) || mtime > best.mtime) best = { dir, cp, mtime };
    }
    if (!best && !sidecar) return null;
    return { name, dir: best?.dir ?? null, finished: false, record: null, checkpoint: best?.cp ?? null, sidecar };
  }

  async all(): Promise<FoundRun[]> {
    const found = await Promise.all((await this.names()).map((n) => this.find(n)));
    return found.filter((f): f is FoundRun => f !== null);
  }

  /** Removes every file of a run: the model folder, its partial folders and the sidecar. */
  async remove(name: string): Promise<void> {
    const targets = [this.outDir(name), ...(await this.partials(name)), this.sidecarFile(name)];
    for (const t of targets) await fs.rm(t, { recursive: true, force: true });
  }
}

/** The fine-tuning epochs a run record keeps (in-block per group, then end-to-end), for the curves. */
export function fineTuneOf(record: RunRecord | null): FineTuneEpoch[] {
  const parsed = FinetuneRecord.safeParse((record as { finetune?: unknown } | null)?.finetune);
  if (!parsed.success) return [];
  const out: FineTuneEpoch[] = [];
  for (const b of parsed.data.blocks) {
    for (const g of b.groups) for (const e of g.epochs) out.push({ stage: 'block', block: b.block, group: g.group, epoch: e.epoch, trainLoss: e.trainLoss, heldOutLoss: e.heldoutLoss });
  }
  for (const e of parsed.data.endToEnd?.epochs ?? []) out.push({ stage: 'e2e', block: null, group: null, epoch: e.epoch, trainLoss: e.trainLoss, heldOutLoss: e.heldoutLoss });
  return out;
}

/** Layers in chart order: by block, then in the order the job quantized them. */
export function layersOf(found: FoundRun): RunLayer[] {
  return found.record?.layers ?? found.checkpoint?.metrics ?? [];
}

/** The summary of a run as found on disk (live state of a running job is laid over it by the service). */
export function summarize(found: FoundRun, outDir: string): RunDetail {
  const { record, sidecar } = found;
  const layers = layersOf(found);
  // Not finished and not in this studio's queue: cancelled and failed runs say so; anything else
  // (a CLI run stopped, or the studio quit while it was queued or running) is interrupted.
  const state: RunSummary['state'] = found.finished ? 'done' : sidecar?.state === 'cancelled' || sidecar?.state === 'error' ? sidecar.state : 'interrupted';
  // Every session's active time, not only the last one's (a resumed run has several).
  const seconds = record ? runSeconds(record) : null;
  // The weight files as they are on disk (the same function as `quip compare` and the Models page);
  // a record whose weight files are gone: the size it kept.
  const weightBytes = record ? ((found.dir ? weightFileBytes(found.dir) : null) ?? record.sizes.weightBytes ?? record.sizes.bytesOnDisk) : null;
  return {
    runId: found.name,
    name: found.name,
    dir: found.dir ?? outDir,
    modelDir: sidecar?.modelDir ?? record?.source.dir ?? null,
    modelName: sidecar?.modelName ?? (record ? path.basename(record.source.dir) : null),
    settings: record?.settings ?? sidecar?.settings ?? null,
    state,
    phase: found.finished ? 'done' : null,
    error: state === 'error' ? (sidecar?.error ?? null) : null,
    origin: sidecar ? 'studio' : 'cli',
    createdAt: sidecar?.createdAt ?? record?.startedAt ?? new Date(0).toISOString(),
    finishedAt: record?.finishedAt ?? sidecar?.finishedAt ?? null,
    layersDone: layers.length,
    layersTotal: record ? record.layers.length : (sidecar?.layersTotal ?? null),
    etaSeconds: null,
    bitsPerWeight: record?.sizes.bitsPerWeight ?? null,
    bytesOnDisk: weightBytes,
    perplexity: record?.perplexity?.quantized ?? null,
    perplexityFull: record?.perplexity?.full ?? null,
    perplexityInfo: record?.perplexity ?? null,
    seconds: seconds !== null && Number.isFinite(seconds) ? seconds : null,
    meanProxyLoss: layers.length ? proxyLossSummary(layers).mean : null,
    layers,
    fineTune: sidecar?.fineTune.length ? sidecar.fineTune : fineTuneOf(record),
    log: sidecar?.log ?? [],
    timings: record?.timings ?? found.checkpoint?.timings ?? {},
  };
}
