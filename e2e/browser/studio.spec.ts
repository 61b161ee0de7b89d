// The studio end to end in the browser face: real server, real quantize and chat jobs, stories260k.
// Open the model, start a 2-bit run and watch the chart grow while it runs (one point per quantized
// linear when done), compare it with a 4-bit run, chat with the 2-bit model; plus the failures a
// person meets: a non-model folder, a cancelled run, a killed job process.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { expect, openByPath, STORIES260K, test } from '../fixtures/studio';

const config = JSON.parse(readFileSync(path.join(STORIES260K, 'config.json'), 'utf8'));
const LINEARS = config.num_hidden_layers * 7;

async function nav(page: Page, label: string) {
  await page.getByRole('navigation', { name: 'Studio' }).getByRole('button', { name: label, exact: true }).click();
}

/** Sets up a run on the New run page: a preset, few calibration samples, and a name. */
async function startRun(page: Page, preset: string, name: string, samples = '4', ctx = '64') {
  await nav(page, 'New run');
  await page.getByRole('radio', { name: new RegExp(preset) }).click();
  await page.getByLabel('Samples').fill(samples);
  await page.getByLabel('Length (tokens)').fill(ctx);
  await page.getByLabel('Run name').fill(name);
  await expect(page.getByTestId('estimate-size')).toBeVisible();
  await page.getByTestId('start-run').click();
  await expect(page.getByTestId('run-page')).toBeVisible();
  await expect(page.getByRole('heading', { level: 1 })).toContainText(name);
}

const points = (page: Page) => page.getByTestId('layer-point');

test('a 2-bit run grows its chart live, compares with 4 bits, and chats', async ({ studioPage: page }, testInfo) => {
  test.setTimeout(240_000);
  await openByPath(page, STORIES260K);
  await expect(page.getByTestId('inspection').getByRole('heading', { level: 2 })).toHaveText('stories260k');

  // New run: estimate shown before starting. Enough calibration that the run takes a few seconds.
  await nav(page, 'New run');
  await expect(page.getByLabel('Model to quantize')).toHaveValue(STORIES260K);
  await expect(page.getByTestId('estimate-time')).toHaveText(/~/);
  await expect(page.getByTestId('estimate-memory')).toHaveText(/B$/);
  await page.screenshot({ path: testInfo.outputPath('new-run.png') });
  await page.getByRole('main').evaluate((main) => main.scrollTo(0, main.scrollHeight));
  await page.screenshot({ path: testInfo.outputPath('new-run-bottom.png') });

  await startRun(page, '2-bit E8P', 'two-bit', '64', '256');
  // Points appear while the run is still going, and their number grows: sample the chart until done.
  const seen = new Set<number>();
  const heading = page.getByRole('heading', { level: 1 });
  for (const end = Date.now() + 120_000; Date.now() < end; ) {
    const [n, title] = await Promise.all([points(page).count(), heading.textContent()]);
    if (title?.includes('running') && n > 0 && n < LINEARS) {
      if (seen.size === 0) await page.screenshot({ path: testInfo.outputPath('run-live.png') });
      seen.add(n);
    }
    if (title?.includes('done') || seen.size >= 3) break;
    await page.waitForTimeout(20);
  }
  expect([...seen].length, `point counts seen while running: ${[...seen].join(', ')}`).toBeGreaterThanOrEqual(2);
  // Done: one point per quantized linear layer, and the result card.
  await expect(page.getByTestId('run-result')).toBeVisible({ timeout: 120_000 });
  await expect(points(page)).toHaveCount(LINEARS);
  await expect(page.getByTestId('run-layers')).toContainText(`${LINEARS} / ${LINEARS} layers`);
  await points(page).nth(3).hover();
  await expect(page.getByTestId('layer-tooltip')).toContainText('proxy loss');
  await page.screenshot({ path: testInfo.outputPath('run-done.png') });
  await page.getByTestId('metric-frobenius').click();
  await expect(points(page)).toHaveCount(LINEARS);

  // A 4-bit run beside it.
  await startRun(page, '4-bit RVQ', 'four-bit');
  await expect(page.getByTestId('run-result')).toBeVisible({ timeout: 120_000 });

  await nav(page, 'Runs');
  await expect(page.getByTestId('run-row')).toHaveCount(2);
  await page.screenshot({ path: testInfo.outputPath('runs.png') });

  await nav(page, 'Compare');
  for (const name of ['two-bit', 'four-bit']) await page.getByTestId('compare-chip').filter({ hasText: name }).getByRole('checkbox').check();
  await expect(page.getByTestId('perplexity-chart')).toHaveAttribute('data-points', '2');
  await expect(page.getByTestId('overlay-chart').locator('.recharts-line')).toHaveCount(2);
  await page.getByRole('button', { name: 'Ask all' }).click();
  // The two runs and the original model they were made from.
  const answers = page.getByTestId('compare-answer');
  await expect(answers).toHaveCount(3);
  await expect(answers.and(page.locator('[data-original]'))).toContainText('stories260k');
  for (const i of [0, 1, 2]) await expect(answers.nth(i).locator('.answer-stats')).toContainText('tokens/s', { timeout: 60_000 });
  await page.screenshot({ path: testInfo.outputPath('compare-answers.png') });
  await page.getByRole('main').evaluate((main) => main.scrollTo(0, 0));
  await page.screenshot({ path: testInfo.outputPath('compare.png') });

  // Chat with the 2-bit model: streamed text, tokens/s.
  await nav(page, 'Chat');
  await page.getByLabel('Model 1').selectOption({ label: 'two-bit' });
  await page.getByLabel('Message').fill('Once upon a time, there was a little dog');
  await page.getByRole('button', { name: 'Send' }).click();
  const reply = page.getByTestId('chat-assistant').last();
  await expect(reply.locator('.chat-meta')).toContainText('tokens/s', { timeout: 60_000 });
  expect(((await reply.locator('.chat-text').textContent()) ?? '').trim().length).toBeGreaterThan(0);
  await expect(page.getByTestId('saved-chat')).toHaveCount(1);

  // Split view: one prompt, the original and the 2-bit model answer side by side.
  await page.getByTestId('split-view').check();
  await page.getByLabel('Model 1').selectOption({ label: 'stories260k' });
  await page.getByLabel('Model 2').selectOption({ label: 'two-bit' });
  await page.getByLabel('Message').fill('The cat sat');
  await page.getByRole('button', { name: 'Send' }).click();
  for (const pane of await page.getByTestId('chat-pane').all()) {
    await expect(pane.getByTestId('chat-assistant').last().locator('.chat-meta')).toContainText('tokens/s', { timeout: 60_000 });
  }
  await page.screenshot({ path: testInfo.outputPath('chat.png') });

  // Chats survive a reload (they are in the studio home).
  await page.reload();
  await nav(page, 'Chat');
  await expect(page.getByTestId('saved-chat')).not.toHaveCount(0);

  // The finished run in the dark theme.
  await nav(page, 'Runs');
  await page.getByRole('button', { name: 'two-bit', exact: true }).click();
  await expect(points(page)).toHaveCount(LINEARS);
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: testInfo.outputPath('run-done-dark.png') });
});

