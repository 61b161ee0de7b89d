// SmolLM2-135M-Instruct from llama.cpp's Q4_1 GGUF, end to end in the browser face: import it through
// the Models page (the job process converts it into the studio home), see its inspection with the
// lossy notice, quantize it to 4 bits with a little calibration and chat with the result.
import path from 'node:path';
import type { Page } from '@playwright/test';
import { expect, SHARED_DATA, test } from '../fixtures/studio';

const GGUF = path.join(SHARED_DATA, 'models', 'smollm2-135m-instruct-q4_1', 'SmolLM2-135M-Instruct.Q4_1.gguf');
const NAME = 'SmolLM2-135M-Instruct.Q4_1';

async function nav(page: Page, label: string) {
  await page.getByRole('navigation', { name: 'Studio' }).getByRole('button', { name: label, exact: true }).click();
}

test('imports SmolLM2 from a Q4_1 GGUF, says it is lossy, quantizes it to 4 bits and chats', async ({ studioPage: page, studio }, testInfo) => {
  test.setTimeout(300_000);
  const t0 = Date.now();
  await page.getByLabel(/GGUF file/).fill(GGUF);
  await page.getByRole('button', { name: 'Import', exact: true }).click();

  const view = page.getByTestId('inspection');
  await expect(view.getByRole('heading', { level: 2 })).toHaveText(NAME, { timeout: 120_000 });
  await expect(page.getByTestId('gguf-import')).toHaveAttribute('data-state', 'done');
  await expect(view).toContainText(path.join(studio.home, 'models', NAME));
  const arch = page.getByTestId('architecture-card');
  const stat = (label: string) => arch.getByText(label, { exact: true }).locator('xpath=following-sibling::*[1]');
  await expect(stat('Layers')).toHaveText('30');
  await expect(stat('Hidden size')).toHaveText('576');
  await expect(page.getByTestId('linear-summary')).toContainText('210 linear layers in 30 blocks');
  const note = page.getByTestId('import-note');
  await expect(note).toContainText('Imported from a quantized GGUF: already lossy');
  await expect(note).toContainText('baseline every comparison');
  await page.screenshot({ path: testInfo.outputPath('smollm2-imported.png') });
  const importSeconds = (Date.now() - t0) / 1000;

  // The imported folder is a model like any other: a 4-bit run with a little calibration.
  const t1 = Date.now();
  await nav(page, 'New run');
  await expect(page.getByLabel('Model to quantize')).toHaveValue(path.join(studio.home, 'models', NAME));
  await page.getByRole('radio', { name: /4-bit RVQ/ }).click();
  await page.getByLabel('Samples').fill('2');
  await page.getByLabel('Length (tokens)').fill('64');
  await page.getByLabel('Run name').fill('smol-4bit');
  await expect(page.getByTestId('estimate-size')).toBeVisible();
  await page.getByTestId('start-run').click();
  await expect(page.getByTestId('run-page')).toBeVisible();
  await expect(page.getByTestId('run-result')).toBeVisible({ timeout: 200_000 });
  await expect(page.getByTestId('layer-point')).toHaveCount(210);
  await page.screenshot({ path: testInfo.outputPath('smollm2-run.png') });
  const runSeconds = (Date.now() - t1) / 1000;

  // Chat with the 4-bit model (its chat template comes from the GGUF), greedy so the answer is fixed.
  const t2 = Date.now();
  await nav(page, 'Chat');
  await page.getByLabel('Temperature').fill('0');
  await page.getByLabel('Model 1').selectOption({ label: 'smol-4bit' });
  await page.getByLabel('Message').fill('What is the capital of France?');
  await page.getByRole('button', { name: 'Send' }).click();
  const reply = page.getByTestId('chat-assistant').last();
  await expect(reply.locator('.chat-meta')).toContainText('tokens/s', { timeout: 90_000 });
  await expect(reply.locator('.chat-meta')).toContainText('chat template');
  await expect(reply.locator('.chat-text')).toContainText('Paris');
  await page.screenshot({ path: testInfo.outputPath('smollm2-chat.png') });
  console.log(`import ${importSeconds.toFixed(1)} s, 4-bit run ${runSeconds.toFixed(1)} s, chat ${((Date.now() - t2) / 1000).toFixed(1)} s`);
});
