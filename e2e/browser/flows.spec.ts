// No dead ends, and form errors in the person's words, in the browser face with SmolLM2-sized runs
// (e2e/fixtures/layout-data.ts): a finished run leads to Chat and Compare; New run starts with the
// model the person came from; a Samples field with "abc" or 0 is marked with what is allowed, never
// "Invalid input for runs.estimate" or a CLI flag; few samples warn.
import type { Page } from '@playwright/test';
import { expect, openByPath, test } from '../fixtures/studio';
import { SMOL_NAME, writeLayoutData } from '../fixtures/layout-data';

async function nav(page: Page, label: string) {
  await page.getByRole('navigation', { name: 'Studio' }).getByRole('button', { name: label, exact: true }).click();
}

test('a finished run leads to Chat and Compare; New run starts with the model the person came from', async ({ studioPage: page, studio }) => {
  const data = writeLayoutData(studio.home);
  await page.reload();
  await expect(page.getByTestId('status-threads')).toHaveText(/^\d+ threads$/);
  // The sample is open on Models, but the person goes to a SmolLM2 run: New run offers SmolLM2.
  await page.getByRole('button', { name: 'Open the sample (stories260k)' }).click();
  await expect(page.getByTestId('inspection').getByRole('heading', { level: 2 })).toHaveText('stories260k');
  await nav(page, 'Runs');
  const run = data.finished[1]!;
  await page.getByRole('button', { name: run, exact: true }).click();
  await expect(page.getByTestId('run-result')).toBeVisible();
  await nav(page, 'New run');
  await expect(page.getByLabel('Model to quantize')).toHaveValue(data.smolDir);
  await expect(page.getByLabel('Run name')).toHaveAttribute('placeholder', `${SMOL_NAME}-2bit-e8p-<time>`);
  await page.getByRole('radio', { name: /3-bit RVQ/ }).click();
  await expect(page.getByLabel('Run name')).toHaveAttribute('placeholder', `${SMOL_NAME}-3bit-rvq3-<time>`);

  // Back on the run: Compare adds it to the chosen runs, Chat opens it in the chat.
  await nav(page, 'Runs');
  await page.getByRole('button', { name: run, exact: true }).click();
  await page.getByTestId('compare-run').click();
  await expect(page.getByTestId('compare-page')).toBeVisible();
  await expect(page.getByTestId('compare-chip').filter({ hasText: run.slice(-15) }).getByRole('checkbox')).toBeChecked();
  await expect(page.getByTestId('perplexity-chart')).toHaveAttribute('data-points', '1');
  await nav(page, 'Runs');
  await page.getByRole('button', { name: run, exact: true }).click();
  await page.getByTestId('chat-with-run').click();
  await expect(page.getByTestId('chat-page')).toBeVisible();
  await expect(page.getByLabel('Model 1')).toHaveValue(`${studio.home}/runs/${run}`);

  // "Quantize this model" on the inspection opens New run with that model.
  await nav(page, 'Models');
  await openByPath(page, data.smolDir);
  await expect(page.getByTestId('inspection').getByRole('heading', { level: 2 })).toHaveText(SMOL_NAME);
  await page.getByTestId('quantize-this').click();
  await expect(page.getByLabel('Model to quantize')).toHaveValue(data.smolDir);
});

test('New run: "abc" and 0 in Samples are marked with what is allowed; under 8 samples warns', async ({ studioPage: page }, testInfo) => {
  await page.getByRole('button', { name: 'Open the sample (stories260k)' }).click();
  await expect(page.getByTestId('inspection').getByRole('heading', { level: 2 })).toHaveText('stories260k');
  await page.getByTestId('quantize-this').click();
  await expect(page.getByTestId('estimate-size')).toBeVisible();
  const samples = page.getByLabel('Samples');
  await samples.fill('abc');
  await expect(page.getByTestId('run-samples-error')).toHaveText('"abc" is not a number: type a whole number, like 128.');
  await expect(samples).toHaveAttribute('aria-invalid', 'true');
  await expect(page.getByTestId('form-problems')).toContainText('Calibration samples');
  await expect(page.getByTestId('start-run')).toBeDisabled();
  await expect(page.getByTestId('estimate-error')).toHaveCount(0);
  await page.getByTestId('calibration-card').scrollIntoViewIfNeeded();
  const file = testInfo.outputPath('new-run-samples-abc.png');
  await page.screenshot({ path: file });
  await testInfo.attach('new run: "abc" in Samples', { path: file, contentType: 'image/png' });
  await samples.fill('0');
  await expect(page.getByTestId('run-samples-error')).toContainText('0 is out of range');
  await expect(page.getByTestId('run-samples-error')).not.toContainText('--');
  await samples.fill('4');
  await expect(page.getByTestId('run-samples-error')).toHaveCount(0);
  await expect(page.getByTestId('run-samples-warning')).toContainText('Under 8 samples');
  await expect(page.getByTestId('start-run')).toBeEnabled();
});
