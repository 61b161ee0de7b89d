// The quantization job end to end on the real stories260k model (seconds per run):
//   quality ordering across bit widths and E8P against scalar rounding; the saved folder reloads to
//   the same logits as the model in memory; cancel + resume gives byte-identical files; a killed
//   run leaves nothing that loads as a model; bad input (pairing, short calibration text, an output
//   folder holding a model, a full disk) gives clear errors.
//
// stories260k is a TinyStories model: WikiText-2 is far outside its domain (full-precision
// perplexity ~110 there against ~5 on stories), and Hessians from WikiText make its quantization
// noisy. The quality tests therefore calibrate and evaluate on stories the model itself samples
// (seeded, different seeds for calibration and evaluation), generated here by the real engine.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../model/index.js';
import { cancelFlag } from '../native.js';
import { createEngine } from '../runtime/native-model.js';
import { sampleTexts } from '../runtime/generation.js';
import { QuantizeEvent, resolveSettings, type QuantizeSettingsInput } from '../../domain/quantize/index.js';
import { terminalRenderer } from '../../cli/render.js';
import { compareRow, formatCompareTable } from './compare.js';
import { runQuantizeJob, settingsKey, type QuantizeJobOptions } from './job.js';
import { jobId, partialDir, sourceFingerprint, UNQUANTIZED_FILE } from './output.js';

const STORIES = path.resolve('../shared/data/models/stories260k');
const root = mkdtempSync(path.join(os.tmpdir(), 'quip-qjob-'));
let calibText = '';
let evalText = '';

async function sampledStories(seeds: number[], tokens: number): Promise<string> {
  const model = await loadModel(STORIES);
  try {
    return (await sampleTexts(createEngine(model), model.tokenizer, model.architecture.contextLength, 'Once upon a time', seeds, tokens)).join('\n');
  } finally {
    model.close();
  }
}

