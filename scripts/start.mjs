#!/usr/bin/env node
// `npm start`: the desktop app when an Electron binary is installed; otherwise the same UI in the
// browser, served on 127.0.0.1 with a per-launch token (the URL is printed and opened if possible).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);

function electronBinary() {
  try {
    const bin = createRequire(import.meta.url)('electron'); // the path of the binary, when installed
    return typeof bin === 'string' && existsSync(bin) ? bin : null;
  } catch {
    return null; // installed with ELECTRON_SKIP_BINARY_DOWNLOAD=1
  }
}

function need(file) {
  if (!existsSync(path.join(root, file))) {
    console.error(`${file} is missing: run \`npm run build\` first.`);
    process.exit(1);
  }
}

/** Best effort: a desktop without a browser opener is fine, the URL is printed. */
function openBrowser(url) {
  const [cmd, cmdArgs] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(cmd, cmdArgs, { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // no opener
  }
}

const electron = electronBinary();
if (electron) {
  need('dist/main/main.cjs');
  const child = spawn(electron, [path.join(root, 'dist/main/main.cjs'), ...args], { stdio: 'inherit' });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  console.log('No Electron binary is installed, so QuIP# Studio opens in your browser instead.');
  need('dist/server.mjs');
  const { startServer } = await import(pathToFileURL(path.join(root, 'dist/server.mjs')).href);
  const portArg = args.indexOf('--port');
  const server = await startServer({ port: portArg >= 0 ? Number(args[portArg + 1]) : 0 });
  console.log(`QuIP# Studio is open at ${server.url}`);
  if (!args.includes('--no-open')) openBrowser(server.url);
  const stop = () => void server.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
