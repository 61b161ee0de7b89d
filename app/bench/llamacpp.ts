// llama.cpp as the peer of our benchmarks: finds the tools that ../shared/tools/build-llama-cpp.sh
// built (default folder ~/.cache/llama-cpp-ref, or --llama-cpp DIR), runs llama-perplexity,
// llama-imatrix, llama-quantize and llama-bench, and reads their figures. Also the true bits per
// weight of a GGUF's linear layers (from its tensor table, fallback types included).
// `quip bench decode-peer --gguf FILE`: llama.cpp's prefill/decode tokens/s on a GGUF (F16 and its
// Q4_K_M / IQ2_XXS quantizations), for `quip bench decode` and docs to print beside ours.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Command } from 'commander';

import { intOption } from '../cli/options.js';
import { openGguf } from '../engine/gguf/reader.js';
import { UserError } from '../util/errors.js';

export const LLAMA_CPP_DEFAULT_DIR = path.join(os.homedir(), '.cache', 'llama-cpp-ref');

/** The folder holding llama-perplexity etc.: DIR itself, DIR's build/bin, or the build script's layout under DIR. Null when not built. */
export function locateLlamaCpp(dir?: string): string | null {
  const root = dir ?? process.env.QUIP_LLAMA_CPP ?? LLAMA_CPP_DEFAULT_DIR;
  for (const c of [root, path.join(root, 'build', 'bin'), path.join(root, 'src', 'vendor', 'llama.cpp', 'build', 'bin')]) {
    if (existsSync(path.join(c, 'llama-perplexity')) && existsSync(path.join(c, 'llama-bench'))) return c;
  }
  return null;
}

export const LLAMA_CPP_MISSING =
  'llama.cpp is not built: run `bash ../shared/tools/build-llama-cpp.sh` (about 5 minutes), or pass --llama-cpp DIR.';

/** Runs a tool; resolves to stdout + stderr; a failure names the tool and shows the end of its output. */
export function runTool(bin: string, tool: string, args: string[], timeoutMs = 3_600_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(path.join(bin, tool), args, { maxBuffer: 256 << 20, timeout: timeoutMs }, (err, stdout, stderr) => {
      const out = `${stdout}\n${stderr}`;
      if (err) reject(new UserError(`${tool} failed (${(err as Error).message.split('\n')[0]}):\n${out.slice(-2000)}`, 'PEER_FAILED'));
      else resolve(out);
    });
  });
}

/** llama-perplexity's final figure: "Final estimate: PPL = X +/- Y". */
export function parsePerplexity(out: string): { ppl: number; plusMinus: number | null; chunks: number | null } {
  const m = /Final estimate: PPL = ([0-9.]+)(?: \+\/- ([0-9.]+))?/.exec(out);
  if (!m) throw new UserError(`llama-perplexity printed no final estimate:\n${out.slice(-1500)}`, 'PEER_FAILED');
  const c = /calculating perplexity over (\d+) chunks/.exec(out);
  return { ppl: Number(m[1]), plusMinus: m[2] ? Number(m[2]) : null, chunks: c ? Number(c[1]) : null };
}

// This llama-perplexity build now and then exits with status 0 before its last chunk and the final
// estimate (seen about 1 run in 3 on a loaded 2-core machine), so a run without the estimate is
// repeated, up to 3 runs in all.
export async function llamaPerplexity(bin: string, model: string, text: string, o: { ctx: number; windows: number; threads: number }) {
  const args = ['-m', model, '-f', text, '-c', String(o.ctx), '--chunks', String(o.windows), '-t', String(o.threads), '-b', String(Math.max(o.ctx, 512))];
  for (let attempt = 1; ; attempt++) {
    const out = await runTool(bin, 'llama-perplexity', args);
    if (attempt === 3 || /Final estimate: PPL =/.test(out)) return parsePerplexity(out);
  }
}

/** llama-perplexity --kl-divergence's summary: perplexities of both models, mean KLD and top-token agreement (+- each). */
export interface LlamaKlDivergence {
  ppl: number;
  basePpl: number;
  kld: number;
  kldPlusMinus: number;
  /** Share (0..1) of positions with the same top token, and its +-. */
  sameTop: number;
  sameTopPlusMinus: number;
}

