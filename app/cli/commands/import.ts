// `quip import <file.gguf> --out DIR [--force] [--threads T] [--json]`: a GGUF model (llama or qwen2) becomes a
// Hugging Face folder with float16 weights that every other command reads. Ctrl-C cancels and leaves
// nothing at DIR.
import type { Command } from 'commander';

import { importGguf, LOSSY_NOTE, type ImportProgress } from '../../engine/gguf/index.js';
import { setEngineThreads } from '../../engine/runtime/native-model.js';
import { intOption } from '../options.js';

export function registerImport(program: Command): void {
  program
    .command('import')
    .description('Import a GGUF model (llama, qwen2) as a Hugging Face folder with float16 weights')
    .argument('<file>', 'the .gguf file')
    .requiredOption('--out <dir>', 'folder to create (must be new, empty, or replaced with --force)')
    .option('--force', 'replace a model already in the output folder')
    .option('--threads <t>', 'threads for dequantization (default: all cores)')
    .option('--json', 'print one JSON object')
    .action(async (file: string, opts: { out: string; force?: boolean; threads?: string; json?: boolean }) => {
      setEngineThreads(intOption(opts.threads, '--threads'));
      const controller = new AbortController();
      const onSigint = () => {
        if (controller.signal.aborted) process.exit(130);
        controller.abort();
        process.stderr.write('\nquip: stopping (Ctrl-C again to quit at once)\n');
      };
      process.on('SIGINT', onSigint);
      const tty = process.stderr.isTTY && !opts.json;
      const onProgress = (p: ImportProgress) => {
        if (!tty) return;
        const what = p.phase === 'tensors' ? `tensor ${p.done + 1}/${p.total} ${p.tensor}` : p.phase;
        process.stderr.write(`\r\x1b[Kimporting: ${what}`);
        if (p.phase === 'done') process.stderr.write('\r\x1b[K');
      };
      try {
        const r = await importGguf(file, opts.out, { onProgress, signal: controller.signal, force: opts.force });
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
          return;
        }
        const types = Object.entries(r.originalTypes).map(([t, n]) => `${n} ${t}`).join(', ');
        const lines = [
          `Imported ${r.name ?? r.source} (${r.architecture}, ${(r.parameters / 1e6).toFixed(1)}M parameters, ${r.tensors} tensors: ${types})`,
          `  into ${r.outDir} in ${r.seconds.toFixed(1)} s`,
          `  tokenizer: ${r.tokenizer.model}${r.tokenizer.preTokenizer ? ` (${r.tokenizer.preTokenizer})` : ''}; source sha256 ${r.sourceSha256}`,
          ...r.warnings.map((w) => `  warning: ${w}`),
          ...(r.lossy ? [`  note: ${LOSSY_NOTE}`] : []),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        if (tty) process.stderr.write('\r\x1b[K');
        process.off('SIGINT', onSigint);
      }
    });
}