beforeAll(async () => {
  calibText = path.join(root, 'calib.txt');
  evalText = path.join(root, 'eval.txt');
  writeFileSync(calibText, await sampledStories([11, 12, 13, 14, 15, 16, 17, 18], 500));
  writeFileSync(evalText, await sampledStories([1, 2, 3, 4, 5, 6], 480));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function options(out: string, s: QuantizeSettingsInput, extra: Partial<QuantizeJobOptions> = {}): QuantizeJobOptions {
  return {
    model: STORIES,
    out,
    settings: resolveSettings({ calibTextFile: calibText, calibSamples: 12, calibCtx: 256, ...s }),
    evaluation: { textFile: evalText, ctx: 256, maxWindows: 8, full: true },
    ...extra,
  };
}

const modelFiles = (dir: string) => readdirSync(dir).filter((f) => f !== 'run.json').sort();

describe('quality on stories260k', () => {
  const ppl: Record<string, number> = {};
  let full = 0;
  it('orders perplexity 4-bit <= 3-bit <= 2-bit and E8P 2-bit beats scalar 2-bit rounding', async () => {
    for (const [key, s] of [
      ['rvq4', { bits: 4 }],
      ['rvq3', { bits: 3 }],
      ['e8p', { bits: 2 }],
      ['rtn2', { bits: 2, codebook: 'rtn' }],
      ['rtn2-plain', { bits: 2, codebook: 'rtn', incoherence: false, ldlq: false }],
    ] as const) {
      const r = await runQuantizeJob(options(path.join(root, `q-${key}`), s));
      ppl[key] = r.record.perplexity!.quantized;
      full = r.record.perplexity!.full!;
    }
    expect(ppl.rvq4).toBeGreaterThan(full);
    expect(ppl.rvq4).toBeLessThanOrEqual(ppl.rvq3);
    expect(ppl.rvq3).toBeLessThanOrEqual(ppl.e8p);
    // Same RHT and BlockLDLQ around both: only the codebook differs.
    expect(ppl.e8p).toBeLessThan(ppl.rtn2);
    expect(ppl.e8p).toBeLessThan(ppl['rtn2-plain']);
  }, 300_000);

  // The target, on the project's perplexity text (WikiText-2 test; calibration on WikiText-2
  // validation). Measured: full 110.6, 4-bit 108.0 with row scales, 116.7 without (+5.6%, the
  // paper's plain QuIP#). On the in-domain stories above 4-bit stays at 5.73 against 5.14 (no
  // fine-tuning): the quality table in docs/quality-stories260k.md has both.
  it('4-bit perplexity on WikiText-2 within 3% of full precision', async () => {
    const wiki = path.resolve('../shared/data/wikitext-2-raw');
    const r = await runQuantizeJob({
      model: STORIES,
      out: path.join(root, 'q-rvq4-wiki'),
      settings: resolveSettings({ bits: 4, calibTextFile: path.join(wiki, 'wiki.valid.raw'), calibSamples: 64, calibCtx: 256 }),
      evaluation: { textFile: path.join(wiki, 'wiki.test.raw'), ctx: 512, maxWindows: 16, full: true },
    });
    const p = r.record.perplexity!;
    expect(p.quantized / p.full!).toBeLessThanOrEqual(1.03);
  }, 300_000);
});

describe('saving and reloading', () => {
  it('the reloaded folder gives the same logits as the model in memory after quantization', async () => {
    const out = path.join(root, 'reload');
    const events: QuantizeEvent[] = [];
    let printed = '';
    const render = terminalRenderer({ write: (t) => (printed += t), isTTY: false });
    const r = await runQuantizeJob(options(out, { bits: 3 }, { keepModel: true, evaluation: null, onEvent: (e) => (events.push(e), render(e)) }));
    // The stream: estimate first, every layer once with its metrics, a block event per block, summary.
    for (const e of events) QuantizeEvent.parse(e);
    expect(events[0].type).toBe('phase');
    expect(events.find((e) => e.type === 'estimate')).toMatchObject({ threads: expect.any(Number), peakBytes: expect.any(Number) });
    expect(events.filter((e) => e.type === 'layer')).toHaveLength(35);
    expect(events.filter((e) => e.type === 'block').map((e) => (e as { block: number }).block)).toEqual([0, 1, 2, 3, 4]);
    expect(events.filter((e) => e.type === 'eta').at(-1)).toMatchObject({ layersDone: 35, layersTotal: 35, etaSeconds: 0 });
    expect(events.at(-2)).toMatchObject({ type: 'summary', codebook: 'rvq3', layers: 35 });
    expect(printed).toMatch(/Estimate on \d+ thread\(s\): ~/);
    expect(printed).toMatch(/\n4\s+down_proj\s+64x172\s+\d\.\d{3}e-\d/);
    expect(printed).toMatch(/Saved .*reload\n\s+3-bit rvq3: 3\.\d{3} bits per linear weight/);
    expect(r.model).not.toBeNull();
    const loaded = await loadModel(out);
    try {
      expect(loaded.quantization?.codebook).toBe('rvq3');
      const reloaded = createEngine(loaded);
      const ids = new Int32Array(loaded.tokenizer.encode('Once upon a time, there was a little girl named Lily. She loved to play.'));
      const a = await r.model!.createSession(128).forward(ids, true);
      const b = await reloaded.createSession(128).forward(ids, true);
      expect(a.length).toBe(ids.length * 512);
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
      // and they are not the full-precision logits
      const fp = await loadModel(STORIES);
      const c = await createEngine(fp).createSession(128).forward(ids, true);
      fp.close();
      expect(Buffer.from(c.buffer).equals(Buffer.from(a.buffer))).toBe(false);
    } finally {
      loaded.close();
    }
    // the folder: config.json with the record, codes, run record, tokenizer copied
    const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(cfg.quantization_config).toMatchObject({ quant_method: 'quip-sharp', codebook: 'rvq3', bits: 3, seed: 0 });
    expect(Object.keys(cfg.quantization_config.layers)).toHaveLength(35);
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'));
    expect(run.layers).toHaveLength(35);
    expect(run.sizes.bitsPerWeight).toBeGreaterThan(3);
    // Overhead on this narrow model: su (I8) per input column and sv with its row scales (F32) per
    // output row, over rows of only 64 or 172 weights: about 0.55 bits per weight.
    expect(run.sizes.bitsPerWeight).toBeLessThan(3.6);
    expect(existsSync(path.join(out, 'tokenizer.json'))).toBe(true);
  }, 120_000);
});
describe('evaluation', () => {
  it('records the text, windows and spread of the perplexity, and says when it is the calibration text', async () => {
    const held = await runQuantizeJob(options(path.join(root, 'eval-held'), { bits: 2 }));
    const p = held.record.perplexity!;
    expect(p).toMatchObject({ dataset: evalText, text: 'eval.txt', ctx: 256, windows: 8, calibratedOnText: false });
    // Each figure's spread over windows, and the pair's (quantized - source, window by window).
    expect(p.stdErr).toBeGreaterThan(0);
    expect(p.fullStdErr).toBeGreaterThan(0);
    expect(p.ratioStdErr).toBeGreaterThan(0);
    const events: QuantizeEvent[] = [];
    const same = await runQuantizeJob(options(path.join(root, 'eval-same'), { bits: 2, calibTextFile: evalText, calibSamples: 8 }, { onEvent: (e) => events.push(e) }));
    expect(same.record.perplexity!.calibratedOnText).toBe(true);
    expect(events.some((e) => e.type === 'warning' && /text the run calibrated on .*flatters/.test(e.message))).toBe(true);
    // One session, and the record's time is it.
    expect(held.record.sessions).toHaveLength(1);
  }, 120_000);
});

describe('cancel, resume, kill', () => {
  it('cancelled mid-run then resumed writes byte-identical files to an uninterrupted run', async () => {
    const a = path.join(root, 'uninterrupted');
    const b = path.join(root, 'interrupted');
    await runQuantizeJob(options(a, { bits: 2 }, { evaluation: null, settings: resolveSettings({ calibTextFile: calibText, calibSamples: 12, calibCtx: 256, threads: 1 }) }));
    const cancel = cancelFlag();
    const events: QuantizeEvent[] = [];
    await expect(
      runQuantizeJob(options(b, { bits: 2 }, {
        evaluation: null,
        cancel,
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'block' && e.block === 1) cancel[0] = 1;
        },
      })),
    ).rejects.toMatchObject({ code: 'CANCELLED', message: expect.stringMatching(/after 2 of 5 blocks.*resume from block 2/) });
    expect(existsSync(b)).toBe(false);
    const resumed: QuantizeEvent[] = [];
    const r = await runQuantizeJob(options(b, { bits: 2 }, { evaluation: null, onEvent: (e) => resumed.push(e) }));
    expect(resumed.find((e) => e.type === 'resume')).toMatchObject({ fromBlock: 2 });
    expect(resumed.filter((e) => e.type === 'layer')).toHaveLength(21);
    expect(r.record.resumedFromBlock).toBe(2);
    expect(modelFiles(b)).toEqual(modelFiles(a));
    for (const f of modelFiles(a)) expect(readFileSync(path.join(b, f)).equals(readFileSync(path.join(a, f)))).toBe(true);
    // per-layer metrics agree too (run.json differs only in timings)
    const ra = JSON.parse(readFileSync(path.join(a, 'run.json'), 'utf8'));
    expect(r.record.layers).toEqual(ra.layers.map((l: { seconds: number }, i: number) => ({ ...l, seconds: r.record.layers[i].seconds })));
  }, 180_000);

  it('a killed run leaves nothing that loads as a model, and the next run resumes', async () => {
    const out = path.join(root, 'killed');
    const esbuild = await import('esbuild');
    // The CLI bundled inside the project (test-results/, ignored) so its packages resolve.
    const cli = path.resolve('test-results', `qjob-cli-${process.pid}.mjs`);
    await esbuild.build({
      entryPoints: [path.resolve('app/cli/main.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: cli, logLevel: 'error',
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    });
    const child = spawn(process.execPath, [cli, 'quantize', STORIES, '--out', out, '--calib-text', calibText, '--calib-samples', '12', '--ctx', '256', '--no-eval', '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.once('close', () => rmSync(cli, { force: true }));
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('"type":"block"')) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => reject(new Error('the run ended before a block finished: ' + buf)));
    });
    await new Promise((r) => child.once('close', r));
    expect(existsSync(out)).toBe(false);
    const partial = readdirSync(root).filter((f) => f.startsWith('killed.partial-')).map((f) => path.join(root, f));
    expect(partial).toHaveLength(1);
    expect(existsSync(path.join(partial[0], 'config.json'))).toBe(false);
    await expect(loadModel(partial[0])).rejects.toThrow(/no config\.json/);
    await expect(loadModel(out)).rejects.toThrow();
    const events: QuantizeEvent[] = [];
    await runQuantizeJob(options(out, { bits: 2 }, { evaluation: null, onEvent: (e) => events.push(e) }));
    expect((events.find((e) => e.type === 'resume') as { fromBlock: number }).fromBlock).toBeGreaterThanOrEqual(1);
    const m = await loadModel(out);
    m.close();
    expect(existsSync(partial[0])).toBe(false);
  }, 180_000);
});

