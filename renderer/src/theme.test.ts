import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { BITS_COLORS, KIND_COLORS, kindGroup } from './theme';

const css = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), 'styles', 'app.css'), 'utf8');
const light = css.slice(css.indexOf(':root {'), css.indexOf('@media (prefers-color-scheme: dark)'));
const cssVar = (name: string) => new RegExp(`--${name}:\\s*(#[0-9a-f]{6});`).exec(light)?.[1];

it('chart colours match the stylesheet', () => {
  expect(KIND_COLORS['q/k/v']).toBe(cssVar('kind-qkv'));
  expect(KIND_COLORS.o).toBe(cssVar('kind-o'));
  expect(KIND_COLORS['gate/up']).toBe(cssVar('kind-gateup'));
  expect(KIND_COLORS.down).toBe(cssVar('kind-down'));
  for (const bits of [2, 3, 4, 16] as const) expect(BITS_COLORS[bits]).toBe(cssVar(`bits-${bits}`));
});

it('groups layer kinds as the charts colour them', () => {
  expect(['q', 'k', 'v', 'o', 'gate', 'up', 'down'].map((k) => kindGroup(k as never))).toEqual(['q/k/v', 'q/k/v', 'q/k/v', 'o', 'gate/up', 'gate/up', 'down']);
});
