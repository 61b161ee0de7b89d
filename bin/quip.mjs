#!/usr/bin/env node
// The `quip` command: runs the built CLI bundle (npm install builds it; `npm run build` rebuilds).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.mjs');
if (!existsSync(cli)) {
  console.error('quip: the CLI is not built yet. Run `npm run build` in the studio folder first.');
  process.exit(1);
}
await import(cli);
