// compare.tokenKld: finished runs grouped by their base model, one tokenKld job per base (the base and
// its runs loaded side by side in a job process), the groups in the order the runs were given.
import { existsSync } from 'node:fs';
import path from 'node:path';

import type { TokenKldInput, TokenKldResult } from '../../contract/token-kld.js';
import { UserError } from '../../util/errors.js';
import type { JobClient } from '../jobs/client.js';
import type { RunService } from './service.js';

/** A job over a small model takes seconds; one over four 1B-parameter runs a few minutes. */
const TIMEOUT_MS = 20 * 60_000;

export async function compareTokenKld(runs: RunService, jobs: JobClient, input: TokenKldInput): Promise<TokenKldResult> {
  const details = [];
  for (const runId of new Set(input.runIds)) {
    const d = await runs.get(runId);
    if (d.state !== 'done') throw new UserError(`Run ${d.name} is ${d.state}; token by token compares finished runs.`, 'RUN_NOT_DONE');
    if (!d.modelDir || !existsSync(path.join(d.modelDir, 'config.json'))) {
      throw new UserError(`The 16-bit model run ${d.name} was made from${d.modelDir ? ` (${d.modelDir})` : ''} is not on this computer: token by token compares each run with it.`, 'NOT_FOUND');
    }
    details.push(d);
  }
  const groups = new Map<string, typeof details>();
  for (const d of details) groups.set(d.modelDir!, [...(groups.get(d.modelDir!) ?? []), d]);
  const text = input.text?.trim() ? input.text : null;
  const out: TokenKldResult['groups'] = [];
  for (const [modelDir, members] of groups) {
    const r = await jobs.run(
      'tokenKld',
      { baseDir: modelDir, runDirs: members.map((m) => m.dir), text, ctx: input.ctx },
      { label: `Token by token: ${members.length} run${members.length === 1 ? '' : 's'} of ${path.basename(modelDir)}`, timeoutMs: TIMEOUT_MS },
    ).result;
    out.push({
      ...r,
      modelDir,
      modelName: members[0]!.modelName ?? path.basename(modelDir),
      runs: r.runs.map((x, i) => ({ ...x, runId: members[i]!.runId })),
    });
  }
  const tokens = out[0]?.tokens.length ?? 0;
  return { source: text ? 'your text' : `WikiText-2 test, first ${tokens} tokens`, groups: out };
}
