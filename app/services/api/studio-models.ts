// The models the studio's local API offers: every finished run (id: the run's name), every model
// folder in the recent list (id: its name as the studio shows it, the hub id or the folder name), and
// the others the chat offers or has loaded (the built-in sample model; id: the folder name).
// A name already taken gets -2, -3, ... so every id names one folder.
import path from 'node:path';

import type { RecentModel } from '../../contract/channels.js';
import type { RunSummary } from '../../contract/runs.js';
import type { ApiModel } from './server.js';

export async function studioApiModels(source: {
  runs: { list(): Promise<RunSummary[]> };
  library: { recent(): Promise<RecentModel[]> };
  /** More folders, after the runs and recent models (the sample model, loaded models). */
  others?: () => Promise<string[]>;
}): Promise<ApiModel[]> {
  const [runs, recent, others] = await Promise.all([source.runs.list(), source.library.recent(), source.others?.() ?? []]);
  const out: ApiModel[] = [];
  const taken = new Set<string>();
  const add = (name: string, dir: string, at: string) => {
    const resolved = path.resolve(dir);
    if (out.some((m) => m.dir === resolved)) return;
    let id = name;
    for (let n = 2; taken.has(id); n++) id = `${name}-${n}`;
    taken.add(id);
    out.push({ id, dir: resolved, created: Math.floor((Date.parse(at) || Date.now()) / 1000) });
  };
  for (const r of runs) if (r.state === 'done') add(r.name, r.dir, r.finishedAt ?? r.createdAt);
  for (const m of recent) add(m.name, m.path, m.openedAt);
  for (const dir of others) add(path.basename(dir), dir, '');
  return out;
}
