// `quip bench ablations [--threads N] [--json] [--out FILE]`: the quality table of stories260k (the
// built-in sample): perplexity, true bits per linear weight and proxy loss of every codebook (scalar
// rounding and E8P / RVQ at 2, 3 and 4 bits) under every combination of the switches the studio
// exposes: incoherence (RHT) with and without row scales, or none; BlockLDLQ or nearest rounding.
// No fine-tuning. Two texts:
//   - WikiText-2: calibration 64 x 256 tokens of wiki.valid.raw, evaluation 16 windows of 512 of
//     wiki.test.raw (the project's perplexity text; far outside this TinyStories model's domain);
//   - in-domain: stories the full-precision model writes itself (seeds 11-18 for calibration, 12 x 256
//     tokens; seeds 1-6 for evaluation, 8 windows of 256), as the job's quality tests do.
// With --out the table is written as markdown (docs/quality-stories260k.md is this command's output).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Command } from 'commander';

import { intOption } from '../cli/options.js';
import { loadModel } from '../engine/model/index.js';
import { compareRow } from '../engine/quantize/compare.js';
import { runQuantizeJob } from '../engine/quantize/job.js';
import { resolveSettings, type CodebookFamily } from '../domain/quantize/index.js';
import { createEngine } from '../engine/runtime/native-model.js';
import { sampleTexts } from '../engine/runtime/generation.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { projectRoot, sampleModelDir } from '../util/paths.js';

interface Variant {
  label: string;
  incoherence: boolean;
  rowScale: boolean;
  ldlq: boolean;
}

const VARIANTS: Variant[] = [
  { label: 'RHT + row scales | LDLQ', incoherence: true, rowScale: true, ldlq: true },
  { label: 'RHT | LDLQ', incoherence: true, rowScale: false, ldlq: true },
  { label: 'none | LDLQ', incoherence: false, rowScale: false, ldlq: true },
  { label: 'RHT + row scales | nearest', incoherence: true, rowScale: true, ldlq: false },
  { label: 'RHT | nearest', incoherence: true, rowScale: false, ldlq: false },
  { label: 'none | nearest', incoherence: false, rowScale: false, ldlq: false },
];

const CODEBOOKS: Array<{ family: CodebookFamily; bits: 2 | 3 | 4; name: string }> = [
  { family: 'rtn', bits: 2, name: 'RTN 2-bit' },
  { family: 'rtn', bits: 3, name: 'RTN 3-bit' },
  { family: 'rtn', bits: 4, name: 'RTN 4-bit' },
  { family: 'e8p', bits: 2, name: 'E8P 2-bit' },
  { family: 'e8p', bits: 3, name: 'RVQ 3-bit' },
  { family: 'e8p', bits: 4, name: 'RVQ 4-bit' },
];

interface Dataset {
  id: 'wikitext' | 'in-domain';
  title: string;
  calib: { file: string; samples: number; ctx: number };
  evaluation: { file: string; ctx: number; windows: number };
}

export interface AblationRow {
  dataset: Dataset['id'];
  codebook: string;
  variant: string;
  bitsPerWeight: number;
  perplexity: number;
  meanProxyLoss: number;
  worstProxyLoss: number;
}

export interface AblationsResult {
  threads: number;
  full: Record<Dataset['id'], number>;
  rows: AblationRow[];
}

async function datasets(work: string): Promise<Dataset[]> {
  const wiki = path.join(projectRoot(), '..', 'shared', 'data', 'wikitext-2-raw');
  const model = await loadModel(sampleModelDir());
  let calib: string[], evaluation: string[];
  try {
    const engine = createEngine(model);
    const sample = (seeds: number[], tokens: number) => sampleTexts(engine, model.tokenizer, model.architecture.contextLength, 'Once upon a time', seeds, tokens);
    calib = await sample([11, 12, 13, 14, 15, 16, 17, 18], 500);
    evaluation = await sample([1, 2, 3, 4, 5, 6], 480);
  } finally {
    model.close();
  }
  writeFileSync(path.join(work, 'calib.txt'), calib.join('\n'));
  writeFileSync(path.join(work, 'eval.txt'), evaluation.join('\n'));
  return [
    {
      id: 'wikitext',
      title: 'WikiText-2 test',
      calib: { file: path.join(wiki, 'wiki.valid.raw'), samples: 64, ctx: 256 },
      evaluation: { file: path.join(wiki, 'wiki.test.raw'), ctx: 512, windows: 16 },
    },
    {
      id: 'in-domain',
      title: 'Stories the model itself writes (in-domain)',
      calib: { file: path.join(work, 'calib.txt'), samples: 12, ctx: 256 },
      evaluation: { file: path.join(work, 'eval.txt'), ctx: 256, windows: 8 },
    },
  ];
}

