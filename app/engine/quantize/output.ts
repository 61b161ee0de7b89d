// Where a quantization job writes, and how it survives being cancelled or killed.
//
// Work goes into `<out>.partial-<id>`, id = a hash of the source model and the settings, so running
// the same command again finds its own checkpoint and resumes; a different seed or setting starts
// afresh. Inside the partial folder:
//   checkpoint.json         blocks done, the layer records and metrics so far (written atomically)
//   block-NNN.safetensors   the quantized tensors of each finished block
//   unquantized.safetensors embeddings, norms, lm_head in 16-bit (written before block 0)
// A kill inside an atomic write leaves its temporary sibling (.<name>.<pid>[.<ms>].tmp): a resume
// removes those of processes that are gone, and publishing removes all of them.
// Finishing: model.safetensors (assembled from the pieces), tokenizer files, run.json and
// config.pending.json are written, the partial folder is renamed to <out>, and only then
// config.pending.json becomes config.json. A folder without config.json never loads as a model, so a
// kill at any moment leaves either a resumable checkpoint or nothing that looks complete.
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

import { describeWriteError, removeTempFiles, writeJsonAtomic } from '../../util/atomic-file.js';
import { UserError } from '../../util/errors.js';
import { FinetuneRecord, LayerMetrics, RunSession } from '../../domain/quantize/index.js';
import { DenseLayerRecord, QuantizedLayerRecord } from '../model/quantized-format.js';
import { z } from 'zod';

export const CHECKPOINT_FILE = 'checkpoint.json';
export const UNQUANTIZED_FILE = 'unquantized.safetensors';
export const PENDING_CONFIG = 'config.pending.json';
export const MODEL_FILE = 'model.safetensors';

export const Checkpoint = z.object({
  version: z.literal(1),
  id: z.string(),
  /** Blocks 0 .. blocksDone-1 are quantized and saved in block-NNN.safetensors. */
  blocksDone: z.number().int(),
  layers: z.record(z.string(), QuantizedLayerRecord),
  metrics: z.array(LayerMetrics),
  /** Seconds spent per phase so far (a resumed run adds to them). */
  timings: z.record(z.string(), z.number()),
  /** In-block fine-tuning of the saved blocks (their record and seconds), so a resumed run's record
   * still holds every block. */
  finetune: FinetuneRecord.pick({ blocks: true, seconds: true }).optional(),
  /** The sessions so far with their active seconds (a cancelled one up to its cancellation), so the
   * run record of a resumed run counts them all. Absent in older checkpoints. */
  sessions: z.array(RunSession).optional(),
  /** --target-bpw: every linear layer's width, allocated before the first block (kept so a resumed run
   * quantizes the same mix), and the layers kept at 16 bits saved so far. Absent in uniform runs. */
  widths: z.record(z.string(), z.enum(['e8p', 'rvq3', 'rvq4', 'f16'])).optional(),
  dense: z.record(z.string(), DenseLayerRecord).optional(),
  /** --target-bpw: each layer's measured sensitivity (2-bit KLD) and the allocation's figures. */
  allocation: z.object({
    kld2: z.record(z.string(), z.number()),
    predictedBitsPerWeight: z.number(),
    predictedLoss: z.number(),
    range: z.tuple([z.number(), z.number()]),
    seconds: z.number(),
  }).optional(),
});
export type Checkpoint = z.infer<typeof Checkpoint>;

export function blockFileName(block: number): string {
  return `block-${String(block).padStart(3, '0')}.safetensors`;
}

/** Identity of the source weights: config, tokenizer and the safetensors files' sizes and headers. */
export async function sourceFingerprint(dir: string): Promise<string> {
  const h = createHash('sha256');
  const names = readdirSync(dir).filter((f) => f === 'config.json' || f.endsWith('.safetensors') || f === 'model.safetensors.index.json' || f === 'tokenizer.json').sort();
  for (const name of names) {
    const file = path.join(dir, name);
    h.update(name + '\0' + statSync(file).size + '\0');
    if (name.endsWith('.safetensors')) {
      // The header (names, shapes, offsets) plus the first and last MiB of data identify the weights
      // without reading gigabytes.
      const fh = await fs.open(file, 'r');
      try {
        const { size } = await fh.stat();
        const take = Math.min(size, 1 << 20);
        const head = Buffer.alloc(take), tail = Buffer.alloc(take);
        await fh.read(head, 0, take, 0);
        await fh.read(tail, 0, take, size - take);
        h.update(head).update(tail);
      } finally {
        await fh.close();
      }
    } else {
      h.update(await fs.readFile(file));
    }
  }
  return h.digest('hex');
}

