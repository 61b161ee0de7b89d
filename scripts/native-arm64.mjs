#!/usr/bin/env node
// The native test programs cross-built for arm64 (so the *_neon.cc kernels are compiled and tested)
// and run under user-mode QEMU. Needs Debian's g++-aarch64-linux-gnu and qemu-user; without them it
// prints one line saying it is skipped. Only the test programs are built (no Node addon).
//   node scripts/native-arm64.mjs [--no-build] [--jobs N] [--out DIR] [--summary FILE]
// Default folder build/native-arm64, 2 build jobs. The summary file (JSON: passed, failed, crashed,
// skipped, seconds) is what `npm test` reads.
//
// Under QEMU the NEON code runs ~50x slower than natively, so test_quip_codebook runs smaller: its
// brute-force nearest-point checks on QUIP_TEST_NEAREST_VECTORS = 2,000 vectors instead of 100,000
// and its Gaussian MSE figures on QUIP_TEST_MSE_GROUPS = 20,000 groups instead of 200,000 (the
// x86-64 run keeps the full sizes); every other test runs at its normal size.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const outDir = path.resolve(root, opt('--out', 'build/native-arm64'));
const jobs = String(Number(opt('--jobs', '2')));
const summaryFile = opt('--summary', null);
const sysroot = '/usr/aarch64-linux-gnu';
const reduced = { QUIP_TEST_NEAREST_VECTORS: '2000', QUIP_TEST_MSE_GROUPS: '20000' };
const started = Date.now();

function onPath(cmd) {
  return (process.env.PATH ?? '').split(path.delimiter).some((d) => d && existsSync(path.join(d, cmd)));
}

function finish(summary) {
  const s = { passed: 0, failed: 0, crashed: false, skipped: 0, ...summary, seconds: Math.round((Date.now() - started) / 100) / 10 };
  if (summaryFile) {
    mkdirSync(path.dirname(path.resolve(root, summaryFile)), { recursive: true });
    writeFileSync(path.resolve(root, summaryFile), JSON.stringify(s) + '\n');
  }
  if (!s.skipped) console.log(`native arm64 (qemu): ${s.passed} passed, ${s.failed} failed${s.crashed ? ' (a program crashed)' : ''} in ${s.seconds} s`);
  process.exit(s.failed > 0 || s.crashed ? 1 : 0);
}

const missing = ['aarch64-linux-gnu-g++', 'qemu-aarch64', 'cmake'].filter((c) => !onPath(c));
if (missing.length || !existsSync(sysroot)) {
  console.log(`native arm64: skipped (needs ${missing.length ? missing.join(' and ') + ' on PATH' : sysroot}; Debian: apt-get install g++-aarch64-linux-gnu qemu-user)`);
  finish({ skipped: 1 });
}

if (!args.includes('--no-build') || !existsSync(path.join(outDir, 'CMakeCache.txt'))) {
  const run = (cmd, cmdArgs) => {
    const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) {
      console.error(`native arm64: ${cmd} ${cmdArgs.join(' ')} failed (exit ${r.status ?? r.signal})`);
      finish({ crashed: true });
    }
  };
  if (!existsSync(path.join(outDir, 'CMakeCache.txt'))) {
    run('cmake', [
      '-S', 'native', '-B', outDir, ...(onPath('ninja') ? ['-G', 'Ninja'] : []),
      `-DCMAKE_TOOLCHAIN_FILE=${path.join(root, 'native/cmake/aarch64-linux-gnu.cmake')}`, '-DCMAKE_BUILD_TYPE=Release',
    ]);
  }
  run('cmake', ['--build', outDir, '--parallel', jobs]);
}

const programs = readdirSync(outDir).filter((f) => /^test_[a-z0-9_]+$/.test(f)).sort();
let passed = 0, failed = 0, crashed = programs.length === 0;
for (const p of programs) {
  console.log(`\n== native arm64 ${p}`);
  const t0 = Date.now();
  const r = spawnSync('qemu-aarch64', ['-L', sysroot, path.join(outDir, p)], {
    cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8',
    env: { ...reduced, ...process.env },
  });
  process.stdout.write(r.stdout ?? '');
  console.log(`   (${((Date.now() - t0) / 1000).toFixed(1)} s under qemu)`);
  const m = /(\d+) passed, (\d+) failed/.exec(r.stdout ?? '');
  if (m) { passed += Number(m[1]); failed += Number(m[2]); }
  if (r.status !== 0 && (!m || Number(m[2]) === 0)) crashed = true;
}
finish({ passed, failed, crashed });
