// `quip bench fuzz`: seeded mutations of valid inputs through each loader (safetensors, config and
// tokenizer JSON, GGUF, chat templates; fuzz-loaders.ts), each batch of cases in a child process so a
// crash, an out-of-memory death or a hang is seen and counted instead of ending the run. A case must
// end in success or a clean error (a UserError: what was wrong and what to do) within the time bound;
// a raw TypeError/RangeError is "unclean" (a bug). Peak memory is the children's maximum resident set
// beside the goal 4 x input + 200 MB.
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Command } from 'commander';

import { UserError } from '../util/errors.js';
import { FUZZ_LOADERS, type FuzzLoaderName } from './fuzz-loaders.js';
import type { RunnerArgs, RunnerMessage } from './fuzz-runner.js';

export const MB = 1024 * 1024;
/** The goal per loader: peak memory under 4 x the input file size + 200 MB. */
export const memoryGoal = (inputBytes: number) => 4 * inputBytes + 200 * MB;

export interface FuzzOptions {
  loaders?: readonly FuzzLoaderName[];
  /** Cases per loader. */
  cases: number;
  seed?: number;
  /** A case running longer than this is a hang; its child is killed. */
  timeoutMs?: number;
  /** Cases per child process. */
  batch?: number;
  /** Children running at once. */
  threads?: number;
  dataDir?: string;
  /** A child over this resident size is killed and its case counted over memory (protects the machine). */
  killRssBytes?: number;
  onProgress?: (loader: FuzzLoaderName, done: number, total: number) => void;
}

export interface FuzzFailure {
  index: number;
  kind: 'unclean' | 'crash' | 'hang' | 'memory';
  message: string;
  mutation: string;
}

export interface FuzzLoaderResult {
  loader: FuzzLoaderName;
  inputs: string;
  cases: number;
  successes: number;
  cleanErrors: number;
  unclean: number;
  crashes: number;
  hangs: number;
  overMemory: number;
  peakRssBytes: number;
  inputBytes: number;
  memoryGoalBytes: number;
  slowestCaseMs: number;
  seconds: number;
  /** The first failures (up to 20) with their mutation, to reproduce with --seed and the case index. */
  failures: FuzzFailure[];
  /** A few clean error messages, to show what users read. */
  sampleErrors: string[];
}

/** The studio folder (the one with package.json and app/bench), from wherever this module runs. */
function studioRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'app', 'bench', 'fuzz-runner.ts'))) return dir;
    dir = path.dirname(dir);
  }
  throw new UserError('quip bench fuzz runs from a source checkout of the studio (it bundles app/bench/fuzz-runner.ts); app/bench was not found.', 'NOT_FOUND');
}

let runnerBuilt: Promise<string> | undefined;
/** Bundles the child's entry with esbuild (as scripts/build.mjs bundles the CLI) inside the checkout,
 * so the native addon is found the same way. */
function runnerScript(root: string): Promise<string> {
  runnerBuilt ??= (async () => {
    const out = path.join(root, 'node_modules', '.cache', 'quip-fuzz', `fuzz-runner-${process.pid}.mjs`);
    mkdirSync(path.dirname(out), { recursive: true });
    process.once('exit', () => rmSync(out, { force: true }));
    const esbuild = await import('esbuild');
    await esbuild.build({
      entryPoints: [path.join(root, 'app', 'bench', 'fuzz-runner.ts')],
      outfile: out, bundle: true, platform: 'node', target: 'node20', format: 'esm', packages: 'external', logLevel: 'warning',
      banner: { js: "import { createRequire as __quipCreateRequire } from 'node:module'; const require = __quipCreateRequire(import.meta.url);" },
    });
    return out;
  })();
  return runnerBuilt;
}

