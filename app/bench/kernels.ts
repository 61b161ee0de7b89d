// `quip bench kernels [--threads N] [--json] [--quick]`: the QuIP# numeric core's kernels, each figure
// beside its comparison measured in the same run (native/src/quip/bench.cc):
// - E8P quantization weights/s: scalar reference on 1 thread, SIMD on 1 thread, SIMD on N threads;
// - RHT (randomized Hadamard transform) on activation vectors of 4096 and 11008 (K = 172);
// - GEMM GFLOP/s of the BlockLDLQ feedback GEMM against the FMA peak measured by a register-only loop;
// - BlockLDLQ + E8P of whole 4096 x 4096 and 4096 x 11008 layers (damping, RHT, Cholesky, LDL,
//   rounding, metrics) with the Hessian of correlated Gaussian activations x = s .* a + U z
//   (a AR(1) along channels with coefficient 0.9, s log-normal channel scales, U 8 shared factors).
import type { Command } from 'commander';

import { cancelFlag, native } from '../engine/native.js';
import type { BenchFigure } from '../engine/quip/native-types.js';
import { UserError } from '../util/errors.js';

export interface KernelsBenchResult {
  cpu: string;
  threads: number;
  figures: BenchFigure[];
}

// Progress events: {kind: 'figure', ...} for each figure; the layer runs also report their own stages.
function forwardFigure(json: string, onFigure: (f: BenchFigure) => void): void {
  const e = JSON.parse(json) as Partial<BenchFigure> & { kind?: string };
  if (e.kind === 'figure') onFigure({ name: e.name ?? '', variant: e.variant ?? '', value: e.value ?? 0, unit: e.unit ?? '', comparison: '' });
}

export async function benchKernels(threads: number, quick: boolean, onFigure?: (f: BenchFigure) => void): Promise<KernelsBenchResult> {
  const addon = native();
  const cancel = cancelFlag();
  const onSignal = () => (cancel[0] = 1);
  process.once('SIGINT', onSignal);
  try {
    const figures = await addon.quipBenchKernels({ threads, quick }, onFigure ? (json) => forwardFigure(json, onFigure) : undefined, cancel);
    return { cpu: addon.cpuInfo().summary, threads, figures };
  } finally {
    process.off('SIGINT', onSignal);
  }
}

function formatValue(f: BenchFigure): string {
  if (f.unit === 's') return `${f.value.toFixed(2)} s`;
  if (f.value >= 1e6) return `${(f.value / 1e6).toFixed(1)} M ${f.unit}`;
  return `${f.value.toFixed(1)} ${f.unit}`;
}

export function formatKernelsTable(r: KernelsBenchResult): string {
  const rows = r.figures.map((f) => [f.name, f.variant, formatValue(f), f.comparison]);
  const head = ['kernel', 'variant', 'figure', 'comparison'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [`QuIP# kernels on ${r.cpu}, ${r.threads} thread(s)`, line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function registerKernelsBench(bench: Command): void {
  bench
    .command('kernels')
    .description('QuIP# kernels: E8P quantization, RHT, GEMM vs measured peak, BlockLDLQ+E8P of 4096x4096 and 4096x11008 layers')
    .option('--threads <n>', 'threads for the multi-threaded figures', '2')
    .option('--json', 'print JSON instead of a table')
    .option('--quick', 'small sizes (a smoke test, not for figures)')
    .action(async (opts: { threads: string; json?: boolean; quick?: boolean }) => {
      const threads = Number(opts.threads);
      if (!Number.isInteger(threads) || threads < 1) throw new UserError(`--threads must be a positive integer, got "${opts.threads}".`);
      const r = await benchKernels(threads, Boolean(opts.quick), opts.json ? undefined : (f) => console.error(`  ${f.name} (${f.variant}): ${formatValue(f)}`));
      console.log(opts.json ? JSON.stringify(r, null, 2) : formatKernelsTable(r));
    });
}
