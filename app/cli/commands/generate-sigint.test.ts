// `quip generate --chat` as a user runs it (the bundled CLI in a child process) on stories260k with a
// chat template that never ends: Ctrl-C while the template renders stops the process at once with a
// message (exit 130); left alone, the render stops at its time limit with an error naming the
// template.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, expect, it } from 'vitest';

const STORIES = path.resolve('../shared/data/models/stories260k');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'quip-generate-sigint-'));
const cli = path.resolve('test-results', `generate-sigint-cli-${process.pid}.mjs`);
const model = path.join(tmp, 'endless-template');

beforeAll(async () => {
  cpSync(STORIES, model, { recursive: true });
  writeFileSync(path.join(model, 'chat_template.jinja'), '{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}');
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: [path.resolve('app/cli/main.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: cli, logLevel: 'error',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  rmSync(cli, { force: true });
});

/** Runs `quip generate --chat`, sending SIGINT after `sigintAfterMs` when given. */
async function generateChat(sigintAfterMs?: number): Promise<{ code: number | null; stderr: string; afterSigintMs: number | null }> {
  const child = spawn(process.execPath, [cli, 'generate', model, '--prompt', 'Hello', '--chat', '--max-tokens', '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let sentAt: number | null = null;
  if (sigintAfterMs !== undefined) setTimeout(() => { sentAt = performance.now(); child.kill('SIGINT'); }, sigintAfterMs);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stderr, afterSigintMs: sentAt === null ? null : performance.now() - sentAt };
}

it('Ctrl-C while the chat template renders stops at once with a message', async () => {
  // Loading stories260k takes well under a second; the render then runs for 2 s.
  const r = await generateChat(1200);
  expect(r.stderr).toContain('quip: stopped (Ctrl-C) while rendering the chat template.');
  expect(r.code).toBe(130);
  expect(r.afterSigintMs).not.toBeNull();
  expect(r.afterSigintMs!).toBeLessThan(1000);
}, 30_000);

it('an endless chat template stops at its time limit with an error naming it', async () => {
  const t0 = performance.now();
  const r = await generateChat();
  expect(r.stderr).toContain(`quip: The chat template of ${model} (chat_template.jinja) took more than 2 s to render`);
  expect(r.code).toBe(1);
  expect(performance.now() - t0).toBeLessThan(8000);
}, 30_000);
