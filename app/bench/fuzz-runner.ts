// The fuzz child process (forked by fuzz.ts, one per batch of cases): runs cases [from, to) of one
// loader and reports each over IPC before and after it runs, so the parent can tell which case hung
// (no report within the time bound) or crashed the process (exit in the middle of a case).
import { UserError } from '../util/errors.js';
import { makeLoader, type FuzzLoaderName } from './fuzz-loaders.js';
import { caseSeed, Mutator } from './mutate.js';

export interface RunnerArgs {
  loader: FuzzLoaderName;
  seed: number;
  from: number;
  to: number;
  dataDir: string;
}

export type RunnerMessage =
  | { type: 'ready'; inputBytes: number; inputs: string }
  | { type: 'start'; index: number }
  | { type: 'done'; index: number; outcome: 'success' | 'clean' | 'unclean'; message?: string; mutation: string; ms: number; maxRssBytes: number }
  | { type: 'end' };

const send = (m: RunnerMessage) => new Promise<void>((resolve) => process.send!(m, () => resolve()));

/** Clean: a UserError with a message (what was wrong and what to do). Anything else is a bug. */
function classify(err: unknown): { outcome: 'clean' | 'unclean'; message: string } {
  if (err instanceof UserError && err.message.length > 0) return { outcome: 'clean', message: err.message };
  const e = err as Error;
  const frame = e?.stack?.split('\n').find((l) => l.trim().startsWith('at '))?.trim() ?? '';
  return { outcome: 'unclean', message: `${e?.name ?? typeof err}: ${e?.message ?? String(err)} ${frame}` };
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2]) as RunnerArgs;
  const loader = makeLoader(args.loader, { dataDir: args.dataDir });
  await send({ type: 'ready', inputBytes: loader.inputBytes, inputs: loader.inputs });
  try {
    for (let index = args.from; index < args.to; index++) {
      await send({ type: 'start', index });
      const m = new Mutator(caseSeed(args.seed, args.loader, index));
      const t0 = performance.now();
      let outcome: 'success' | 'clean' | 'unclean' = 'success';
      let message: string | undefined;
      try {
        await loader.run(m);
      } catch (err) {
        ({ outcome, message } = classify(err));
      }
      const ms = performance.now() - t0;
      await send({ type: 'done', index, outcome, message: message?.slice(0, 400), mutation: m.log.join('; ').slice(0, 300), ms, maxRssBytes: process.resourceUsage().maxRSS * 1024 });
    }
  } finally {
    loader.dispose();
  }
  await send({ type: 'end' });
  process.disconnect();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : String(err));
  process.exit(3);
});
