// `quip compare DIR... [--json]`: bits, true bits per weight (with sign vectors and scales), size on
// disk, perplexity, mean and worst proxy loss and quantization time of quantized folders, side by side.
import type { Command } from 'commander';

import { compareRow, formatCompareTable } from '../../engine/quantize/compare.js';

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .description('Compare quantized (and full-precision) model folders: bits, size, perplexity, proxy loss, time')
    .argument('<dirs...>', 'model folders')
    .option('--json', 'print a JSON array')
    .action((dirs: string[], o: { json?: boolean }) => {
      const rows = dirs.map(compareRow);
      process.stdout.write(o.json ? JSON.stringify(rows, null, 2) + '\n' : formatCompareTable(rows));
    });
}
