// compare.tokenKld on stories260k with a real job process: two runs (2 and 4 bits) made in the studio
// home, each token's KL divergence against the 16-bit base checked against kl-divergence.ts's figure
// for the same window (llama.cpp's convention: the second half of the window scored after the first
// half), a model against itself at 0 everywhere, the 2-bit run further from 16-bit than the 4-bit one.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { TokenKldResult } from '../../contract/token-kld.js';
import { resolveSettings } from '../../domain/quantize/index.js';
import { loadModel } from '../../engine/model/index.js';
import { runQuantizeJob } from '../../engine/quantize/job.js';
import { evaluateKlDivergenceLlamaCpp } from '../../engine/runtime/kl-divergence.js';
import { createEngine } from '../../engine/runtime/native-model.js';
import { projectRoot } from '../../util/paths.js';
import { bundleForTest } from '../../testing/bundle.js';
import { defaultTokenKldText } from '../../worker/compare-jobs.js';
import { nodeJobProcesses } from '../jobs/node-process.js';
import { createStudioServices, type StudioServices } from '../studio/index.js';

const STORIES = path.join(projectRoot(), '..', 'shared', 'data', 'models', 'stories260k');
const CTX = 96;

let home: string;
let services: StudioServices;
beforeAll(async () => {
  home = mkdtempSync(path.join(os.tmpdir(), 'quip-token-kld-'));
  for (const [name, bits] of [['two', 2], ['four', 4]] as const) {
    await runQuantizeJob({ model: STORIES, out: path.join(home, 'runs', name), settings: resolveSettings({ bits, calibSamples: 4, calibCtx: 64 }), evaluation: null });
  }
  const workerPath = await bundleForTest('app/worker/main.ts', 'worker');
  services = createStudioServices({ face: 'browser', home, spawnJob: nodeJobProcesses({ workerPath }), send: () => {} });
}, 300_000);
afterAll(async () => {
  await services?.close();
  rmSync(home, { recursive: true, force: true });
});

async function call<T>(channel: string, input: unknown): Promise<T> {
  const reply = await services.dispatch(channel, input, { client: 'test' });
  if (!reply.ok) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
  return reply.value as T;
}

describe('compare.tokenKld', () => {
  it("each token's KLD is kl-divergence.ts's figure for the window; 2 bits further than 4", async () => {
    const r = await call<TokenKldResult>('compare.tokenKld', { runIds: ['two', 'four'], ctx: CTX });
    expect(r.groups).toHaveLength(1);
    const g = r.groups[0]!;
    expect(g.modelDir).toBe(STORIES);
    expect(g.runs.map((x) => x.runId)).toEqual(['two', 'four']);
    expect(g.tokens).toHaveLength(CTX);
    expect(g.truncated).toBe(true);
    expect(r.source).toBe(`WikiText-2 test, first ${CTX} tokens`);

    // The same tokens, independently: BOS + the text's first CTX tokens, one llama.cpp window of them.
    const base = await loadModel(STORIES);
    const ids = base.tokenizer.encode(defaultTokenKldText(), { addBos: true }).slice(0, CTX + 1);
    expect(base.tokenizer.decode(ids)).toBe(base.tokenizer.decode(ids.slice(0, 1)) + g.tokens.join(''));
    const window = Int32Array.from(ids);
    const first = window.length >> 1;
    for (const run of g.runs) {
      expect(run.kld[0]).not.toBeNull(); // BOS predicts the first token
      const model = await loadModel(path.join(home, 'runs', run.runId));
      const ref = await evaluateKlDivergenceLlamaCpp(createEngine(model), createEngine(base), [window], base.architecture.vocabSize, { ctx: window.length });
      // Position p (of the window) predicts token p + 1, which is g.tokens[p] (BOS is not a token).
      const half = run.kld.slice(first, window.length - 1) as number[];
      expect(half).toHaveLength(ref.tokensScored);
      const mean = half.reduce((a, x) => a + x, 0) / half.length;
      const sorted = [...half].sort((a, b) => a - b);
      const median = sorted.length % 2 ? sorted[sorted.length >> 1]! : (sorted[sorted.length / 2]! + sorted[sorted.length / 2 - 1]!) / 2;
      expect(mean).toBeCloseTo(ref.kld, 5);
      expect(sorted[sorted.length - 1]).toBeCloseTo(ref.kldMax, 5);
      expect(median).toBeCloseTo(ref.kldMedian, 5);
      // Top-5 lists: five tokens each, probabilities falling, summing to at most 1.
      for (const top of [run.top[5]!, g.baseTop[5]!]) {
        expect(top).toHaveLength(5);
        for (let k = 1; k < 5; k++) expect(top[k]!.p).toBeLessThanOrEqual(top[k - 1]!.p);
        expect(top.reduce((a, t) => a + t.p, 0)).toBeLessThanOrEqual(1 + 1e-9);
      }
    }
    expect(g.runs[0]!.meanKld).toBeGreaterThan(g.runs[1]!.meanKld);
  }, 300_000);

  it('a model against itself differs nowhere; a text of its own is scored whole', async () => {
    const r = await services.jobs.run('tokenKld', { baseDir: STORIES, runDirs: [STORIES], text: 'Once upon a time, there was a little dog.', ctx: 300 }).result;
    expect(r.truncated).toBe(false);
    expect(r.tokens.join('')).toBe('Once upon a time, there was a little dog.');
    const self = r.runs[0]!;
    for (const k of self.kld) expect(Math.abs(k!)).toBeLessThan(1e-4);
    expect(self.sameTop).toBe(1);
    expect(self.top).toEqual(r.baseTop);
  }, 120_000);

  it('refuses a run that is not finished or does not exist', async () => {
    await expect(call('compare.tokenKld', { runIds: ['nope'] })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(call('compare.tokenKld', { runIds: ['a', 'b', 'c', 'd', 'e'] })).rejects.toThrow(/at most 4/);
  });
});
