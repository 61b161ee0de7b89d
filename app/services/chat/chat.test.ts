// Saved chats in the studio home: one JSON file each under chats/, listed newest first, a damaged file
// skipped (the others still load), delete by id with a clear error for an unknown one.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { nodeJobProcesses } from '../jobs/node-process.js';
import { createStudioServices } from '../studio/index.js';

const home = mkdtempSync(path.join(os.tmpdir(), 'quip-chats-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));
const services = createStudioServices({ face: 'browser', home, spawnJob: nodeJobProcesses(), send: () => {} });
const ctx = { client: 'test' };

const chat = (chatId: string, updatedAt: string) => ({
  chatId,
  title: `Chat ${chatId}`,
  panes: [{ modelDir: '/m', modelName: 'm', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello', stats: null }] }],
  sampling: { temperature: 0.7, topP: 0.95, maxTokens: 64, seed: 0 },
  updatedAt,
});

describe('saved chats', () => {
  it('saves, lists newest first across a restart, skips a damaged file and deletes', async () => {
    for (const c of [chat('a', '2026-01-01T00:00:00.000Z'), chat('b', '2026-02-01T00:00:00.000Z')]) {
      const r = await services.dispatch('chats.save', c, ctx);
      expect(r.ok).toBe(true);
    }
    writeFileSync(path.join(home, 'chats', 'broken.json'), '{ not json');
    const again = createStudioServices({ face: 'browser', home, spawnJob: nodeJobProcesses(), send: () => {} });
    const listed = await again.dispatch('chats.list', {}, ctx);
    expect(listed.ok && (listed.value as Array<{ chatId: string }>).map((c) => c.chatId)).toEqual(['b', 'a']);
    expect((await again.dispatch('chats.delete', { chatId: 'a' }, ctx)).ok).toBe(true);
    const gone = await again.dispatch('chats.delete', { chatId: 'a' }, ctx);
    expect(gone).toEqual({ ok: false, error: { message: 'There is no saved chat a.', code: 'NOT_FOUND' } });
    const bad = await again.dispatch('chats.save', { ...chat('../escape', '2026-01-01T00:00:00.000Z') }, ctx);
    expect(bad.ok).toBe(false);
    await again.close();
    await services.close();
  });
});
