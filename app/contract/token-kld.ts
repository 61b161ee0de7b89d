// Compare's "Token by token": where two bit widths differ, at the level a person reads. A text is
// tokenized once per base model; at every token, each run's next-token distribution is compared with
// its 16-bit base's (KL divergence over the full vocabulary, in llama.cpp's --kl-divergence convention:
// app/engine/runtime/kl-divergence.ts), with both models' five likeliest tokens.
import { z } from 'zod';

import { MAX_SHORT_CHARS, SafeName } from './limits.js';

/** The most runs one request compares (one row each). */
export const TOKEN_KLD_MAX_RUNS = 4;
/** Tokens of text scored by default and at most (the text is cut there). */
export const TOKEN_KLD_DEFAULT_TOKENS = 300;
export const TOKEN_KLD_MAX_TOKENS = 1024;
/** Characters of text a request may carry (a prompt's answer, a paragraph). */
export const TOKEN_KLD_MAX_TEXT_CHARS = 16 * 1024;

export const TopToken = z.object({
  /** The token as text (a leading space kept). */
  text: z.string(),
  /** Its probability. */
  p: z.number(),
});
export type TopToken = z.infer<typeof TopToken>;

/** What the job computes for one base model and its runs. */
export const TokenKldJobResult = z.object({
  /** The scored tokens' text, in order (BOS left out); joined, they read as the text. */
  tokens: z.array(z.string()),
  /** The base model's five likeliest tokens at each token (null where nothing predicts it: the first
   * token of a text without BOS). */
  baseTop: z.array(z.array(TopToken).nullable()),
  runs: z.array(
    z.object({
      dir: z.string(),
      /** KL(P_base || P_run) of the distribution that predicted each token (nats); null as baseTop. */
      kld: z.array(z.number().nullable()),
      top: z.array(z.array(TopToken).nullable()),
      /** Mean over the scored tokens, and the share where both models' top token is the same. */
      meanKld: z.number(),
      sameTop: z.number(),
    }),
  ),
  /** The text was longer than the tokens scored (it was cut). */
  truncated: z.boolean(),
  seconds: z.number(),
});
export type TokenKldJobResult = z.infer<typeof TokenKldJobResult>;

export const TokenKldInput = z.object({
  runIds: z.array(SafeName('run id')).min(1, 'Choose a run first.').max(TOKEN_KLD_MAX_RUNS, `Choose at most ${TOKEN_KLD_MAX_RUNS} runs.`),
  /** The text to read (a prompt's answer, a paragraph); left out or empty: the start of the shipped
   * evaluation text (WikiText-2 test). */
  text: z.string().max(TOKEN_KLD_MAX_TEXT_CHARS, `Use at most ${TOKEN_KLD_MAX_TEXT_CHARS} characters of text.`).nullable().optional(),
  /** Tokens scored at most. */
  ctx: z.number().int().min(8).max(TOKEN_KLD_MAX_TOKENS).default(TOKEN_KLD_DEFAULT_TOKENS),
});
export type TokenKldInput = z.infer<typeof TokenKldInput>;

export const TokenKldGroup = TokenKldJobResult.extend({
  /** The 16-bit base model the runs were made from. */
  modelDir: z.string(),
  modelName: z.string().max(MAX_SHORT_CHARS),
  runs: z.array(TokenKldJobResult.shape.runs.element.extend({ runId: z.string() })),
});
export type TokenKldGroup = z.infer<typeof TokenKldGroup>;

export const TokenKldResult = z.object({
  /** Where the text came from, for people ("WikiText-2 test, first 300 tokens", "your text"). */
  source: z.string(),
  /** One per base model, in the order the runs were given. */
  groups: z.array(TokenKldGroup),
});
export type TokenKldResult = z.infer<typeof TokenKldResult>;
