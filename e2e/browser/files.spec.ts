// Issue #21 items 2, 6 and 7 in the browser face, against the real server: choosing a model folder,
// a GGUF file and a calibration text with the file browser the server serves (model folders marked,
// nothing outside the home folder, the studio home, the HF cache and mounted volumes); drag and drop
// says it needs the desktop app; a field the studio refuses is marked in the form's words; and when
// the server stops, the status bar turns red and says how to start it again.
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, STORIES260K, test } from '../fixtures/studio';

test('Browse: a model folder, a GGUF file and a text file, chosen in the file browser the server serves', async ({ studioPage: page, studio }) => {
  // A folder tree in the studio home (one of the browser's places): a model, a GGUF, a text.
  const mine = path.join(studio.home, 'mine');
  mkdirSync(path.join(mine, 'texts'), { recursive: true });
  cpSync(STORIES260K, path.join(mine, 'tiny-model'), { recursive: true });
  writeFileSync(path.join(mine, 'small.gguf'), 'GGUF');
  writeFileSync(path.join(mine, 'texts', 'held-out.txt'), 'Once upon a time.\n');
  writeFileSync(path.join(mine, '.secret.gguf'), 'hidden');

  await page.getByTestId('browse-model').click();
  const browser = page.getByTestId('file-browser');
  await expect(browser).toBeVisible();
  await browser.getByRole('button', { name: 'Studio home (imports and runs)' }).click();
  await expect(browser.getByTestId('file-browser-dir')).toHaveText(studio.home);
  await browser.getByRole('option', { name: /^mine/ }).click();
  await expect(browser.getByTestId('file-browser-dir')).toHaveText(mine);
  // Folders first (the model marked), then the .gguf; the text file and the hidden file are not shown.
  await expect(browser.getByTestId('file-entry')).toHaveText(['▸texts' + 'folder', '◆tiny-model' + 'model', '·small.gguf' + '4 B']);
  await expect(browser.getByRole('option', { name: /tiny-model/ })).toHaveAttribute('data-kind', 'model-folder');
  await browser.getByRole('option', { name: /tiny-model/ }).dblclick();
  await expect(browser).toHaveCount(0);
  await expect(page.getByTestId('inspection').getByRole('heading', { level: 2 })).toHaveText('tiny-model');
  await expect(page.getByLabel(/Model folder/)).toHaveValue(path.join(mine, 'tiny-model'));

  // Import GGUF: Browse fills the field with the chosen file.
  await page.getByTestId('browse-gguf').click();
  await browser.getByRole('button', { name: 'Studio home (imports and runs)' }).click();
  await browser.getByRole('option', { name: /^mine/ }).click();
  await browser.getByRole('option', { name: /small\.gguf/ }).click();
  await browser.getByTestId('file-browser-choose').click();
  await expect(page.getByLabel(/GGUF file/)).toHaveValue(path.join(mine, 'small.gguf'));

  // Dropping files needs the desktop app, and the drop zone says so.
  await expect(page.getByTestId('drop-zone')).toContainText('desktop app');

  // New run: the calibration text (text files shown, not .gguf).
  await page.getByTestId('quantize-this').click();
  await expect(page.getByTestId('estimate-size')).toBeVisible();
  await page.getByTestId('browse-calib-text').click();
  await browser.getByRole('button', { name: 'Studio home (imports and runs)' }).click();
  await browser.getByRole('option', { name: /^mine/ }).click();
  await expect(browser.getByTestId('file-entry')).toHaveText(['▸texts' + 'folder', '◆tiny-model' + 'model']);
  await browser.getByRole('option', { name: /^texts/ }).click();
  await browser.getByRole('option', { name: /held-out\.txt/ }).dblclick();
  await expect(page.getByLabel('Calibration text file')).toHaveValue(path.join(mine, 'texts', 'held-out.txt'));
  // The same text chosen for the perplexity: the form warns it would flatter the model.
  await page.getByLabel('Evaluation text file').fill(path.join(mine, 'texts', 'held-out.txt'));
  await expect(page.getByTestId('run-eval-text-warning')).toContainText('flatters the model');
  // Too few windows for the studio's rule: marked under the field, in the form's words.
  await page.getByLabel('Windows').fill('0');
  await expect(page.getByTestId('eval-windows-error')).toHaveText('0 is out of range: use a whole number of windows from 1 to 100,000 (default 40).');
  await expect(page.getByTestId('start-run')).toBeDisabled();
});

test('the file browser refuses a folder outside the places it shows', async ({ studioPage: page }) => {
  const answer = await page.evaluate(async () => {
    // The page's own connection to the server, as the file browser uses it.
    const ws = new WebSocket(`ws://${location.host}/api`);
    await new Promise((r) => (ws.onopen = r));
    const reply = new Promise<string>((r) => (ws.onmessage = (e) => r(String(e.data))));
    ws.send(JSON.stringify({ type: 'request', id: 1, channel: 'files.list', input: { dir: '/etc', choose: 'gguf' } }));
    const text = await reply;
    ws.close();
    return JSON.parse(text) as { reply: { ok: boolean; error?: { code: string; message: string } } };
  });
  expect(answer.reply.ok).toBe(false);
  expect(answer.reply.error!.code).toBe('OUTSIDE_ROOTS');
  expect(answer.reply.error!.message).toMatch(/^\/etc is outside the folders the studio shows/);
});

test('when the server stops, the status dot turns red and the bar says how to start it again', async ({ studioPage: page, studio }) => {
  await expect(page.getByTestId('status-bar')).toHaveAttribute('data-connection', 'connected');
  await expect(page.locator('.status-dot.ok')).toBeVisible();
  await studio.stop();
  const line = page.getByTestId('status-disconnected');
  await expect(line).toBeVisible();
  await expect(line).toContainText('Disconnected — the studio server stopped. Start it again with `npm start` (or `node dist/server.mjs`), then open the address it prints');
  await expect(page.getByTestId('status-bar')).toHaveAttribute('data-connection', 'disconnected');
  await expect(page.locator('.status-dot.ok')).toHaveCount(0);
  await expect(line.locator('.status-dot.bad')).toBeVisible();
  // A request now fails with the same words (not "Reload the page to reconnect").
  await page.getByRole('navigation', { name: 'Studio' }).getByRole('button', { name: 'Models', exact: true }).click();
  await page.screenshot({ path: test.info().outputPath('disconnected.png') });
});