describe('temporary files of a killed write', () => {
  it('a resume removes the stale ones and the finished folder holds none', async () => {
    const out = path.join(root, 'stale-temp');
    const cancel = cancelFlag();
    await expect(
      runQuantizeJob(options(out, { bits: 2 }, { evaluation: null, cancel, onEvent: (e) => { if (e.type === 'block' && e.block === 0) cancel[0] = 1; } })),
    ).rejects.toMatchObject({ code: 'CANCELLED' });
    const [partial] = readdirSync(root).filter((f) => f.startsWith('stale-temp.partial-')).map((f) => path.join(root, f));
    // What a kill inside an atomic write leaves: a process that is gone, and one still running (ours).
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    const planted = [`.model.safetensors.${gone}.tmp`, `.checkpoint.json.${gone}.${Date.now()}.tmp`, `.block-001.safetensors.${gone}.tmp`];
    for (const f of planted) writeFileSync(path.join(partial, f), Buffer.alloc(80_000, 7));
    const live = `.x.${process.pid}.${Date.now()}.tmp`;
    writeFileSync(path.join(partial, live), 'in flight');
    const events: QuantizeEvent[] = [];
    await runQuantizeJob(options(out, { bits: 2 }, {
      evaluation: null,
      onEvent: (e) => {
        events.push(e);
        // By the first block after the resume, the stale files are gone; the live one stays until publishing.
        if (e.type === 'block' && !events.some((x) => x.type === 'phase' && x.phase === 'save')) {
          for (const f of planted) expect(existsSync(path.join(partial, f)), f).toBe(false);
          expect(existsSync(path.join(partial, live))).toBe(true);
        }
      },
    }));
    expect(events.find((e) => e.type === 'resume')).toMatchObject({ fromBlock: 1 });
    expect(readdirSync(out).filter((f) => f.startsWith('.') || f.endsWith('.tmp'))).toEqual([]);
    const m = await loadModel(out);
    m.close();
  }, 180_000);
});