test('a cancelled run, a killed job process and a non-model folder each say so; the app keeps working', async ({ studioPage: page, studio }, testInfo) => {
  test.setTimeout(180_000);
  await openByPath(page, STORIES260K);
  await expect(page.getByTestId('inspection').getByRole('heading', { level: 2 })).toHaveText('stories260k');

  // Cancel mid-run: a clear message, the layers so far stay, Resume finishes it.
  // Enough calibration that the run is still going when Cancel is pressed, even on a fast machine.
  await startRun(page, '2-bit E8P', 'cancel-me', '64', '256');
  await expect.poll(async () => points(page).count(), { timeout: 60_000, intervals: [50] }).toBeGreaterThan(0);
  await page.getByTestId('cancel-run').click();
  await expect(page.getByTestId('run-cancelled')).toContainText('Cancelled after');
  await page.screenshot({ path: testInfo.outputPath('run-cancelled.png') });
  await page.getByTestId('resume-run').click();
  await expect(page.getByTestId('run-result')).toBeVisible({ timeout: 120_000 });
  await expect(points(page)).toHaveCount(LINEARS);

  // Kill the job process from outside (as the system does when memory runs out).
  await startRun(page, '4-bit RVQ', 'kill-me', '64', '256');
  await expect.poll(async () => points(page).count(), { timeout: 60_000, intervals: [50] }).toBeGreaterThan(0);
  const pid = await findQuantizeJobPid(studio.home);
  process.kill(pid, 'SIGKILL');
  await expect(page.getByTestId('run-error')).toContainText('killed', { timeout: 30_000 });
  await page.screenshot({ path: testInfo.outputPath('run-killed.png') });

  // Still working: the Runs list answers, and a non-model folder gets a clear message on New run.
  await nav(page, 'Runs');
  await expect(page.getByTestId('run-row')).toHaveCount(2);
  await nav(page, 'Models');
  const folder = testInfo.outputPath('holiday-photos');
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, 'beach.txt'), 'not a model');
  await openByPath(page, folder);
  await expect(page.getByTestId('inspection-error')).toContainText('This folder is not a model');
  await nav(page, 'Chat');
  await expect(page.getByTestId('chat-page')).toBeVisible();
});

test('a fine-tuned run draws its train and held-out curves', async ({ studioPage: page }, testInfo) => {
  test.setTimeout(180_000);
  await openByPath(page, STORIES260K);
  await expect(page.getByTestId('inspection').getByRole('heading', { level: 2 })).toHaveText('stories260k');
  await nav(page, 'New run');
  await page.getByRole('radiogroup', { name: 'Fine-tuning' }).getByRole('radio', { name: 'In-block', exact: true }).click();
  await page.getByLabel('Epochs').fill('3');
  await startRun(page, '2-bit E8P', 'tuned', '8', '128');
  await expect(page.getByTestId('finetune-chart')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('run-result')).toBeVisible({ timeout: 120_000 });
  // Three tuning steps per block (after q/k/v, o, gate/up), up to three epochs each.
  const epochs = Number(await page.getByTestId('finetune-chart').getAttribute('data-points'));
  expect(epochs).toBeGreaterThanOrEqual(config.num_hidden_layers * 3);
  await expect(page.getByTestId('run-progress')).toContainText('fine-tuning block, 3 epochs');
  await page.getByTestId('finetune-card').scrollIntoViewIfNeeded();
  await page.screenshot({ path: testInfo.outputPath('run-finetune.png') });
});

/** The pid of the running quantize job process: the worker child whose command line is the studio's worker. */
async function findQuantizeJobPid(home: string): Promise<number> {
  const { readdirSync, readFileSync: read } = await import('node:fs');
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = read(`/proc/${entry}/cmdline`, 'utf8');
      const env = read(`/proc/${entry}/environ`, 'utf8');
      // This test's server and its job processes carry this test's studio home.
      if (cmd.includes('worker.mjs') && env.includes(`QUIP_STUDIO_HOME=${home}`)) return Number(entry);
    } catch {
      // a process that went away, or one we may not read
    }
  }
  throw new Error('no running job process of this studio');
}
