// The import rules that keep each concern in its home (docs/contributing.md, "Layering"), checked on
// the source text of every file under app/ and renderer/src/. The rules of the bottom layers (the
// renderer reaches app/ only through contract and domain; the domain is pure) are in
// app/domain/layering.test.ts; these are the others:
//   - test support (app/testing/) is for tests, e2e and benches only: the product never imports it.
//     A bench is a developer tool shipped inside `quip bench`, so it may use test support at run time
//     (`quip bench hub` serves its download from the mock hub); a product file may not, not even for a
//     default. vitest is imported by *.test.ts files alone, so nothing a bench pulls in needs it;
//   - the product never reads the test data beside a checkout (../shared): its defaults ship in assets/;
//   - the engine works without any face: app/engine imports nothing from the CLI, services, Electron
//     main/preload, the server, the worker, benches or test support; inside it, reading and running
//     models (model/, runtime/, gguf/, quip/) sits below quantizing them (quantize/, finetune/);
//   - no import cycles among app/'s product files, type-only imports included (native.ts imports the
//     native-types files, never the other way round).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';

import { projectRoot } from '../util/paths.js';

const root = projectRoot();

interface SourceFile {
  /** Relative to the project root, with forward slashes. */
  file: string;
  text: string;
  /** What it imports: project-relative paths for relative specifiers, package names otherwise. */
  imports: string[];
}

const isTest = (f: string) => /\.test\.tsx?$/.test(f);

function sources(dir: string): SourceFile[] {
  return readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.tsx?$/.test(f) && !f.endsWith('.d.ts'))
    .map((f) => {
      const file = path.posix.join(dir, f.split(path.sep).join('/'));
      const text = readFileSync(path.join(root, file), 'utf8');
      // import ... from 'x', export ... from 'x', import 'x', import('x'), require('x')
      const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"]([^'"\n]+)['"]/g)].map((m) => m[1]);
      const imports = specs.map((s) => (s.startsWith('.') ? path.posix.normalize(path.posix.join(path.posix.dirname(file), s)) : s));
      return { file, text, imports };
    });
}

const all = [...sources('app'), ...sources('renderer/src')];
const under = (p: string, ...folders: string[]) => folders.some((f) => p === f || p.startsWith(`${f}/`));

/** "file -> import" for every import of a file matching `who` that `banned` flags. */
function violations(who: (f: string) => boolean, banned: (imp: string) => boolean): string[] {
  return all.filter((s) => who(s.file)).flatMap((s) => s.imports.filter(banned).map((imp) => `${s.file} -> ${imp}`));
}

it('reads the imports it checks (the scan itself works)', () => {
  const cli = all.find((s) => s.file === 'app/testing/cli.ts');
  expect(cli?.imports).toContain('commander');
  const test = all.find((s) => s.file === 'app/testing/imports.test.ts');
  expect(test?.imports).toEqual(expect.arrayContaining(['vitest', 'app/util/paths.js']));
  expect(all.length).toBeGreaterThan(100);
});

it('keeps test support and vitest out of the product', () => {
  const product = (f: string) => !isTest(f) && !under(f, 'app/testing', 'app/bench');
  expect(violations(product, (imp) => under(imp, 'app/testing'))).toEqual([]);
  expect(violations((f) => !isTest(f), (imp) => imp === 'vitest' || imp.startsWith('vitest/'))).toEqual([]);
});

it('never reads ../shared (test data beside a checkout) from the product', () => {
  const product = (f: string) => !isTest(f) && !under(f, 'app/testing', 'app/bench');
  // A path built to it: '../shared/...' or path.join(..., '..', 'shared', ...).
  const reach = /['"`]\.\.\/shared\b|['"]\.\.['"]\s*,\s*['"]shared['"]/;
  expect(all.filter((s) => product(s.file) && reach.test(s.text)).map((s) => s.file)).toEqual([]);
  expect(reach.test("path.join(projectRoot(), '..', 'shared', 'data')") && reach.test("path.resolve('../shared/data/x')")).toBe(true);
});

it('keeps the engine free of the faces above it', () => {
  const faces = ['app/cli', 'app/services', 'app/main', 'app/preload', 'app/server', 'app/worker', 'app/bench', 'app/testing'];
  expect(violations((f) => under(f, 'app/engine') && !isTest(f), (imp) => under(imp, ...faces))).toEqual([]);
  const below = (f: string) => under(f, 'app/engine/model', 'app/engine/runtime', 'app/engine/gguf', 'app/engine/quip') && !isTest(f);
  expect(violations(below, (imp) => under(imp, 'app/engine/quantize', 'app/engine/finetune'))).toEqual([]);
});

it('has no import cycles in app/ (type-only imports count too)', () => {
  const files = all.filter((s) => under(s.file, 'app') && !isTest(s.file));
  const known = new Set(files.map((s) => s.file));
  // './x.js' -> app/.../x.ts, './dir/index.js' or './dir' -> app/.../dir/index.ts
  const resolve = (imp: string) =>
    [imp.replace(/\.js$/, '.ts'), imp.replace(/\.js$/, '.tsx'), `${imp}.ts`, `${imp}/index.ts`].find((c) => known.has(c) || existsSync(path.join(root, c)));
  const edges = new Map(files.map((s) => [s.file, s.imports.map(resolve).filter((d): d is string => !!d && known.has(d))]));
  // Depth-first search; a back edge closes a cycle, reported as the path around it.
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of edges.get(f) ?? []) {
      if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].join(' -> '));
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of edges.keys()) if (!state.has(f)) visit(f);
  expect(cycles).toEqual([]);
  expect(edges.get('app/engine/native.ts')).toContain('app/engine/native-types.ts');
});