describe('bad input', () => {
  it('refuses unsupported bits/codebook pairings', () => {
    expect(() => resolveSettings({ bits: 2, codebook: 'rvq' })).toThrow(/rvq.*3 or 4 bits/);
    expect(() => resolveSettings({ bits: 5, codebook: 'e8p' })).toThrow(/Bits 5 is not supported/);
  });

  it('refuses a calibration file too short for the requested samples, naming it, and writes nothing', async () => {
    const short = path.join(root, 'short.txt');
    writeFileSync(short, 'Once upon a time there was a cat.\n');
    const out = path.join(root, 'short-out');
    await expect(runQuantizeJob({ ...options(out, {}), settings: resolveSettings({ calibTextFile: short, calibSamples: 4, calibCtx: 64 }) })).rejects.toThrow(
      new RegExp(`${short.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} has \\d+ tokens; 4 sequences of 64 need`),
    );
    expect(readdirSync(root).some((f) => f.startsWith('short-out'))).toBe(false);
  });

  it('refuses an output folder that already holds a model unless forced', async () => {
    const out = path.join(root, 'q-rvq4'); // written by the quality test
    if (!existsSync(out)) await runQuantizeJob(options(out, { bits: 4 }, { evaluation: null }));
    await expect(runQuantizeJob(options(out, { bits: 4, seed: 7 }, { evaluation: null }))).rejects.toThrow(/already holds a model.*--force/);
    const r = await runQuantizeJob(options(out, { bits: 4, seed: 7 }, { evaluation: null, force: true }));
    expect(r.record.settings.seed).toBe(7);
    expect(JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).quantization_config.seed).toBe(7);
  }, 120_000);

  it('reports a full disk clearly', async () => {
    // /dev/full fails every write with ENOSPC: the job's first write (the unquantized tensors) goes
    // through a temporary file that we point there.
    if (!existsSync('/dev/full')) return;
    const out = path.join(root, 'full-disk');
    const o = options(out, { bits: 2 }, { evaluation: null });
    const id = jobId(await sourceFingerprint(STORIES), settingsKey(o.settings));
    const partial = partialDir(out, id);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(partial, { recursive: true });
    writeFileSync(path.join(partial, 'checkpoint.json'), JSON.stringify({ version: 1, id, blocksDone: 0, layers: {}, metrics: [], timings: {} }));
    symlinkSync('/dev/full', path.join(partial, `.${UNQUANTIZED_FILE}.${process.pid}.tmp`));
    await expect(runQuantizeJob(o)).rejects.toThrow(/The disk is full: could not write .*unquantized\.safetensors\. Free some space/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('compare', () => {
  it('reads bits, true bits per weight, size, perplexity and proxy loss of each folder', async () => {
    const dirs = ['q-e8p', 'q-rvq3'].map((d) => path.join(root, d));
    for (const [d, bits] of [[dirs[0], 2], [dirs[1], 3]] as const) if (!existsSync(d)) await runQuantizeJob(options(d, { bits }));
    const rows = [...dirs, STORIES].map(compareRow);
    const run = JSON.parse(readFileSync(path.join(dirs[0], 'run.json'), 'utf8'));
    expect(rows[0]).toMatchObject({ codebook: 'e8p', bits: 2, perplexity: run.perplexity.quantized, meanProxyLoss: expect.any(Number) });
    // 2 bits of codes + 8-bit sign vectors (m + n per layer) + a float32 scale, over m x n weights
    expect(rows[0].bitsPerWeight).toBeCloseTo(run.sizes.bitsPerWeight, 10);
    expect(rows[0].bitsPerWeight).toBeGreaterThan(2);
    expect(rows[1].bitsPerWeight).toBeGreaterThan(rows[0].bitsPerWeight + 0.9);
    expect(rows[0].bytesOnDisk).toBeLessThan(rows[2].bytesOnDisk / 3);
    expect(rows[2]).toMatchObject({ quantized: false, bits: 32, perplexity: null });
    expect(formatCompareTable(rows)).toMatch(/q-e8p\s+e8p\s+2\s+2\.\d{3}/);
    expect(() => compareRow(root)).toThrow(/no config\.json/);
  }, 120_000);
});
