// Every page at real sizes, in the browser face at 1280 x 800 and 1920 x 1080: a SmolLM2-135M-shaped
// model (30 blocks, 210 linear layers) open on Models, New run from "Quantize this model", Runs with
// long names and runs of two base models, a fine-tuned run's page, Compare with every finished run,
// and Chat; and a GGUF import while it runs. On each: nothing overflows sideways (the document, the main area and every card), no chart
// label is cut at its chart's edge, and screenshots of the whole page are kept with the test.
// The runs are written into the studio home as the quantize job writes them (e2e/fixtures/layout-data.ts).
import path from 'node:path';
import type { Page, TestInfo } from '@playwright/test';
import { expect, openByPath, SHARED_DATA, test } from '../fixtures/studio';
import { SMOL_NAME, writeLayoutData } from '../fixtures/layout-data';

const SMOL_GGUF = path.join(SHARED_DATA, 'models', 'smollm2-135m-instruct-q4_1', 'SmolLM2-135M-Instruct.Q4_1.gguf');

async function nav(page: Page, label: string) {
  await page.getByRole('navigation', { name: 'Studio' }).getByRole('button', { name: label, exact: true }).click();
}

interface LayoutReport {
  overflow: string[];
  clipped: string[];
  charts: number;
  labels: number;
}

/**
 * What sticks out: any of the document, the main area and every card-like box that is wider inside
 * than it is (scrollWidth > clientWidth), and any SVG text of a chart outside its svg. `scrollable`
 * names boxes that may scroll inside themselves (a wide table in its card), which are not counted.
 */
async function layoutReport(page: Page, scrollable: string[] = []): Promise<LayoutReport> {
  return page.evaluate((scrollable) => {
    const overflow: string[] = [];
    const clipped: string[] = [];
    const describe = (el: Element) => {
      const id = el.getAttribute('data-testid');
      const title = el.querySelector('.card-title')?.textContent;
      return `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}${id ? `[${id}]` : ''}${title ? ` "${title}"` : ''}`;
    };
    const de = document.documentElement;
    if (de.scrollWidth > de.clientWidth) overflow.push(`document: ${de.scrollWidth} > ${de.clientWidth}`);
    const boxes = document.querySelectorAll('main, .page, .card, .chat-pane, .error-card, .info-card, .warnings, .answer, .table-wrap, .chart');
    for (const el of boxes) {
      if (scrollable.some((s) => el.matches(s))) continue;
      if (el.scrollWidth > el.clientWidth + 1) overflow.push(`${describe(el)}: ${el.scrollWidth} > ${el.clientWidth}`);
    }
    // Every card must also lie inside the main area (a card wider than its column sticks out of it).
    const main = document.querySelector('main')!.getBoundingClientRect();
    for (const el of document.querySelectorAll('.card')) {
      const r = el.getBoundingClientRect();
      if (r.width > 0 && (r.left < main.left - 1 || r.right > main.right + 1)) overflow.push(`${describe(el)} outside main: ${r.left}..${r.right} vs ${main.left}..${main.right}`);
    }
    let labels = 0;
    const svgs = [...document.querySelectorAll('.chart svg.recharts-surface')];
    for (const svg of svgs) {
      const box = svg.getBoundingClientRect();
      const chart = svg.closest('[data-testid]')?.getAttribute('data-testid') ?? 'chart';
      for (const t of svg.querySelectorAll('text')) {
        const text = t.textContent?.trim();
        if (!text) continue;
        const r = t.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;
        labels++;
        if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1) {
          clipped.push(`${chart}: "${text}" at ${Math.round(r.left)}..${Math.round(r.right)} x ${Math.round(r.top)}..${Math.round(r.bottom)}, svg ${Math.round(box.left)}..${Math.round(box.right)} x ${Math.round(box.top)}..${Math.round(box.bottom)}`);
        }
      }
      // Tick labels of one axis must not run into each other.
      for (const axis of svg.querySelectorAll('.recharts-xAxis .recharts-cartesian-axis-ticks')) {
        const rects = [...axis.querySelectorAll('text')].map((t) => t.getBoundingClientRect()).filter((r) => r.width > 0).sort((a, b) => a.left - b.left);
        for (let i = 1; i < rects.length; i++) if (rects[i]!.left < rects[i - 1]!.right) clipped.push(`${chart}: x tick labels overlap at ${Math.round(rects[i]!.left)}`);
      }
    }
    return { overflow, clipped, charts: svgs.length, labels };
  }, scrollable);
}