export function parseKlDivergence(out: string): LlamaKlDivergence {
  const num = (re: RegExp, what: string) => {
    const m = re.exec(out);
    if (!m) throw new UserError(`llama-perplexity --kl-divergence printed no ${what}:\n${out.slice(-1500)}`, 'PEER_FAILED');
    return [Number(m[1]), Number(m[2])];
  };
  const pm = '\\s*(?:±|\\+/-)\\s*';
  const [ppl] = num(new RegExp(`Mean PPL\\(Q\\)\\s*:\\s*([0-9.]+)${pm}([0-9.]+)`), 'Mean PPL(Q)');
  const [basePpl] = num(new RegExp(`Mean PPL\\(base\\)\\s*:\\s*([0-9.]+)${pm}([0-9.]+)`), 'Mean PPL(base)');
  const [kld, kldPlusMinus] = num(new RegExp(`Mean\\s+KLD:\\s*(-?[0-9.]+)${pm}([0-9.]+)`), 'Mean KLD');
  const [same, sameUnc] = num(new RegExp(`Same top p:\\s*([0-9.]+)${pm}([0-9.]+)\\s*%`), 'Same top p');
  return { ppl, basePpl, kld, kldPlusMinus, sameTop: same / 100, sameTopPlusMinus: sameUnc / 100 };
}

/**
 * `--kl-divergence-base FILE` on the 16-bit model: its perplexity run, saving its log-probabilities
 * (uint16 per vocabulary entry and position: ctx/2 x vocab x 2 bytes per window) for the runs below.
 */
export async function llamaKlBase(bin: string, model: string, text: string, logits: string, o: { ctx: number; windows: number; threads: number }) {
  const args = ['-m', model, '-f', text, '-c', String(o.ctx), '--chunks', String(o.windows), '-t', String(o.threads), '-b', String(Math.max(o.ctx, 512)), '--kl-divergence-base', logits];
  for (let attempt = 1; ; attempt++) {
    const out = await runTool(bin, 'llama-perplexity', args);
    if (attempt === 3 || (/Final estimate: PPL =/.test(out) && existsSync(logits))) return parsePerplexity(out);
  }
}

/** `--kl-divergence` of a quantized file against the base's saved log-probabilities (retried like llamaPerplexity). */
export async function llamaKlDivergence(bin: string, model: string, logits: string, o: { ctx: number; windows: number; threads: number }): Promise<LlamaKlDivergence> {
  const args = ['-m', model, '--kl-divergence-base', logits, '--kl-divergence', '-c', String(o.ctx), '--chunks', String(o.windows), '-t', String(o.threads), '-b', String(Math.max(o.ctx, 512))];
  for (let attempt = 1; ; attempt++) {
    const out = await runTool(bin, 'llama-perplexity', args);
    if (attempt === 3 || /Same top p:/.test(out)) return parseKlDivergence(out);
  }
}

/** An importance matrix from `text` (chunks of ctx tokens), as llama-quantize wants for its low-bit types. */
export async function llamaImatrix(bin: string, model: string, text: string, out: string, o: { ctx: number; chunks: number; threads: number }): Promise<string> {
  await runTool(bin, 'llama-imatrix', ['-m', model, '-f', text, '-o', out, '-c', String(o.ctx), '--chunks', String(o.chunks), '-t', String(o.threads)]);
  if (!existsSync(out)) throw new UserError(`llama-imatrix wrote no ${out}`, 'PEER_FAILED');
  return out;
}

/** llama-quantize; `requantize` lets it read a quantized input (to F16, that is llama.cpp's own dequantization). */
export async function llamaQuantize(bin: string, input: string, output: string, type: string, o: { threads: number; imatrix?: string; f16Head?: boolean; requantize?: boolean }): Promise<string> {
  const head = o.f16Head ? ['--output-tensor-type', 'f16', '--token-embedding-type', 'f16'] : [];
  const args = [...(o.requantize ? ['--allow-requantize'] : []), ...(o.imatrix ? ['--imatrix', o.imatrix] : []), ...head, input, output, type, String(o.threads)];
  return runTool(bin, 'llama-quantize', args);
}