function rssOf(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

interface BatchState {
  result: FuzzLoaderResult;
  done: number;
}

/** Runs cases [from, to) in children, a fresh one after each crash or hang. */
async function runBatch(script: string, loader: FuzzLoaderName, from: number, to: number, opts: Required<Omit<FuzzOptions, 'loaders' | 'onProgress'>>, state: BatchState, progress: () => void): Promise<void> {
  const r = state.result;
  let next = from;
  let setupFailures = 0;
  while (next < to) {
    const args: RunnerArgs = { loader, seed: opts.seed, from: next, to, dataDir: opts.dataDir };
    next = await new Promise<number>((resolve, reject) => {
      const child = fork(script, [JSON.stringify(args)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
      let current: number | null = null, ready = false, ended = false, killedFor: 'hang' | 'memory' | null = null;
      let timer: NodeJS.Timeout | undefined;
      let mutation = '';
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          killedFor = 'hang';
          child.kill('SIGKILL');
        }, ready ? opts.timeoutMs : 120_000);
      };
      arm();
      const sampler = setInterval(() => {
        const rss = child.pid ? rssOf(child.pid) : null;
        if (rss === null) return;
        r.peakRssBytes = Math.max(r.peakRssBytes, rss);
        if (rss > opts.killRssBytes) {
          killedFor = 'memory';
          child.kill('SIGKILL');
        }
      }, 100);
      child.on('message', (msg: RunnerMessage) => {
        if (msg.type === 'ready') {
          ready = true;
          r.inputBytes = msg.inputBytes;
          r.inputs = msg.inputs;
          arm();
        } else if (msg.type === 'start') {
          current = msg.index;
          arm();
        } else if (msg.type === 'done') {
          current = null;
          r.slowestCaseMs = Math.max(r.slowestCaseMs, msg.ms);
          r.peakRssBytes = Math.max(r.peakRssBytes, msg.maxRssBytes);
          if (msg.outcome === 'success') r.successes++;
          else if (msg.outcome === 'clean') {
            r.cleanErrors++;
            if (r.sampleErrors.length < 8 && !r.sampleErrors.some((e) => e.slice(0, 40) === msg.message!.slice(0, 40))) r.sampleErrors.push(msg.message!);
          } else {
            r.unclean++;
            if (r.failures.length < 20) r.failures.push({ index: msg.index, kind: 'unclean', message: msg.message ?? '', mutation: msg.mutation });
          }
          r.cases++;
          state.done++;
          mutation = msg.mutation;
          progress();
        } else if (msg.type === 'end') ended = true;
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        clearInterval(sampler);
        if (ended) return resolve(to);
        // A child that cannot start (e.g. the native addon being rebuilt beside us) is retried twice.
        if (!ready && ++setupFailures <= 2) return void setTimeout(() => resolve(next), 15_000);
        if (!ready) return reject(new UserError(`the fuzz child for ${loader} failed before its first case (exit ${code ?? signal}): ${stderr.trim().slice(-800)}`, 'FUZZ_SETUP'));
        if (current === null) return reject(new Error(`fuzz child for ${loader} exited between cases (exit ${code ?? signal}) after "${mutation}": ${stderr.trim().slice(-800)}`));
        const kind = killedFor ?? 'crash';
        if (kind === 'hang') r.hangs++;
        else if (kind === 'memory') r.overMemory++;
        else r.crashes++;
        r.cases++;
        state.done++;
        if (r.failures.length < 20) {
          const why = kind === 'hang' ? `no result within ${opts.timeoutMs / 1000} s` : kind === 'memory' ? `resident memory over ${Math.round(opts.killRssBytes / MB)} MB` : `process ended (exit ${code ?? signal}) ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
          r.failures.push({ index: current, kind, message: why.slice(0, 400), mutation: '(see --seed and the case index)' });
        }
        progress();
        resolve(current + 1);
      });
    });
  }
}

/** Runs every loader's cases and returns their figures. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzLoaderResult[]> {
  const root = studioRoot();
  const opts = {
    cases: options.cases,
    seed: options.seed ?? 1,
    timeoutMs: options.timeoutMs ?? 20_000,
    batch: options.batch ?? 250,
    threads: Math.max(1, options.threads ?? 1),
    dataDir: options.dataDir ?? path.resolve(root, '..', 'shared', 'data'),
    killRssBytes: options.killRssBytes ?? 3 * 1024 * MB,
  };
  if (!existsSync(path.join(opts.dataDir, 'models', 'stories260k'))) throw new UserError(`${opts.dataDir} has no models/stories260k; pass --data <the shared data folder>.`, 'NOT_FOUND');
  const script = await runnerScript(root);
  const results: FuzzLoaderResult[] = [];
  for (const loader of options.loaders ?? FUZZ_LOADERS) {
    const t0 = performance.now();
    const result: FuzzLoaderResult = {
      loader, inputs: '', cases: 0, successes: 0, cleanErrors: 0, unclean: 0, crashes: 0, hangs: 0, overMemory: 0,
      peakRssBytes: 0, inputBytes: 0, memoryGoalBytes: 0, slowestCaseMs: 0, seconds: 0, failures: [], sampleErrors: [],
    };
    const state: BatchState = { result, done: 0 };
    const batches: Array<[number, number]> = [];
    for (let from = 0; from < opts.cases; from += opts.batch) batches.push([from, Math.min(opts.cases, from + opts.batch)]);
    const worker = async () => {
      for (let b = batches.shift(); b; b = batches.shift()) await runBatch(script, loader, b[0], b[1], opts, state, () => options.onProgress?.(loader, state.done, opts.cases));
    };
    await Promise.all(Array.from({ length: Math.min(opts.threads, batches.length) }, worker));
    result.memoryGoalBytes = memoryGoal(result.inputBytes);
    result.seconds = (performance.now() - t0) / 1000;
    result.failures.sort((a, b) => a.index - b.index);
    results.push(result);
  }
  return results;
}

/** Whether a loader met the goal: 0 crashes, 0 hangs, 0 unclean errors, peak memory under the goal. */
export function metGoal(r: FuzzLoaderResult): boolean {
  return r.crashes === 0 && r.hangs === 0 && r.overMemory === 0 && r.unclean === 0 && r.peakRssBytes <= r.memoryGoalBytes;
}

export function fuzzTable(results: FuzzLoaderResult[]): string {
  const rows = [['loader', 'cases', 'clean errors', 'successes', 'unclean', 'crashes', 'hangs', 'over memory', 'peak RSS', 'goal (4x input + 200 MB)', 'slowest case', 'goal met']];
  for (const r of results) {
    rows.push([
      r.loader, String(r.cases), String(r.cleanErrors), String(r.successes), String(r.unclean), String(r.crashes), String(r.hangs), String(r.overMemory),
      `${(r.peakRssBytes / MB).toFixed(0)} MB`, `${(r.memoryGoalBytes / MB).toFixed(0)} MB`, `${(r.slowestCaseMs / 1000).toFixed(2)} s`, metGoal(r) ? 'yes' : 'NO',
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return rows.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

function positiveInt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UserError(`${name} must be a positive integer, got "${v}".`, 'BAD_SETTING');
  return n;
}

export function registerFuzzBench(bench: Command): void {
  bench
    .command('fuzz')
    .description('Seeded mutations of valid inputs through every loader (safetensors, config/tokenizer JSON, GGUF, chat templates): cases / clean errors / successes / crashes / hangs / peak memory per loader')
    .option('--cases <n>', 'cases per loader', '10000')
    .option('--loader <names>', `comma-separated loaders (${FUZZ_LOADERS.join(', ')})`)
    .option('--seed <s>', 'run seed (case i of a loader is reproducible from seed and i)', '1')
    .option('--threads <t>', 'child processes at once', '1')
    .option('--batch <n>', 'cases per child process', '250')
    .option('--timeout <s>', 'seconds after which a case counts as a hang', '20')
    .option('--data <dir>', 'the shared test data folder (default: ../shared/data beside the studio)')
    .option('--json <file>', 'write the figures as JSON')
    .action(async (o: Record<string, string | undefined>) => {
      const loaders = o.loader?.split(',').map((s) => s.trim()).filter(Boolean);
      for (const l of loaders ?? []) if (!(FUZZ_LOADERS as readonly string[]).includes(l)) throw new UserError(`--loader: unknown loader "${l}"; use ${FUZZ_LOADERS.join(', ')}.`, 'BAD_SETTING');
      const seed = Number(o.seed);
      if (!Number.isSafeInteger(seed)) throw new UserError(`--seed must be an integer, got "${o.seed}".`, 'BAD_SETTING');
      const cases = positiveInt(o.cases, '--cases')!;
      let last = 0;
      const results = await runFuzz({
        loaders: loaders as FuzzLoaderName[] | undefined, cases, seed, threads: positiveInt(o.threads, '--threads'), batch: positiveInt(o.batch, '--batch'),
        timeoutMs: positiveInt(o.timeout, '--timeout')! * 1000, dataDir: o.data ? path.resolve(o.data) : undefined,
        onProgress: (loader, done, total) => {
          if (process.stderr.isTTY && (done === total || Date.now() - last > 500)) {
            last = Date.now();
            process.stderr.write(`\r${loader}: ${done}/${total} `);
          }
        },
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      console.log(`quip bench fuzz --cases ${cases} --seed ${seed} on ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.availableParallelism()} threads available)\n`);
      console.log(fuzzTable(results));
      for (const r of results) {
        console.log(`\n${r.loader}: ${r.inputs}; ${r.seconds.toFixed(0)} s`);
        for (const f of r.failures) console.log(`  case ${f.index}: ${f.kind}: ${f.message}${f.mutation ? ` [${f.mutation}]` : ''}`);
        for (const e of r.sampleErrors.slice(0, 4)) console.log(`  e.g. ${e.slice(0, 200)}`);
      }
      if (o.json) writeFileSync(o.json, JSON.stringify({ seed, cases, cpu: os.cpus()[0]?.model, results }, null, 2));
      if (!results.every(metGoal)) process.exitCode = 1;
    });
}
