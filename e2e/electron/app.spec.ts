// The desktop face: launches dist/main/main.cjs in Electron (only where an Electron binary is
// installed) and checks the window's security defaults, the preload's window.studio, and that the
// Models page inspects stories260k through IPC and the utilityProcess job process.
import { _electron as electron, expect, test, type ElectronApplication } from '@playwright/test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const STORIES260K = path.resolve(ROOT, '..', 'shared', 'data', 'models', 'stories260k');

function electronBinary(): string | null {
  try {
    const bin = createRequire(import.meta.url)('electron') as unknown;
    return typeof bin === 'string' && existsSync(bin) ? bin : null;
  } catch {
    return null;
  }
}

const binary = electronBinary();
test.skip(!binary, 'No Electron binary is installed (ELECTRON_SKIP_BINARY_DOWNLOAD=1), so the desktop face is not tested here; the browser project covers the same UI.');

let app: ElectronApplication;
let home: string;

test.beforeAll(async () => {
  home = mkdtempSync(path.join(os.tmpdir(), 'quip-electron-home-'));
  app = await electron.launch({
    executablePath: binary!,
    // Chromium refuses to start its OS sandbox as root (containers); the renderer stays sandboxed by webPreferences.
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), path.join(ROOT, 'dist', 'main', 'main.cjs')],
    env: { ...process.env, QUIP_STUDIO_HOME: home, HF_HUB_OFFLINE: '1' },
  });
});

test.afterAll(async () => {
  await app?.close();
  rmSync(home, { recursive: true, force: true });
});

test('opens the Models page with window.studio and no Node in the renderer', async () => {
  const win = await app.firstWindow();
  await expect(win.getByRole('heading', { name: 'Models', level: 1 })).toBeVisible();
  expect(await win.evaluate(() => typeof (window as unknown as { studio?: unknown }).studio)).toBe('object');
  expect(await win.evaluate(() => typeof (window as unknown as { require?: unknown }).require)).toBe('undefined');
  expect(await win.evaluate(() => typeof (window as unknown as { process?: unknown }).process)).toBe('undefined');
  expect(win.url()).toBe('studio://app/index.html');

  expect(await app.evaluate(({ app: a }) => a.getPath('userData'))).toBe(home);

  const info = await win.evaluate(() => (window as unknown as { studio: { app: { info(): Promise<{ face: string; studioHome: string }> } } }).studio.app.info());
  expect(info).toMatchObject({ face: 'electron', studioHome: home });

  // window.open is denied and navigation away is blocked.
  expect(await win.evaluate(() => window.open('https://example.com') === null)).toBe(true);
  await win.evaluate(() => {
    window.location.href = 'https://example.com';
  });
  await win.waitForTimeout(300);
  expect(win.url()).toBe('studio://app/index.html');
});

test('inspects stories260k from the Models page', async () => {
  const win = await app.firstWindow();
  await win.getByLabel(/Model folder/).fill(STORIES260K);
  await win.getByRole('button', { name: 'Open', exact: true }).click();
  await expect(win.getByTestId('inspection').getByRole('heading', { level: 2 })).toHaveText('stories260k');
});
