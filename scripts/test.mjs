#!/usr/bin/env node
// `npm test`: builds what changed, then runs every suite of the project in turn and prints one
// closing line "N passed, N failed, N skipped" over all of them.
//   0. the TypeScript type check of the whole project (app, renderer, e2e)
//   1. native test programs (build/native/test_*), each against slow float64/brute-force references
//   1b. the same programs cross-built for arm64 and run under QEMU, so the NEON kernels are tested
//      (scripts/native-arm64.mjs; skipped without aarch64-linux-gnu-g++ and qemu-aarch64)
//   2. vitest: unit and integration tests of app/ and renderer/
//   3. Playwright: the browser face end to end in Debian Chromium (and the Electron face when an
//      Electron binary is installed)
// Options: --no-build, --only types|native|arm64|unit|e2e
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : null;
const totals = { passed: 0, failed: 0, skipped: 0 };
const suites = [];

function run(cmd, cmdArgs, opts = {}) {
  return spawnSync(cmd, cmdArgs, { cwd: root, stdio: opts.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit', encoding: 'utf8', env: { ...process.env, ...opts.env } });
}

function record(name, passed, failed, skipped = 0, crashed = false) {
  totals.passed += passed;
  totals.failed += failed + (crashed ? 1 : 0);
  totals.skipped += skipped;
  suites.push(`${name}: ${passed} passed, ${failed + (crashed ? 1 : 0)} failed${skipped ? `, ${skipped} skipped` : ''}`);
}

if (!args.includes('--no-build')) {
  const b = run(process.execPath, ['scripts/build.mjs']);
  if (b.status !== 0) process.exit(b.status ?? 1);
}
mkdirSync(path.join(root, 'test-results'), { recursive: true });

if (!only || only === 'types') {
  console.log('\n== typecheck');
  const r = run(process.execPath, ['node_modules/typescript/bin/tsc', '--noEmit', '-p', 'tsconfig.json']);
  record('typecheck', r.status === 0 ? 1 : 0, r.status === 0 ? 0 : 1);
}

if (!only || only === 'native') {
  const dir = path.join(root, 'build/native');
  const programs = readdirSync(dir).filter((f) => /^test_[a-z0-9_]+$/.test(f)).sort();
  let passed = 0, failed = 0, crashed = false;
  for (const p of programs) {
    console.log(`\n== native ${p}`);
    const r = run(path.join(dir, p), [], { capture: true });
    process.stdout.write(r.stdout ?? '');
    const m = /(\d+) passed, (\d+) failed/.exec(r.stdout ?? '');
    if (m) { passed += Number(m[1]); failed += Number(m[2]); }
    if (r.status !== 0 && (!m || Number(m[2]) === 0)) crashed = true;
  }
  record('native', passed, failed, 0, crashed);
}

if (!only || only === 'arm64') {
  console.log('\n== native arm64 (qemu)');
  const out = path.join(root, 'test-results/native-arm64.json');
  rmSync(out, { force: true });
  const r = run(process.execPath, ['scripts/native-arm64.mjs', '--summary', out, ...(args.includes('--no-build') ? ['--no-build'] : [])]);
  if (existsSync(out)) {
    const s = JSON.parse(readFileSync(out, 'utf8'));
    record('native arm64', s.passed, s.failed, s.skipped, s.crashed || (r.status !== 0 && s.failed === 0));
  } else record('native arm64', 0, 0, 0, true);
}

if (!only || only === 'unit') {
  console.log('\n== vitest');
  const out = path.join(root, 'test-results/vitest.json');
  const r = run(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json', `--outputFile=${out}`]);
  if (existsSync(out)) {
    const j = JSON.parse(readFileSync(out, 'utf8'));
    record('vitest', j.numPassedTests, j.numFailedTests, j.numPendingTests + j.numTodoTests, r.status !== 0 && j.numFailedTests === 0);
  } else record('vitest', 0, 0, 0, true);
}

if ((!only || only === 'e2e') && existsSync(path.join(root, 'playwright.config.ts'))) {
  console.log('\n== playwright');
  const out = path.join(root, 'test-results/playwright.json');
  const r = run(process.execPath, ['node_modules/@playwright/test/cli.js', 'test', '--reporter=list,json'], { env: { PLAYWRIGHT_JSON_OUTPUT_NAME: out } });
  if (existsSync(out)) {
    const s = JSON.parse(readFileSync(out, 'utf8')).stats;
    record('playwright', s.expected, s.unexpected + (s.flaky ?? 0), s.skipped, r.status !== 0 && s.unexpected === 0);
  } else record('playwright', 0, 0, 0, true);
}

console.log('\n' + suites.join('\n'));
console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed > 0 ? 1 : 0);