/** Screenshots of the whole page, one per screenful of the main area, kept with the test. */
async function shoot(page: Page, testInfo: TestInfo, name: string) {
  const main = page.getByRole('main');
  const { scrollHeight, clientHeight } = await main.evaluate((m) => ({ scrollHeight: m.scrollHeight, clientHeight: m.clientHeight }));
  const screens = Math.min(6, Math.max(1, Math.ceil(scrollHeight / clientHeight)));
  const size = page.viewportSize()!;
  for (let i = 0; i < screens; i++) {
    await main.evaluate((m, y) => m.scrollTo(0, y), i * clientHeight);
    const file = testInfo.outputPath(`${size.width}x${size.height}-${name}${screens > 1 ? `-${i + 1}` : ''}.png`);
    await page.screenshot({ path: file });
    await testInfo.attach(`${size.width}x${size.height} ${name}${screens > 1 ? ` ${i + 1}/${screens}` : ''}`, { path: file, contentType: 'image/png' });
  }
  await main.evaluate((m) => m.scrollTo(0, 0));
}

/** Lets the charts take their card's width (ResizeObserver), then checks the page and shoots it. */
async function checkPage(page: Page, testInfo: TestInfo, name: string, scrollable: string[] = []) {
  await page.waitForTimeout(300);
  const report = await layoutReport(page, scrollable);
  await shoot(page, testInfo, name);
  expect.soft(report.overflow, `${name}: boxes wider inside than they are`).toEqual([]);
  expect.soft(report.clipped, `${name}: chart labels cut at the chart's edge or overlapping`).toEqual([]);
  return report;
}

for (const viewport of [
  { width: 1280, height: 800 },
  { width: 1920, height: 1080 },
]) {
  test.describe(`at ${viewport.width} x ${viewport.height}`, () => {
    test.use({ viewport });

    test('every page holds at SmolLM2 size: 30 blocks, 210 layers, long names, two base models', async ({ studioPage: page, studio }, testInfo) => {
      test.setTimeout(120_000);
      const data = writeLayoutData(studio.home);
      await page.reload();
      await expect(page.getByTestId('status-threads')).toHaveText(/^\d+ threads$/);

      // Models: the inspection of a 30-block model.
      await openByPath(page, data.smolDir);
      await expect(page.getByTestId('inspection').getByRole('heading', { level: 2 })).toHaveText(SMOL_NAME);
      await expect(page.getByTestId('linear-summary')).toContainText('210 linear layers in 30 blocks');
      await checkPage(page, testInfo, 'models');

      // New run from "Quantize this model": that model is chosen, the name placeholder follows it.
      await page.getByTestId('quantize-this').click();
      await expect(page.getByTestId('new-run-page')).toBeVisible();
      await expect(page.getByLabel('Model to quantize')).toHaveValue(data.smolDir);
      await expect(page.getByLabel('Run name')).toHaveAttribute('placeholder', `${SMOL_NAME}-2bit-e8p-<time>`);
      await expect(page.getByTestId('estimate-size')).toBeVisible();
      await checkPage(page, testInfo, 'new-run');

      // Runs: no sideways scrollbar; every row shows its time and its actions inside the table.
      await nav(page, 'Runs');
      const rows = page.getByTestId('run-row');
      await expect(rows).toHaveCount(data.all.length);
      await checkPage(page, testInfo, 'runs');
      const table = await page.locator('.runs-table').boundingBox();
      for (const row of await rows.all()) {
        for (const cell of [row.locator('td').nth(6), row.getByTestId('reveal-run'), row.getByTestId('delete-run')]) {
          const b = (await cell.boundingBox())!;
          expect(b.x + b.width, 'inside the table').toBeLessThanOrEqual(table!.x + table!.width + 1);
        }
      }
      await expect(rows.filter({ hasText: 'cancelled' }).getByRole('button', { name: 'Resume' })).toBeVisible();
      // The three 2-bit E8P runs of SmolLM2 read apart by fine-tuning and calibration.
      const settings = await page.getByTestId('run-settings').allTextContents();
      const e8p2 = settings.filter((s) => s.startsWith('2-bit E8P'));
      expect(new Set(e8p2).size).toBe(e8p2.length);
      expect(settings).toContain('2-bit E8P · FT block+e2e · 128×512');

      // The fine-tuned run: 210 points, its tuning curves, and actions for a finished run.
      const tuned = data.finished[0]!;
      await page.getByRole('button', { name: tuned, exact: true }).click();
      await expect(page.getByTestId('layer-point')).toHaveCount(210);
      await expect(page.getByTestId('finetune-chart')).toBeVisible();
      for (const id of ['chat-with-run', 'compare-run', 'reveal-run', 'delete-run']) await expect(page.getByTestId(id)).toBeVisible();
      await checkPage(page, testInfo, 'run');

      // Compare: every finished run, grouped by base model, each with its own 16-bit point.
      await nav(page, 'Compare');
      await expect(page.getByTestId('compare-group')).toHaveCount(2);
      for (const chip of await page.getByTestId('compare-chip').all()) await chip.getByRole('checkbox').check();
      await expect(page.getByTestId('perplexity-chart')).toHaveAttribute('data-points', String(data.finished.length));
      await expect(page.getByTestId('overlay-chart')).toHaveCount(2);
      await expect(page.getByTestId('compare-row-16bit')).toHaveCount(2);
      await expect(page.getByTestId('compare-answer').and(page.locator('[data-original]'))).toHaveCount(2);
      // The numbers table may scroll inside its card, never the page.
      await checkPage(page, testInfo, 'compare', ['[data-testid="compare-numbers"]']);

      // Chat, then back: the Compare choice is still there.
      await nav(page, 'Chat');
      await expect(page.getByTestId('chat-page')).toBeVisible();
      await checkPage(page, testInfo, 'chat');
      await nav(page, 'Compare');
      await expect(page.getByTestId('perplexity-chart')).toHaveAttribute('data-points', String(data.finished.length));
    });
  });
}