/** The job id: source fingerprint + every setting that changes the output (threads never does). */
export function jobId(fingerprint: string, settingsKey: unknown): string {
  return createHash('sha256').update(fingerprint).update(JSON.stringify(settingsKey)).digest('hex').slice(0, 12);
}

export function partialDir(out: string, id: string): string {
  return `${path.resolve(out)}.partial-${id}`;
}

/** True when `dir` holds a model (a config.json). */
export function holdsModel(dir: string): boolean {
  return existsSync(path.join(dir, 'config.json'));
}

/**
 * Checks that `out` may be written: absent, empty, an unfinished job of ours (renamed but config.json
 * not yet written), or (with force) anything. Throws a UserError saying what to do otherwise.
 */
export function checkOutputFolder(out: string, force: boolean): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new UserError(`${out} exists and is a file, not a folder. Choose another --out.`, 'OUTPUT_EXISTS');
  if (force) return;
  if (holdsModel(out))
    throw new UserError(`${out} already holds a model (it has a config.json). Choose another --out, or pass --force to replace it.`, 'OUTPUT_EXISTS');
  const entries = readdirSync(out);
  if (entries.length && !entries.includes(PENDING_CONFIG))
    throw new UserError(`${out} is not empty. Choose an empty or new folder for --out, or pass --force to replace it.`, 'OUTPUT_EXISTS');
}

export async function readCheckpoint(dir: string, id: string): Promise<Checkpoint | null> {
  const file = path.join(dir, CHECKPOINT_FILE);
  if (!existsSync(file)) return null;
  try {
    const cp = Checkpoint.parse(JSON.parse(await fs.readFile(file, 'utf8')));
    if (cp.id !== id) return null;
    // Every block file the checkpoint claims must be there.
    for (let b = 0; b < cp.blocksDone; b++) if (!existsSync(path.join(dir, blockFileName(b)))) return null;
    return cp;
  } catch {
    return null; // a damaged checkpoint: start the job again from block 0
  }
}

export async function writeCheckpoint(dir: string, cp: Checkpoint): Promise<void> {
  await writeJsonAtomic(path.join(dir, CHECKPOINT_FILE), cp);
}

/** Other partial folders of the same output (other settings or seeds), for a hint to the user. */
export function stalePartials(out: string, id: string): string[] {
  const parent = path.dirname(path.resolve(out));
  const base = path.basename(path.resolve(out)) + '.partial-';
  if (!existsSync(parent)) return [];
  return readdirSync(parent)
    .filter((f) => f.startsWith(base) && f !== base + id)
    .map((f) => path.join(parent, f));
}

/**
 * Moves the finished partial folder to `out` and then makes it a model by renaming
 * config.pending.json to config.json. With force, an existing `out` is moved aside first and
 * deleted only once the new folder is in place.
 */
export async function publish(partial: string, out: string, force: boolean): Promise<void> {
  out = path.resolve(out);
  let aside: string | null = null;
  try {
    // The temporary file of an atomic write killed half-way is never part of a model.
    await removeTempFiles(partial, { onlyStale: false });
    if (existsSync(out)) {
      if (holdsModel(out) && !force) throw new UserError(`${out} already holds a model. Pass --force to replace it.`, 'OUTPUT_EXISTS');
      const entries = readdirSync(out);
      if (entries.length === 0) await fs.rmdir(out);
      else {
        aside = `${out}.replaced-${process.pid}`;
        await fs.rename(out, aside);
      }
    }
    await fs.rename(partial, out);
    await fs.rename(path.join(out, PENDING_CONFIG), path.join(out, 'config.json'));
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw describeWriteError(err, out);
  }
  if (aside) await fs.rm(aside, { recursive: true, force: true });
}

/**
 * Finishes a job whose folder was renamed to `out` but killed before config.json appeared.
 * Returns true when it did.
 */
export async function finishInterruptedPublish(out: string): Promise<boolean> {
  const pending = path.join(out, PENDING_CONFIG);
  if (!existsSync(pending) || holdsModel(out) || !existsSync(path.join(out, MODEL_FILE))) return false;
  await removeTempFiles(out, { onlyStale: true });
  await fs.rename(pending, path.join(out, 'config.json'));
  return true;
}
