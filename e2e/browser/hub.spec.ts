// Hub search and download through a mock Hugging Face Hub on 127.0.0.1 (throttled so the download
// takes a few seconds), into the fresh Hugging Face cache of the test, then the inspection.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from '../fixtures/studio';

const REPO = 'test-org/stories260k';

test.use({ mockHub: true, hubFaults: { bytesPerSecond: 300_000 } });

test('searches the hub, downloads with a progress bar, then shows the inspection', async ({ studioPage: page, studio }, testInfo) => {
  await page.getByLabel('Search the Hugging Face Hub').fill('stories');
  await page.getByRole('button', { name: 'Search' }).click();
  const result = page.getByTestId('hub-result').filter({ hasText: REPO });
  await expect(result).toBeVisible();
  await expect(result).toContainText('1.23 k'); // downloads
  await expect(result).toContainText('♥ 5');

  await result.getByRole('button', { name: `Download ${REPO}` }).click();
  const row = page.getByTestId('download');
  await expect(row).toHaveAttribute('data-state', 'running');
  const bar = row.getByRole('progressbar');
  // Part-way: the bar and the byte count move while the file is still coming.
  await expect(async () => {
    const now = Number(await bar.getAttribute('aria-valuenow'));
    expect(now).toBeGreaterThan(0);
    expect(now).toBeLessThan(100);
  }).toPass({ timeout: 20_000 });
  await expect(row.getByTestId('download-bytes')).toContainText(' of ');
  await expect(row.getByTestId('download-rate')).toContainText('/s');
  await page.screenshot({ path: testInfo.outputPath('hub-downloading.png') });

  await expect(row).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
  const view = page.getByTestId('inspection');
  await expect(view.getByRole('heading', { level: 2 })).toHaveText(REPO);
  await expect(view).toContainText('Hugging Face Hub');
  await expect(page.getByTestId('linear-row')).toHaveCount(35);
  await expect(result.getByRole('button', { name: 'Open' })).toBeVisible();
  await page.screenshot({ path: testInfo.outputPath('hub-downloaded.png') });

  // The files landed in the standard cache layout of this test's HF_HOME.
  const snapshots = path.join(studio.hubCache, 'models--test-org--stories260k', 'snapshots');
  expect(existsSync(snapshots)).toBe(true);
  const [commit] = readdirSync(snapshots);
  expect(existsSync(path.join(snapshots, commit!, 'model.safetensors'))).toBe(true);
});

test('cancels a download and resumes it to completion', async ({ studioPage: page }) => {
  await page.getByLabel('Search the Hugging Face Hub').fill('stories');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('button', { name: `Download ${REPO}` }).click();
  const row = page.getByTestId('download');
  await expect(async () => expect(Number(await row.getByRole('progressbar').getAttribute('aria-valuenow'))).toBeGreaterThan(0)).toPass({ timeout: 20_000 });
  await row.getByRole('button', { name: 'Cancel' }).click();
  await expect(row).toHaveAttribute('data-state', 'cancelled');
  await expect(row).toContainText('Cancelled, resumable');

  await row.getByRole('button', { name: 'Resume' }).click();
  await expect(page.getByTestId('download')).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
  await expect(page.getByTestId('inspection').getByRole('heading', { level: 2 })).toHaveText(REPO);
});

test('a hub id that does not exist gives a clear message', async ({ studioPage: page }) => {
  await page.getByLabel(/Model folder/).fill('test-org/no-such-model');
  await page.getByRole('button', { name: 'Open', exact: true }).click();
  const card = page.getByTestId('inspection-error');
  await expect(card).toBeVisible();
  await expect(card).toContainText('test-org/no-such-model');
});

test.describe('with the connection cut part-way through the weights', () => {
  test.use({ hubFaults: { bytesPerSecond: 1_000_000, cut: { file: 'model.safetensors', afterBytes: 400_000, times: 1 } } });

  test('the download resumes where it stopped and ends with the inspection', async ({ studioPage: page, studio }) => {
    await page.getByLabel('Search the Hugging Face Hub').fill('stories');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('button', { name: `Download ${REPO}` }).click();
    await expect(page.getByTestId('download')).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
    await expect(page.getByTestId('inspection').getByRole('heading', { level: 2 })).toHaveText(REPO);
    // The second request for the file asked only for the rest of it.
    const gets = studio.hub!.requests.filter((r) => r.method === 'GET' && r.url.includes('/resolve/') && r.url.endsWith('model.safetensors'));
    expect(gets.length).toBeGreaterThanOrEqual(2);
    expect(gets.at(-1)!.range).toMatch(/^bytes=[1-9]\d*-$/);
  });
});
