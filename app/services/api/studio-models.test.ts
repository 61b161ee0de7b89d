// The studio's API model ids: finished runs by name, then recent model folders by name, each folder
// once, a repeated name numbered.
import { expect, it } from 'vitest';

import { studioApiModels } from './studio-models.js';

it('offers finished runs and recent folders, one id per folder', async () => {
  const run = (name: string, state: string) => ({ name, dir: `/runs/${name}`, state, createdAt: '2026-01-01T00:00:00.000Z', finishedAt: null }) as never;
  const recent = (name: string, p: string) => ({ name, path: p, repoId: null, family: null, params: null, openedAt: '2026-01-02T00:00:00.000Z' });
  const models = await studioApiModels({
    runs: { list: async () => [run('smol-4bit', 'done'), run('smol-2bit', 'running')] },
    library: { recent: async () => [recent('smol', '/models/smol'), recent('smol', '/other/smol'), recent('smol-4bit', '/runs/smol-4bit')] },
  });
  expect(models.map((m) => [m.id, m.dir])).toEqual([
    ['smol-4bit', '/runs/smol-4bit'],
    ['smol', '/models/smol'],
    ['smol-2', '/other/smol'],
  ]);
});

it('offers the other folders the studio serves (the sample model, loaded models) after them, once each', async () => {
  const models = await studioApiModels({
    runs: { list: async () => [] },
    library: { recent: async () => [{ name: 'smol', path: '/models/smol', repoId: null, family: null, params: null, openedAt: '2026-01-02T00:00:00.000Z' }] },
    others: async () => ['/app/assets/models/stories260k', '/models/smol', '/elsewhere/smol'],
  });
  expect(models.map((m) => [m.id, m.dir])).toEqual([
    ['smol', '/models/smol'],
    ['stories260k', '/app/assets/models/stories260k'],
    ['smol-2', '/elsewhere/smol'],
  ]);
});