export async function benchAblations(threads: number, onRow?: (r: AblationRow) => void): Promise<AblationsResult> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'quip-ablations-'));
  try {
    const sets = await datasets(work);
    const full = {} as AblationsResult['full'];
    const rows: AblationRow[] = [];
    for (const d of sets) {
      for (const cb of CODEBOOKS) {
        for (const v of VARIANTS) {
          const out = path.join(work, 'q');
          const first = full[d.id] === undefined;
          const r = await runQuantizeJob({
            model: sampleModelDir(),
            out,
            force: true,
            settings: resolveSettings({
              bits: cb.bits, codebook: cb.family, incoherence: v.incoherence, rowScale: v.rowScale, ldlq: v.ldlq, threads,
              calibTextFile: d.calib.file, calibSamples: d.calib.samples, calibCtx: d.calib.ctx,
            }),
            evaluation: { textFile: d.evaluation.file, ctx: d.evaluation.ctx, maxWindows: d.evaluation.windows, full: first },
          });
          if (first) full[d.id] = r.record.perplexity!.full!;
          const c = compareRow(out);
          const row: AblationRow = {
            dataset: d.id, codebook: cb.name, variant: v.label, bitsPerWeight: c.bitsPerWeight,
            perplexity: r.record.perplexity!.quantized, meanProxyLoss: c.meanProxyLoss!, worstProxyLoss: c.worstProxyLoss!,
          };
          rows.push(row);
          onRow?.(row);
        }
      }
    }
    return { threads, full, rows };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function markdown(r: AblationsResult, command: string): string {
  const lines = [
    '# Quality of QuIP# on stories260k',
    '',
    'stories260k (260K parameters, hidden 64, MLP 172, 5 blocks; the built-in sample) quantized with every',
    'codebook of the studio under every combination of the switches: incoherence processing (randomized',
    'Hadamard transform, RHT) with or without row scales (each row\'s RMS folded into SV, the studio\'s',
    'default; off is the paper\'s plain QuIP#), or none; BlockLDLQ feedback or nearest rounding. No',
    'fine-tuning. Bits per weight are the true figure for the linear layers: codes plus sign vectors (SU one',
    'byte per input column; SV one byte per output row, four with row scales) plus the scales, which at',
    'these 64-wide rows costs 0.2 to 0.55 bits per weight. Proxy loss is tr((W^-W) H (W^-W)^T) / tr(W H W^T)',
    'with the damped, normalised H, in the original basis. Perplexities do not depend on the machine.',
    '',
    `Reproduce: \`${command}\``,
    '',
  ];
  const sets: Array<[Dataset['id'], string, string]> = [
    ['wikitext', 'WikiText-2 test', 'Calibration: 64 x 256 tokens of wiki.valid.raw. Evaluation: the first 16 windows of 512 tokens of wiki.test.raw. stories260k is a TinyStories model, so this text is far outside its domain.'],
    ['in-domain', 'Stories the model itself writes (in-domain)', 'Calibration: 12 x 256 tokens of stories sampled from the full-precision model (seeds 11-18, 500 tokens each); evaluation: 8 windows of 256 tokens of others (seeds 1-6, 480 tokens each). This is the text the model is good at; perplexity here is its entropy plus the KL divergence quantization adds, so it is the sharper measure. The job\'s quality tests calibrate and evaluate the same way.'],
  ];
  for (const [id, title, about] of sets) {
    const full = r.full[id];
    lines.push(`## ${title}`, '', about, '', '| codebook | incoherence \\| rounding | bits / linear weight | perplexity | vs full precision | proxy loss mean | proxy loss worst |', '| --- | --- | --- | --- | --- | --- | --- |');
    lines.push(`| full precision (float32) | - | 32 | ${full.toFixed(2)} | 1.00x | - | - |`);
    for (const row of r.rows.filter((x) => x.dataset === id)) {
      lines.push(`| ${row.codebook} | ${row.variant.replace('|', '\\|')} | ${row.bitsPerWeight.toFixed(3)} | ${row.perplexity.toFixed(2)} | ${(row.perplexity / full).toFixed(2)}x | ${row.meanProxyLoss.toFixed(4)} | ${row.worstProxyLoss.toFixed(4)} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

export function registerAblationsBench(bench: Command): void {
  bench
    .command('ablations')
    .description('stories260k quality table: every codebook under every incoherence / row-scale / LDLQ setting, on WikiText-2 and in-domain text')
    .option('--threads <t>', 'threads (default 2)')
    .option('--json', 'print one JSON object')
    .option('--out <file>', 'also write the table as markdown (e.g. docs/quality-stories260k.md)')
    .action(async (o: { threads?: string; json?: boolean; out?: string }) => {
      const threads = intOption(o.threads, '--threads') ?? 2;
      const r = await benchAblations(threads, o.json ? undefined : (row) => {
        process.stdout.write(`${row.dataset.padEnd(9)} ${row.codebook.padEnd(9)} ${row.variant.padEnd(28)} ${row.bitsPerWeight.toFixed(3)} b/w  ppl ${row.perplexity.toFixed(2).padStart(8)}  proxy ${row.meanProxyLoss.toFixed(4)}\n`);
      });
      const command = `quip bench ablations --threads ${threads}${o.out ? ` --out ${o.out}` : ''}`;
      if (o.out) await writeFileAtomic(o.out, Buffer.from(markdown(r, command)));
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else process.stdout.write(`full precision: WikiText-2 ${r.full.wikitext.toFixed(2)}, in-domain ${r.full['in-domain'].toFixed(2)}${o.out ? `; wrote ${o.out}` : ''}\n`);
    });
}
