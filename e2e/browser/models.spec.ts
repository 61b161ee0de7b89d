// The browser face, end to end: the real server, the real inspector in a job process, Chromium.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, openByPath, parseFactor, STORIES260K, test } from '../fixtures/studio';

const config = JSON.parse(readFileSync(path.join(STORIES260K, 'config.json'), 'utf8'));

test('opens stories260k by path and shows its inspection', async ({ studioPage: page }, testInfo) => {
  await openByPath(page, STORIES260K);
  const view = page.getByTestId('inspection');
  await expect(view.getByRole('heading', { level: 2 })).toHaveText('stories260k');

  const arch = page.getByTestId('architecture-card');
  const stat = (label: string) => arch.locator('.stat', { has: page.getByText(label, { exact: true }) }).locator('dd');
  await expect(stat('Hidden size')).toHaveText(String(config.hidden_size));
  await expect(stat('Layers')).toHaveText(String(config.num_hidden_layers));
  await expect(stat('MLP size')).toHaveText(String(config.intermediate_size));

  const linears = config.num_hidden_layers * 7;
  await expect(page.getByTestId('linear-summary')).toContainText(`${linears} linear layers in ${config.num_hidden_layers} blocks`);
  await expect(page.getByTestId('linear-row')).toHaveCount(linears);

  // Every transform size the model needs is factorised as n = K x 2^k.
  const sizes = page.getByTestId('transform-sizes').locator('li');
  const texts = await sizes.allTextContents();
  const ns = texts.map((t) => Number(/^([\d,]+) =/.exec(t)![1]!.replace(/,/g, ''))).sort((a, b) => a - b);
  expect(ns).toEqual([...new Set([config.hidden_size, config.intermediate_size, config.num_key_value_heads * config.head_dim])].sort((a, b) => a - b));
  for (const t of texts) {
    const n = Number(/^([\d,]+) =/.exec(t)![1]!.replace(/,/g, ''));
    const [k, e] = parseFactor(t);
    expect(k * 2 ** e, t).toBe(n);
  }
  // The MLP width 172 = 4 x 43 has no power-of-two part QuIP#'s list can use beyond K itself.
  expect(texts.find((t) => t.startsWith(`${config.intermediate_size} =`))).toMatch(new RegExp(`^${config.intermediate_size} = \\d+ × 2`));

  for (const bits of [2, 3, 4, 16]) await expect(page.getByTestId(`size-${bits}`)).toBeVisible();
  await expect(page.getByTestId('tokenizer-card')).toContainText('BPE');
  await expect(page.getByTestId('recent-model')).toContainText('stories260k');

  await page.screenshot({ path: testInfo.outputPath('models-stories260k.png') });
  await page.getByTestId('linear-card').screenshot({ path: testInfo.outputPath('models-stories260k-layers.png') });
  await page.getByRole('main').evaluate((main) => main.scrollTo(0, 0));
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: testInfo.outputPath('models-stories260k-dark.png') });
});

test('a folder that is not a model shows a clear error card and the app keeps working', async ({ studioPage: page }, testInfo) => {
  const folder = testInfo.outputPath('holiday-photos');
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, 'beach.txt'), 'not a model');

  await openByPath(page, folder);
  const card = page.getByTestId('inspection-error');
  await expect(card).toBeVisible();
  await expect(card).toContainText('This folder is not a model');
  await expect(card).toContainText(folder);
  await expect(card).toContainText('config.json');
  await page.screenshot({ path: testInfo.outputPath('models-not-a-model.png') });

  // Still working: the built-in sample opens, and the error is gone.
  await page.getByRole('button', { name: 'Open the built-in sample (stories260k)' }).click();
  await expect(page.getByTestId('inspection')).toContainText('Built-in sample');
  await expect(card).toHaveCount(0);
});

test('a model type the studio does not support says which ones it does', async ({ studioPage: page }, testInfo) => {
  const folder = testInfo.outputPath('gpt2-model');
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ model_type: 'gpt2', n_embd: 64, n_layer: 2 }));

  await openByPath(page, folder);
  const card = page.getByTestId('inspection-error');
  await expect(card).toContainText('This model type is not supported');
  await expect(card).toContainText('gpt2');
  await expect(card).toContainText('llama, mistral, qwen2');
  await expect(card).toContainText(folder);
  await page.screenshot({ path: testInfo.outputPath('models-unsupported-type.png') });
});

test('the recent list survives a reload and reopens a model', async ({ studioPage: page }) => {
  await openByPath(page, STORIES260K);
  await expect(page.getByTestId('inspection')).toBeVisible();
  await page.reload();
  const recent = page.getByTestId('recent-model');
  await expect(recent).toContainText('stories260k');
  await recent.getByRole('button', { name: /^stories260k/ }).click();
  await expect(page.getByTestId('linear-row')).toHaveCount(config.num_hidden_layers * 7);
});
