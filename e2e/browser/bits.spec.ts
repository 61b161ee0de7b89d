// Bits where they matter (issue #22) in the browser face, on real runs of stories260k made with the
// CLI into the studio home (seconds each): Compare's token by token over a 2-bit and a 4-bit run (one
// row per run, the 2-bit row shaded darker on the same scale, top-5 lists on hover), and a mixed run
// (--target-bpw 3) with its bit map on the Run page and "mixed 3.0 bpw" in Runs.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { expect, ROOT, STORIES260K, test } from '../fixtures/studio';

async function nav(page: Page, label: string) {
  await page.getByRole('navigation', { name: 'Studio' }).getByRole('button', { name: label, exact: true }).click();
}

/** `quip quantize` of stories260k into the studio home's runs/ (found there as a CLI run). */
function quantize(home: string, name: string, flags: string[]) {
  execFileSync(process.execPath, [path.join(ROOT, 'bin', 'quip.mjs'), 'quantize', STORIES260K, '--out', path.join(home, 'runs', name), '--calib-samples', '4', '--ctx', '64', '--eval-windows', '2', ...flags], {
    cwd: ROOT,
    stdio: 'pipe',
    timeout: 120_000,
  });
}

/** Mean relative luminance of the shaded tokens of a row (their computed backgrounds). */
function rowLuminance(page: Page, runId: string): Promise<number> {
  return page.getByTestId('token-row').and(page.locator(`[data-run="${runId}"]`)).evaluate((row) => {
    const lum = (c: string) => {
      const [r, g, b] = (c.match(/[\d.]+/g) ?? ['0', '0', '0']).slice(0, 3).map((x) => Number(x) / 255).map((x) => (x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4));
      return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
    };
    const tokens = [...row.querySelectorAll<HTMLElement>('[data-testid="kld-token"][data-kld]')];
    return tokens.reduce((a, t) => a + lum(getComputedStyle(t).backgroundColor), 0) / tokens.length;
  });
}

test('token by token: a 2-bit row reads darker than a 4-bit one; a mixed run shows its bit map', async ({ studio, studioPage: page }, testInfo) => {
  test.setTimeout(240_000);
  quantize(studio.home, 'two-bit', ['--bits', '2']);
  quantize(studio.home, 'four-bit', ['--bits', '4']);
  quantize(studio.home, 'mixed-3', ['--target-bpw', '3.0']);

  // Runs: the mixed run by its target; its Run page has the bit map.
  await nav(page, 'Runs');
  await page.getByRole('button', { name: 'Refresh' }).click();
  await expect(page.getByTestId('run-row')).toHaveCount(3);
  await expect(page.getByTestId('run-row').filter({ hasText: 'mixed-3' }).getByTestId('run-settings')).toContainText('mixed 3.0 bpw');
  await page.getByRole('button', { name: 'mixed-3', exact: true }).click();
  const map = page.getByTestId('bit-map');
  await expect(map).toBeVisible();
  await expect(page.getByTestId('bitmap-cell')).toHaveCount(35);
  await expect(page.getByTestId('bitmap-legend')).toContainText('16-bit');
  await page.getByTestId('bitmap-cell').nth(9).hover();
  await expect(page.getByTestId('bitmap-tooltip')).toContainText('sensitivity (KLD at 2 bits)');
  await expect(page.getByTestId('bitmap-tooltip')).toContainText('width:');
  await page.getByTestId('bitmap-card').screenshot({ path: testInfo.outputPath('bit-map.png') });

  // Compare the 2-bit and 4-bit runs token by token.
  await nav(page, 'Compare');
  for (const name of ['two-bit', 'four-bit']) await page.getByTestId('compare-chip').filter({ hasText: name }).getByRole('checkbox').check();
  const card = page.getByTestId('token-kld-card');
  await card.scrollIntoViewIfNeeded();
  await card.getByTestId('token-kld-run').click();
  await expect(page.getByTestId('token-row')).toHaveCount(2, { timeout: 60_000 });
  await expect(page.getByTestId('kld-legend')).toBeVisible();
  // The text once per row, the same tokens in both.
  const texts = await page.getByTestId('token-row').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('[data-testid="kld-token"]')].map((t) => t.textContent).join('')));
  expect(texts[0]!.length).toBeGreaterThan(200);
  expect(texts[1]).toBe(texts[0]);
  expect(texts[0]).toContain('Robert Boulter');
  // Same scale: the 2-bit row is darker on average (lower luminance) than the 4-bit row.
  const [dark, light] = [await rowLuminance(page, 'two-bit'), await rowLuminance(page, 'four-bit')];
  expect(dark).toBeLessThan(light);
  const means = await page.getByTestId('token-row').evaluateAll((rows) => Object.fromEntries(rows.map((r) => [r.getAttribute('data-run'), Number(r.getAttribute('data-mean-kld'))])));
  expect(means['two-bit']).toBeGreaterThan(means['four-bit']!);
  // Hover a token: both models' top-5 with probabilities.
  const token = page.getByTestId('token-row').and(page.locator('[data-run="two-bit"]')).getByTestId('kld-token').nth(12);
  await token.hover();
  const tip = page.getByTestId('kld-tooltip');
  await expect(tip).toBeVisible();
  await expect(tip).toContainText('KL divergence');
  await expect(tip).toContainText('16-bit original');
  await expect(tip.locator('ol')).toHaveCount(2);
  await expect(tip.locator('ol').first().locator('li')).toHaveCount(5);
  await expect(tip.locator('ol').last().locator('li')).toHaveCount(5);
  await expect(tip).toContainText('%');
  await page.screenshot({ path: testInfo.outputPath('token-kld-hover.png') });
  await card.screenshot({ path: testInfo.outputPath('token-kld.png') });
  // Keyboard: focus moves along the row and shows the same lists.
  await token.focus();
  await page.keyboard.press('ArrowRight');
  await expect(tip).toContainText('token 14');
});
