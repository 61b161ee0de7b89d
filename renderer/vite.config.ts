// The renderer bundle: one static page the Electron window loads from file:// and the local server
// serves over http://127.0.0.1 — hence relative asset paths (base './').
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: here,
  base: './',
  // React's automatic JSX runtime through esbuild; no React plugin (no fast refresh needed).
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: path.resolve(here, '../dist/renderer'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // The strict CSP forbids inline scripts; keep every module a file.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    // One local bundle (React, zod, recharts) loaded from disk or 127.0.0.1; no network to split for.
    chunkSizeWarningLimit: 2048,
    rollupOptions: {
      // zod's sources carry esbuild-style /* @__PURE__ */ notes Rollup cannot place; harmless.
      onwarn(warning, warn) {
        if (warning.code === 'INVALID_ANNOTATION') return;
        warn(warning);
      },
    },
  },
});
