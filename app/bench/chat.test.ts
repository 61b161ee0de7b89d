// `quip bench chat` on stories260k (3 short turns): the kept session prefills only each new turn,
// the fresh session the whole prompt, and both give the same greedy text; the table prints the goal line.
import path from 'node:path';

import { expect, it } from 'vitest';

import { projectRoot } from '../util/paths.js';
import { formatChatBench, runChatBench } from './chat.js';

it('times kept-session turns beside full re-prefill and checks they agree', async () => {
  const r = await runChatBench({ model: path.resolve(projectRoot(), '..', 'shared', 'data', 'models', 'stories260k'), turns: 3, maxTokens: 8, threads: 1 });
  expect(r.turns).toHaveLength(3);
  expect(r.turns.every((t) => t.sameText)).toBe(true);
  expect(r.turns[0].reusedTokens).toBe(0);
  for (const t of r.turns.slice(1)) {
    expect(t.prefilledTokens).toBeLessThanOrEqual(t.userTokens + 2);
    expect(t.reusedTokens + t.prefilledTokens).toBe(t.promptTokens);
  }
  expect(formatChatBench(r)).toMatch(/Turn 3 TTFT \/ turn 1 TTFT: kept session [\d.]+x, full re-prefill [\d.]+x\. Goal \(kept <= 1\.5x\): (met|NOT met)\./);
});