test.describe('at 1280 x 800', () => {
  test.use({ viewport: { width: 1280, height: 800 } });

  test('a GGUF import in progress: its long job message and Cancel stay inside the card', async ({ studioPage: page }, testInfo) => {
    test.setTimeout(120_000);
    await page.getByLabel(/GGUF file/).fill(SMOL_GGUF);
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const card = page.getByTestId('import-gguf-card');
    // While it runs the card shows the job's message, a long unbroken name such as "Import
    // SmolLM2-135M-Instruct.Q4_1.gguf" or a tensor's, beside Cancel. The import takes seconds: check
    // and shoot at once, as soon as Cancel can be pressed.
    const cancel = card.getByRole('button', { name: 'Cancel' });
    await expect(cancel).toBeEnabled({ timeout: 60_000 });
    // Which message is on screen at that moment depends on the machine's speed; for a check that does
    // not, the longest kind of message (a tensor's full name) is put in its place for the measurement.
    // (The text node React made is changed in place, so React still owns every node.)
    await page.getByTestId('gguf-import-status').evaluate((el) => {
      const node = [...el.childNodes].find((n) => n.nodeType === Node.TEXT_NODE && n.textContent);
      if (node) (node as Text).data = 'Converting tensors: model.layers.12.mlp.down_proj.weight';
    });
    const [c, b, report] = [await card.boundingBox(), await cancel.boundingBox(), await layoutReport(page)];
    const file = testInfo.outputPath('1280x800-import-running.png');
    await page.screenshot({ path: file });
    await testInfo.attach('1280x800 import running', { path: file, contentType: 'image/png' });
    expect(b!.x + b!.width, 'Cancel inside the card').toBeLessThanOrEqual(c!.x + c!.width);
    expect(b!.x, 'Cancel inside the card').toBeGreaterThanOrEqual(c!.x);
    expect(report.overflow).toEqual([]);
    // Cancel stops it (unless the last tensors were written meanwhile).
    await cancel.click({ timeout: 5_000 }).catch(() => {});
    await expect(page.getByTestId('gguf-import')).toHaveAttribute('data-state', /cancelled|done/, { timeout: 30_000 });
  });
});
