// `quip export-gguf <model> --out FILE [--type f16|f32] [--json]`: a Llama-architecture Hugging Face
// folder as a GGUF v3 file that llama.cpp reads (its tools then run on the very same weights).
import type { Command } from 'commander';

import { exportGguf } from '../../engine/gguf/writer.js';
import { resolveModelDir } from '../../services/hub/index.js';
import { UserError } from '../../util/errors.js';

export function registerExportGguf(program: Command): void {
  program
    .command('export-gguf')
    .description('Write a Llama-architecture model folder as a 16-bit (or 32-bit) GGUF file for llama.cpp')
    .argument('<model>', 'model folder (or hub id)')
    .requiredOption('--out <file>', 'the .gguf file to write (replaced if it exists)')
    .option('--type <t>', 'f16 or f32 for the weight matrices (norms stay f32)', 'f16')
    .option('--json', 'print one JSON object')
    .action(async (modelArg: string, opts: { out: string; type: string; json?: boolean }) => {
      const type = opts.type.toUpperCase();
      if (type !== 'F16' && type !== 'F32') throw new UserError(`--type must be f16 or f32, got "${opts.type}"`, 'BAD_SETTING');
      const { dir } = await resolveModelDir(modelArg);
      const t0 = Date.now();
      const tty = process.stderr.isTTY && !opts.json;
      const r = await exportGguf(dir, opts.out, {
        type,
        onProgress: tty ? (p) => process.stderr.write(`\r\x1b[Kexporting: tensor ${p.done}/${p.total} ${p.tensor}`) : undefined,
      });
      if (tty) process.stderr.write('\r\x1b[K');
      if (opts.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else process.stdout.write(`Wrote ${r.file}: ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB (${r.type}), tokenizer ${r.tokenizer}, ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    });
}
