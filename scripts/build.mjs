#!/usr/bin/env node
// Builds everything the studio runs: the native addon (CMake through cmake-js, Node-API headers from
// node-api-headers), the Node bundles of app/ (esbuild) and the renderer (Vite).
//   node scripts/build.mjs [--only native|app|renderer] [--jobs N]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : null;
const jobs = args.includes('--jobs') ? Number(args[args.indexOf('--jobs') + 1]) : os.availableParallelism();
// A private native build folder (e.g. for a second checkout building side by side); the addon loader
// then needs QUIP_NATIVE_PATH=<dir>/Release/quip_native.node.
const nativeOut = args.includes('--native-out') ? args[args.indexOf('--native-out') + 1] : 'build/native';

function run(cmd, cmdArgs, env = process.env) {
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error(`build: ${cmd} ${cmdArgs.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

function buildNative() {
  // The machine's npm configuration (npm_config_* variables, e.g. nodedir) must not steer the build.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_config_')));
  run(process.execPath, [
    path.join(root, 'node_modules/cmake-js/bin/cmake-js'), 'compile',
    '--directory', 'native', '--out', nativeOut, '--config', 'Release', '--parallel', String(jobs),
  ], env);
}

async function buildApp() {
  const esbuild = await import('esbuild');
  const common = { bundle: true, platform: 'node', target: 'node20', sourcemap: true, packages: 'external', logLevel: 'warning' };
  const entries = [
    { in: 'app/cli/main.ts', out: 'dist/cli.mjs', format: 'esm' },
    { in: 'app/worker/main.ts', out: 'dist/worker.mjs', format: 'esm' },
    { in: 'app/server/main.ts', out: 'dist/server.mjs', format: 'esm' },
    // Electron loads main and a sandboxed preload as CommonJS.
    { in: 'app/main/main.ts', out: 'dist/main/main.cjs', format: 'cjs', external: ['electron'] },
    { in: 'app/preload/preload.ts', out: 'dist/preload/preload.cjs', format: 'cjs', external: ['electron'], packages: undefined },
  ];
  for (const e of entries) {
    if (!existsSync(path.join(root, e.in))) continue;
    await esbuild.build({
      ...common,
      ...(e.packages === undefined && 'packages' in e ? { packages: undefined } : {}),
      entryPoints: [path.join(root, e.in)],
      outfile: path.join(root, e.out),
      format: e.format,
      external: e.external ?? [],
      // ESM bundles that still meet CommonJS dependencies need require(). Electron main (CommonJS)
      // gets import.meta.url from __filename; the sandboxed preload may not require node modules.
      banner: e.format === 'esm'
        ? { js: "import { createRequire as __quipCreateRequire } from 'node:module'; const require = __quipCreateRequire(import.meta.url);" }
        : e.in === 'app/main/main.ts' ? { js: "const __quipImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" } : undefined,
      define: e.in === 'app/main/main.ts' ? { 'import.meta.url': '__quipImportMetaUrl' } : undefined,
    });
  }
}

function buildRenderer() {
  if (!existsSync(path.join(root, 'renderer/index.html'))) return;
  run(process.execPath, [path.join(root, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'renderer/vite.config.ts', '--logLevel', 'warn']);
}

if (!only || only === 'native') buildNative();
if (!only || only === 'app') await buildApp();
if (!only || only === 'renderer') buildRenderer();