export interface LlamaBenchFigures {
  /** Prefill (prompt processing) and decode (token generation) tokens/s, averaged over repetitions. */
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

/** llama-bench -o json: one result for -p N (n_gen 0) and one for -n N (n_prompt 0). */
export async function llamaBench(bin: string, model: string, o: { threads: number; prompt: number; gen: number; repetitions: number }): Promise<LlamaBenchFigures> {
  const out = await runTool(bin, 'llama-bench', ['-m', model, '-t', String(o.threads), '-p', String(o.prompt), '-n', String(o.gen), '-r', String(o.repetitions), '-o', 'json']);
  const start = out.indexOf('[');
  const end = out.lastIndexOf(']');
  let rows: Array<{ n_prompt: number; n_gen: number; avg_ts: number }>;
  try {
    rows = JSON.parse(out.slice(start, end + 1));
  } catch {
    throw new UserError(`llama-bench printed no JSON:\n${out.slice(-1500)}`, 'PEER_FAILED');
  }
  const pp = rows.find((r) => r.n_prompt > 0 && r.n_gen === 0);
  const tg = rows.find((r) => r.n_gen > 0 && r.n_prompt === 0);
  if (!pp || !tg) throw new UserError(`llama-bench gave no prefill/decode rows:\n${out.slice(-1500)}`, 'PEER_FAILED');
  return { prefillTokensPerSecond: pp.avg_ts, decodeTokensPerSecond: tg.avg_ts };
}

const LINEAR_RE = /^blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$/;

/** Bits per weight of the linear layers as stored (every block's q/k/v/o/gate/up/down), and the types used. */
export function ggufLinearBits(file: string): { bitsPerWeight: number; types: Record<string, number> } {
  const g = openGguf(file);
  try {
    let bits = 0, n = 0;
    const types: Record<string, number> = {};
    for (const t of g.header.tensors) {
      if (!LINEAR_RE.test(t.name)) continue;
      bits += 8 * t.bytes;
      n += t.numel;
      types[t.type.name] = (types[t.type.name] ?? 0) + 1;
    }
    if (n === 0) throw new UserError(`${file}: no linear layers (blk.N.attn_q.weight ...) found`, 'BAD_GGUF');
    return { bitsPerWeight: bits / n, types };
  } finally {
    g.file.close();
  }
}

/** The stored type of one tensor of a GGUF (e.g. output.weight), or null when the file has no such tensor. */
export function ggufTensorType(file: string, name: string): string | null {
  const g = openGguf(file);
  try {
    return g.header.tensors.find((t) => t.name === name)?.type.name ?? null;
  } finally {
    g.file.close();
  }
}

/** Bytes a decoded token reads: every tensor but the token embeddings (one row of them), unless they double as lm_head. */
export function ggufBytesPerToken(file: string): number {
  const g = openGguf(file);
  try {
    const tied = !g.header.tensors.some((t) => t.name === 'output.weight');
    return g.header.tensors.reduce((sum, t) => sum + (t.name === 'token_embd.weight' && !tied ? 0 : t.bytes), 0);
  } finally {
    g.file.close();
  }
}

export interface DecodePeerRow extends LlamaBenchFigures {
  type: string;
  file: string;
  linearBitsPerWeight: number;
  bytesPerToken: number;
  /** What llama-quantize made of lm_head (output.weight; token_embd.weight when tied) and the embeddings. */
  outputType: string | null;
  embeddingType: string | null;
}

/** A llama-quantize type with "+f16-head" after it keeps lm_head and the embeddings at F16 (like ours). */
export const F16_HEAD_SUFFIX = '+f16-head';

/** llama.cpp's speed on `gguf` (F16) and its quantizations (IQ2 types get an imatrix from `calibText`). */
export async function decodePeer(o: {
  bin: string;
  gguf: string;
  types: string[];
  threads: number;
  prompt: number;
  gen: number;
  repetitions: number;
  work: string;
  calibText: string;
  onStatus?: (s: string) => void;
}): Promise<DecodePeerRow[]> {
  mkdirSync(o.work, { recursive: true });
  const rows: DecodePeerRow[] = [];
  let imatrix: string | undefined;
  for (const type of o.types) {
    let file = o.gguf;
    if (type !== 'F16') {
      const f16Head = type.endsWith(F16_HEAD_SUFFIX);
      const base = f16Head ? type.slice(0, -F16_HEAD_SUFFIX.length) : type;
      file = path.join(o.work, `${path.basename(o.gguf, '.gguf')}-${base}${f16Head ? '-f16head' : ''}.gguf`);
      if (!existsSync(file)) {
        if (/^IQ[12]/.test(base) && !imatrix) {
          o.onStatus?.('llama-imatrix (needed by IQ2 types)');
          imatrix = await llamaImatrix(o.bin, o.gguf, o.calibText, path.join(o.work, 'imatrix.dat'), { ctx: 128, chunks: 2, threads: o.threads });
        }
        o.onStatus?.(`llama-quantize ${type}`);
        await llamaQuantize(o.bin, o.gguf, file, base, { threads: o.threads, imatrix: /^IQ[12]/.test(base) ? imatrix : undefined, f16Head });
      }
    }
    o.onStatus?.(`llama-bench ${type}`);
    const f = await llamaBench(o.bin, file, o);
    const bits = ggufLinearBits(file);
    // "F16" names the file as given; label it by what its linear layers hold (e.g. Q4_1 for a downloaded GGUF).
    const label = type === 'F16' ? Object.entries(bits.types).sort((a, b) => b[1] - a[1])[0][0] : type;
    const embeddingType = ggufTensorType(file, 'token_embd.weight');
    rows.push({ type: label, file, linearBitsPerWeight: bits.bitsPerWeight, bytesPerToken: ggufBytesPerToken(file), outputType: ggufTensorType(file, 'output.weight') ?? embeddingType, embeddingType, ...f });
  }
  return rows;
}

export function registerDecodePeerBench(bench: Command): void {
  bench
    .command('decode-peer')
    .description("llama.cpp's prefill and decode tokens/s (llama-bench) on a 16-bit GGUF and its Q4_K_M / IQ2_XXS quantizations")
    .requiredOption('--gguf <file>', 'a 16-bit GGUF, e.g. from `quip synth ... --gguf FILE` or `quip export-gguf`')
    .option('--types <list>', `F16 (the file as given) and llama-quantize types, comma-separated; TYPE${F16_HEAD_SUFFIX} keeps lm_head and embeddings at F16`, 'F16,Q4_K_M,IQ2_XXS')
    .option('--threads <t>', 'threads', String(Math.max(1, os.availableParallelism())))
    .option('--prompt <n>', 'prefill tokens', '64')
    .option('--gen <n>', 'decoded tokens', '32')
    .option('--repetitions <r>', 'llama-bench repetitions', '2')
    .option('--work <dir>', 'where quantized files go (default: beside the GGUF)')
    .option('--calib-text <file>', 'text for the imatrix of IQ2 types', path.resolve('../shared/data/wikitext-2-raw/wiki.valid.raw'))
    .option('--llama-cpp <dir>', `llama.cpp's bin folder or build root (default ${LLAMA_CPP_DEFAULT_DIR})`)
    .option('--json', 'print one JSON object')
    .option('--out <file>', 'also write the JSON here')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      const bin = locateLlamaCpp(opts.llamaCpp as string | undefined);
      if (!bin) throw new UserError(LLAMA_CPP_MISSING, 'PEER_MISSING');
      const gguf = opts.gguf as string;
      if (!existsSync(gguf)) throw new UserError(`${gguf}: no such file; write one with \`quip export-gguf\` or \`quip synth --gguf\`.`, 'NOT_FOUND');
      const threads = intOption(opts.threads as string, '--threads')!;
      const rows = await decodePeer({
        bin,
        gguf,
        types: (opts.types as string).split(',').map((t) => t.trim().toUpperCase()).filter(Boolean),
        threads,
        prompt: intOption(opts.prompt as string, '--prompt')!,
        gen: intOption(opts.gen as string, '--gen')!,
        repetitions: intOption(opts.repetitions as string, '--repetitions')!,
        work: (opts.work as string | undefined) ?? path.dirname(path.resolve(gguf)),
        calibText: opts.calibText as string,
        onStatus: opts.json ? undefined : (s) => process.stderr.write(`  ${s}\n`),
      });
      const result = { gguf, threads, llamaCpp: bin, rows };
      if (opts.out) writeFileSync(opts.out as string, `${JSON.stringify(result, null, 2)}\n`);
      if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else {
        const lines = [`llama.cpp on ${gguf}, ${threads} threads`, `${'type'.padEnd(10)} ${'bits/w'.padStart(7)} ${'prefill t/s'.padStart(12)} ${'decode t/s'.padStart(11)}`];
        for (const r of rows) {
          lines.push(`${r.type.padEnd(10)} ${r.linearBitsPerWeight.toFixed(2).padStart(7)} ${r.prefillTokensPerSecond.toFixed(1).padStart(12)} ${r.decodeTokensPerSecond.toFixed(2).padStart(11)}`);
        }
        process.stdout.write(`${lines.join('\n')}\n`);
      }
    });
}
