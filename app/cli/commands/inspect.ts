// `quip inspect <model> [--json]`: what is inside a model (a local folder or a hub id, downloaded into
// the Hugging Face cache first): architecture, parameter counts, every linear layer with its Hadamard
// factorisation, and the estimated size after quantization.
import type { Command } from 'commander';

import type { ModelInspection } from '../../contract/model.js';
import { formatBytes, formatSpeed } from '../../domain/format.js';
import { formatHadamard, inspectModel } from '../../engine/model/inspect.js';
import { resolveModelDir, type DownloadProgress } from '../../services/hub/index.js';

/** Left-aligned text columns, right-aligned numbers, two spaces apart. */
export function table(header: string[], rows: string[][], rightAligned: boolean[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (rightAligned[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].map((l) => `  ${l}`).join('\n');
}

const count = (n: number) => n.toLocaleString('en-US');
const pct = (part: number, whole: number) => (whole ? `${((100 * part) / whole).toFixed(1)}%` : '-');

function keyValues(pairs: Array<[string, string]>): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
}

export function formatInspection(r: ModelInspection): string {
  const a = r.architecture;
  const rope = a.ropeScaling
    ? `theta ${a.ropeTheta}, ${a.ropeScaling.type} scaling x${a.ropeScaling.factor}` +
      (a.ropeScaling.originalMaxPositionEmbeddings ? ` (original context ${a.ropeScaling.originalMaxPositionEmbeddings})` : '')
    : `theta ${a.ropeTheta}, no scaling`;
  const where = r.source.repoId ? `${r.source.repoId} @ ${r.source.revision ?? 'main'} (${r.source.path})` : `${r.source.kind}: ${r.source.path}`;
  const out: string[] = [`Model  ${where}`, '', 'Architecture'];
  out.push(
    keyValues([
      ['family', `${a.family} (model_type ${a.modelType})`],
      ['hidden size', String(a.hiddenSize)],
      ['MLP width', String(a.intermediateSize)],
      ['layers', String(a.numLayers)],
      ['attention heads', `${a.numHeads} (key/value heads ${a.numKeyValueHeads}, head_dim ${a.headDim})`],
      ['vocabulary', count(a.vocabSize)],
      ['context', `${count(a.contextLength)} tokens`],
      ['RoPE', rope],
      ['RMSNorm eps', String(a.rmsNormEps)],
      ['tied embeddings', a.tiedEmbeddings ? 'yes' : 'no'],
      ['q/k/v bias', a.attentionBias ? 'yes' : 'no'],
      ['stored dtype', a.torchDtype ?? 'not given'],
    ]),
  );

  const p = r.parameters;
  out.push('', 'Parameters');
  out.push(
    table(
      ['', 'count', 'share'],
      [
        ['linear layers (quantized)', count(p.linear), pct(p.linear, p.total)],
        ['embeddings', count(p.embedding), pct(p.embedding, p.total)],
        ['other (norms, biases)', count(p.other), pct(p.other, p.total)],
        ['total', count(p.total), '100.0%'],
      ],
      [false, true, true],
    ),
  );

  out.push('', `Linear layers (${r.linears.length}); Hadamard transforms n = K x 2^k`);
  out.push(
    table(
      ['layer', 'kind', 'out x in', 'dtype', 'input side (n)', 'output side (m)', 'padded n'],
      r.linears.map((l) => [
        l.name,
        l.kind,
        `${l.outFeatures} x ${l.inFeatures}`,
        l.dtype,
        formatHadamard(l.hadamardIn),
        formatHadamard(l.hadamardOut),
        String(l.paddedIn),
      ]),
      [false, false, true, false, false, false, true],
    ),
  );
  const constructions = new Map<number, string>();
  for (const l of r.linears) {
    for (const h of [l.hadamardIn, l.hadamardOut]) if (h.construction) constructions.set(h.k, h.construction);
  }
  if (constructions.size) {
    out.push(`  order-K factors: ${[...constructions].sort((x, y) => x[0] - y[0]).map(([k, c]) => `K = ${k}: ${c}`).join('; ')}`);
  }

  out.push('', 'Estimated size on disk');
  out.push(
    table(
      ['bits', 'size', 'bits per linear weight', 'vs 16-bit'],
      r.sizes.map((s) => [String(s.bits), formatBytes(s.bytes), s.bitsPerLinearWeight.toFixed(3), pct(s.bytes, r.sizes.find((x) => x.bits === 16)?.bytes ?? 0)]),
      [true, true, true, true],
    ),
  );
  out.push('  (codes at the padded width, SU as int8 signs, SV as fp32 with the row scales, fp32 scales, every other tensor in 16 bits)');

  if (r.tokenizer) {
    const t = r.tokenizer;
    out.push('', 'Tokenizer');
    out.push(
      keyValues([
        ['kind', t.kind],
        ['vocabulary', count(t.vocabSize)],
        ['BOS', `${t.bosToken ?? 'none'}${t.addBos ? ' (added to prompts)' : ' (not added)'}`],
        ['EOS', t.eosToken ?? 'none'],
        ['chat template', t.hasChatTemplate ? 'yes' : 'no'],
      ]),
    );
  } else {
    out.push('', 'Tokenizer  none (no tokenizer.json)');
  }

  out.push('', 'Weight files');
  out.push(table(['file', 'size', 'tensors'], r.weightFiles.map((f) => [f.file, formatBytes(f.bytes), String(f.tensors)]), [false, true, true]));
  if (r.warnings.length) {
    out.push('', 'Warnings');
    for (const w of r.warnings) out.push(`  - ${w}`);
  }
  return out.join('\n');
}

/** Download progress on stderr: one updating line on a terminal, one line per file otherwise. */
function progressPrinter(): { onProgress: (p: DownloadProgress) => void; finish: () => void } {
  const tty = process.stderr.isTTY;
  let shown = '';
  let lastKey = '';
  const show = (line: string, key: string) => {
    if (tty) {
      const fitted = line.slice(0, (process.stderr.columns || 120) - 1);
      process.stderr.write(`\r${fitted.padEnd(shown.length)}`);
      shown = fitted;
    } else if (key !== lastKey) {
      process.stderr.write(`${line}\n`);
    }
    lastKey = key;
  };
  return {
    onProgress(p) {
      if (p.state === 'listing') return show(`Listing the files of ${p.repoId} on the hub...`, 'listing');
      if (p.state === 'done') return show(`${p.repoId}: ${formatBytes(p.bytesTotal)} in the Hugging Face cache`, 'done');
      const eta = p.etaSeconds === null ? '' : `, ${Math.ceil(p.etaSeconds)} s left`;
      const speed = p.speedBytesPerSec > 0 ? `, ${formatSpeed(p.speedBytesPerSec)}` : '';
      show(
        `${p.state === 'downloading' ? 'Downloading' : p.state === 'retrying' ? 'Retrying' : 'Verifying'} ${p.repoId}: ${p.file} (file ${p.fileIndex + 1} of ${p.fileCount}), ` +
          `${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}${speed}${eta}`,
        `${p.state} ${p.file}`,
      );
    },
    finish: () => {
      if (tty && shown) process.stderr.write('\n');
    },
  };
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('Show what is inside a model: architecture, parameters, linear layers with their Hadamard factorisation, and sizes at 2, 3 and 4 bits')
    .argument('<model>', 'a local Hugging Face model folder, or a hub id such as HuggingFaceTB/SmolLM2-135M (downloaded into the Hugging Face cache)')
    .option('--json', 'print the inspection as JSON')
    .option('--revision <rev>', 'hub branch, tag or commit', 'main')
    .action(async (model: string, opts: { json?: boolean; revision: string }) => {
      const abort = new AbortController();
      const onSigint = () => abort.abort();
      process.once('SIGINT', onSigint);
      try {
        const progress = progressPrinter();
        const resolved = resolveModelDir(model, { revision: opts.revision, onProgress: progress.onProgress, signal: abort.signal });
        const { dir, source } = await resolved.finally(progress.finish);
        const result = await inspectModel({ path: dir, repoId: source.repoId, revision: source.revision });
        process.stdout.write(opts.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatInspection(result)}\n`);
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
