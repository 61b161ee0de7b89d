// The `quip` command line. Each command lives in commands/<name>.ts and registers itself here.
import { Command } from 'commander';

import { version } from '../../package.json';
import { UserError, errorMessage } from '../util/errors.js';
import { registerBench } from './commands/bench.js';
import { registerChat } from './commands/chat.js';
import { registerCompare } from './commands/compare.js';
import { registerEval } from './commands/eval.js';
import { registerExportGguf } from './commands/export-gguf.js';
import { registerGenerate } from './commands/generate.js';
import { registerImport } from './commands/import.js';
import { registerInspect } from './commands/inspect.js';
import { registerQuantize } from './commands/quantize.js';
import { registerServe } from './commands/serve.js';
import { registerSynth } from './commands/synth.js';

const program = new Command('quip')
  .description('QuIP# Studio on the command line: inspect, quantize, evaluate and chat with language models on a CPU.')
  .version(version)
  .showHelpAfterError();

const commands: Array<(p: Command) => void> = [registerInspect, registerQuantize, registerCompare, registerEval, registerGenerate, registerSynth, registerImport, registerExportGguf, registerChat, registerServe, registerBench];
for (const register of commands) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof UserError || !(err instanceof Error) || !process.env.QUIP_DEBUG) {
    console.error(`quip: ${errorMessage(err)}`);
  } else {
    console.error(err.stack);
  }
  process.exitCode = 1;
});
