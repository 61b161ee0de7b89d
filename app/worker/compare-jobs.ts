// Compare's jobs in the job process: "Token by token" (compare.tokenKld), a base model and up to four
// runs made from it loaded side by side, one text run through all of them (runtime/token-kld.ts).
// A row of kinds.ts.
import { openSync, readSync, closeSync } from 'node:fs';
import { z } from 'zod';

import { TOKEN_KLD_MAX_RUNS, TOKEN_KLD_MAX_TEXT_CHARS, TOKEN_KLD_MAX_TOKENS, TokenKldJobResult } from '../contract/token-kld.js';
import { loadModel } from '../engine/model/index.js';
import { createEngine } from '../engine/runtime/native-model.js';
import { tokenKld } from '../engine/runtime/token-kld.js';
import { UserError } from '../util/errors.js';
import { shippedText } from '../util/paths.js';
import { defineJobKind, NoEvents } from './runtime.js';

/** Characters of the shipped evaluation text read for its first tokens (~4 per token, with room). */
const DEFAULT_TEXT_CHARS = 8 * TOKEN_KLD_MAX_TOKENS;

/** The start of the shipped evaluation text (WikiText-2 test), cut at a line break. */
export function defaultTokenKldText(): string {
  const fd = openSync(shippedText('evaluation'), 'r');
  try {
    const buf = Buffer.alloc(DEFAULT_TEXT_CHARS);
    const got = readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, got).toString('utf8');
    const cut = text.lastIndexOf('\n');
    return cut > 0 ? text.slice(0, cut) : text;
  } finally {
    closeSync(fd);
  }
}

export const tokenKldKind = defineJobKind({
  /** text: null = the start of the shipped evaluation text; ctx: tokens scored at most. */
  params: z.object({
    baseDir: z.string().min(1),
    runDirs: z.array(z.string().min(1)).min(1).max(TOKEN_KLD_MAX_RUNS),
    text: z.string().max(TOKEN_KLD_MAX_TEXT_CHARS).nullable(),
    ctx: z.number().int().min(2).max(TOKEN_KLD_MAX_TOKENS),
  }),
  events: NoEvents,
  result: TokenKldJobResult,
  run: async (p, ctx) => {
    const text = p.text?.trim() ? p.text : defaultTokenKldText();
    const base = await loadModel(p.baseDir);
    const vocab = base.architecture.vocabSize;
    const runs = [];
    for (const dir of p.runDirs) {
      const m = await loadModel(dir);
      if (m.architecture.vocabSize !== vocab) {
        throw new UserError(`${dir} has a vocabulary of ${m.architecture.vocabSize} tokens and its base ${p.baseDir} ${vocab}: token by token needs the same tokenizer.`, 'BAD_SETTING');
      }
      runs.push(createEngine(m));
    }
    const r = await tokenKld(createEngine(base), runs, text, { tokenizer: base.tokenizer, vocab, maxTokens: p.ctx, cancel: ctx.cancel });
    if (r.tokens.length < 2) throw new UserError('The text is too short: give at least two tokens of text.', 'BAD_TEXT');
    return {
      tokens: r.tokens,
      baseTop: r.baseTop,
      runs: r.runs.map((x, i) => ({ dir: p.runDirs[i]!, ...x })),
      truncated: r.truncated,
      seconds: r.seconds,
    };
  },
});
