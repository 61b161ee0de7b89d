// End-to-end tests of the whole product. The browser project drives the browser face (the real
// local server from dist/server.mjs, real job processes, a mock hub on 127.0.0.1) in Debian's
// Chromium; the Electron project (e2e/electron) drives the desktop app when an Electron binary exists.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  // Not test-results/ itself: Playwright empties its output folder, and vitest reports live there.
  outputDir: 'test-results/e2e',
  timeout: 90_000,
  expect: { timeout: 30_000 },
  // The machine is shared and each test starts its own server and job processes.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  projects: [
    {
      name: 'browser',
      testDir: 'e2e/browser',
      use: {
        browserName: 'chromium',
        viewport: { width: 1440, height: 900 },
        screenshot: 'only-on-failure',
        trace: 'retain-on-failure',
        launchOptions: {
          executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
          args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        },
      },
    },
    {
      // Skips itself with a message where no Electron binary is installed.
      name: 'electron',
      testDir: 'e2e/electron',
      use: { screenshot: 'only-on-failure', trace: 'retain-on-failure' },
    },
  ],
});
