// Tests run job processes from fresh bundles of their entries (the same esbuild settings as
// scripts/build.mjs), so they never depend on a stale dist/ or on another build running beside them.
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';

import { projectRoot } from '../util/paths.js';

export async function bundleForTest(entry: string, name: string): Promise<string> {
  const esbuild = await import('esbuild');
  const root = projectRoot();
  // Inside the repository, so the bundle finds node_modules and the native addon the usual way.
  const dir = path.join(root, 'node_modules', '.cache', 'quip-test-bundles', String(process.pid));
  mkdirSync(dir, { recursive: true });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const outfile = path.join(dir, `${name}.mjs`);
  await esbuild.build({
    entryPoints: [path.join(root, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    packages: 'external',
    logLevel: 'warning',
    banner: { js: "import { createRequire as __quipCreateRequire } from 'node:module'; const require = __quipCreateRequire(import.meta.url);" },
  });
  return outfile;
}
