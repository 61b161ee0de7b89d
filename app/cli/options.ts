// Parsers of the command line's numeric flags, shared by every command and bench. A bad value is a
// UserError naming the flag, e.g. `--ctx must be a whole number >= 2, got "0"`.
import type { Command } from 'commander';

import { UserError } from '../util/errors.js';

export function intOption(v: string | undefined, what: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UserError(`${what} must be a whole number >= ${min}, got "${v}"`, 'BAD_SETTING');
  return n;
}

export function numberOption(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UserError(`${what} must be a number, got "${v}"`, 'BAD_SETTING');
  return n;
}

/** Each command's defaults for the sampling flags (and the fewest tokens --max-tokens accepts). */
export interface SamplingDefaults {
  maxTokens: number;
  minMaxTokens: number;
  maxTokensHelp: string;
  temperature: number;
}

/** Declares --max-tokens, --temperature, --top-p and --seed (`quip generate` and `quip chat`). */
export function addSamplingOptions(cmd: Command, d: SamplingDefaults): Command {
  return cmd
    .option('--max-tokens <n>', d.maxTokensHelp, String(d.maxTokens))
    .option('--temperature <t>', '0 = greedy', String(d.temperature))
    .option('--top-p <p>', 'nucleus sampling mass', '0.95')
    .option('--seed <s>', 'random seed', '0');
}

/** The sampling flags declared by addSamplingOptions, parsed. */
export function samplingOptions(opts: Record<string, unknown>, d: SamplingDefaults): { maxTokens: number; temperature: number; topP: number; seed: number } {
  const s = (k: string) => opts[k] as string | undefined;
  return {
    maxTokens: intOption(s('maxTokens'), '--max-tokens', d.minMaxTokens) ?? d.maxTokens,
    temperature: numberOption(s('temperature'), '--temperature') ?? d.temperature,
    topP: numberOption(s('topP'), '--top-p') ?? 0.95,
    seed: intOption(s('seed'), '--seed', 0) ?? 0,
  };
}
