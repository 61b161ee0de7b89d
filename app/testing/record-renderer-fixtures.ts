// Records the run fixtures the fake StudioApi replays: the real services quantize stories260k at 2
// and 4 bits in real job processes, and every run.event and the final run details are saved as JSON
// in renderer/src/api/fixtures/. Run from the project root:
//   QUIP_NATIVE_PATH=... npx vite-node app/testing/record-renderer-fixtures.ts
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { RunEvent } from '../contract/runs.js';
import { nodeJobProcesses } from '../services/jobs/node-process.js';
import { createStudioServices } from '../services/studio/index.js';
import { projectRoot } from '../util/paths.js';
import { bundleForTest } from './bundle.js';

const here = path.join(projectRoot(), 'renderer', 'src', 'api', 'fixtures');
const stories = path.resolve('..', 'shared', 'data', 'models', 'stories260k');
const home = mkdtempSync(path.join(os.tmpdir(), 'quip-record-'));
const events: RunEvent[] = [];
const workerPath = await bundleForTest('app/worker/main.ts', 'worker');
const services = createStudioServices({
  face: 'browser',
  home,
  spawnJob: nodeJobProcesses({ workerPath }),
  send: (e, p) => void (e === 'run.event' && events.push(p as RunEvent)),
});
const ctx = { client: 'record' };
const call = async (ch: string, input: unknown) => {
  const r = await services.dispatch(ch, input, ctx);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};
for (const [name, bits] of [['stories260k-2bit', 2], ['stories260k-4bit', 4]] as const) {
  await call('runs.start', { modelDir: stories, settings: { bits, calibSamples: 8, calibCtx: 128 }, name });
}
while (!events.some((e) => e.runId === 'stories260k-4bit' && e.body.type === 'state' && ['done', 'error'].includes(e.body.run.state))) await new Promise((r) => setTimeout(r, 100));
// Paths and times vary by machine: keep them stable and short.
const clean = (v: unknown) => JSON.parse(JSON.stringify(v).split(home).join('/studio').split(stories).join('/models/stories260k'));
const details = { two: clean(await call('runs.get', { runId: 'stories260k-2bit' })), four: clean(await call('runs.get', { runId: 'stories260k-4bit' })) };
writeFileSync(path.join(here, 'stories260k.run-events.json'), JSON.stringify(clean(events.filter((e) => e.runId === 'stories260k-2bit'))) + '\n');
writeFileSync(path.join(here, 'stories260k.runs.json'), JSON.stringify(details) + '\n');
await services.close();
rmSync(home, { recursive: true, force: true });
