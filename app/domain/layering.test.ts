// Imports go downward: the renderer reaches the app only through app/contract and app/domain; the
// contract builds on the domain alone; the domain is pure (zod, plain TypeScript and the app's
// UserError: no node builtins, no engine, native, services or worker code), so every layer and every
// face can import it. Scans the source files' import specifiers.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { projectRoot } from '../util/paths.js';

const ROOT = projectRoot();

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') out.push(...sources(rel));
    } else if (/\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

const isTest = (file: string) => /\.test\.tsx?$/.test(file);

/** Every module a file imports or re-exports (static, side-effect and dynamic imports). */
export function importsOf(text: string): string[] {
  const found = new Set<string>();
  const patterns = [/^\s*(?:import|export)\s[^;'"]*?\sfrom\s*['"]([^'"]+)['"]/gm, /^\s*import\s*['"]([^'"]+)['"]/gm, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const re of patterns) for (const m of text.matchAll(re)) found.add(m[1]);
  return [...found];
}

/** Where an import lands: a path relative to the project root for relative imports, else the bare name. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return spec;
  return path.relative(ROOT, path.resolve(ROOT, path.dirname(file), spec)).split(path.sep).join('/');
}

function violations(files: string[], allowed: (to: string, from: string) => boolean): string[] {
  const bad: string[] = [];
  for (const file of files) {
    for (const spec of importsOf(readFileSync(path.join(ROOT, file), 'utf8'))) {
      const to = target(file, spec);
      if (!allowed(to, file)) bad.push(`${file} imports ${spec}`);
    }
  }
  return bad;
}

const under = (to: string, dir: string) => to === dir || to.startsWith(`${dir}/`);

describe('layering', () => {
  it('finds imports of every form', () => {
    const text = `import { a } from './a.js';\nimport type {\n  B,\n} from "../b";\nexport * from './c.js';\nimport './d.css';\nconst e = await import('./e.js');\n// the import's words in a comment 'x'`;
    expect(importsOf(text).sort()).toEqual(['../b', './a.js', './c.js', './d.css', './e.js']);
  });

  it('the renderer imports from app/ only the contract and the domain', () => {
    // Its tests may check their fixtures against the engine itself (renderer/src/api/fixtures).
    const files = sources('renderer').filter((f) => !isTest(f));
    const bad = violations(files, (to) => !under(to, 'app') || under(to, 'app/contract') || under(to, 'app/domain'));
    expect(bad).toEqual([]);
  });

  it('the contract builds on zod and the domain only', () => {
    const files = sources('app/contract').filter((f) => !isTest(f));
    const bad = violations(files, (to) => to === 'zod' || under(to, 'app/contract') || under(to, 'app/domain'));
    expect(bad).toEqual([]);
  });

  it('the domain is pure: zod, itself and the app\'s UserError; no node builtins, engine, services or worker', () => {
    const files = sources('app/domain').filter((f) => !isTest(f));
    expect(files).toContain('app/domain/quantize/codebooks.ts');
    const bad = violations(files, (to) => to === 'zod' || under(to, 'app/domain') || to.replace(/\.js$/, '') === 'app/util/errors');
    expect(bad).toEqual([]);
  });

  it('nothing imports the quantization vocabulary from its old engine homes', () => {
    const old = /^app\/engine\/(quantize\/(settings|events|record)|finetune\/(settings|events|record))(\.js)?$/;
    const files = [...sources('app'), ...sources('renderer'), ...sources('e2e')];
    expect(violations(files, (to) => !old.test(to))).toEqual([]);
  });
});
