// The quality table's goals follow from its rows: closer-to-16-bit, the 4.5-bit moonshot over every
// llama.cpp type at or under 4.5 bits per weight, and rows left unmeasured.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { parseKeepSpec, parseSweepSpec } from './quality-sweep.js';
import { formatQualityMarkdown, KEPT_HEADING, keptSection, qualityGoals, quipRowName, type QualityRow } from './quality.js';

const row = (name: string, by: QualityRow['by'], bpw: number, ppl: number | null, variant?: string): QualityRow => ({ name, by, linearBitsPerWeight: bpw, ppl, gap: null, seconds: 1, variant });

describe('bench quality goals', () => {
  it('judges each goal from the measured rows', () => {
    const rows = [
      row('16-bit', 'ours', 16, 10),
      row('QuIP# 4-bit (rvq4, no fine-tuning)', 'ours', 4.02, 10.3),
      row('QuIP# 3-bit (rvq3, no fine-tuning)', 'ours', 3.02, 11),
      row('QuIP# 2-bit (e8p, no fine-tuning)', 'ours', 2.02, 20),
      row('Q4_K_M', 'llama.cpp', 5.5, 10.2),
      row('IQ4_XS', 'llama.cpp', 4.4, 10.9),
      row('Q2_K', 'llama.cpp', 3.3, 30),
      row('IQ2_XXS', 'llama.cpp', 2.9, 19),
    ];
    const g = qualityGoals(rows);
    expect(g.map((x) => x.met)).toEqual([false, null, false, false]);
    // IQ4_XS (4.4 bits) counts against the 3-bit moonshot, Q4_K_M (5.5 bits) does not; it is the
    // 4-bit goal's comparison at comparable size.
    expect(g[0].detail).toBe('QuIP# 4-bit 10.300 at 4.02 bits/w (+3.00%) vs Q4_K_M 10.200 at 5.50 bits/w (+2.00%); 16-bit 10.000. The closest llama.cpp file of at most 4.5 bits/w: IQ4_XS 10.900 at 4.40 bits/w (+9.00%)');
    expect(g[2].detail).toMatch(/IQ4_XS/);
    expect(g[2].detail).not.toMatch(/Q4_K_M/);
    rows[5].ppl = 11.5;
    rows[1].ppl = 10.1;
    rows[7].ppl = 25;
    expect(qualityGoals(rows).map((x) => x.met)).toEqual([true, null, true, true]);
  });

  it('leaves goals unmeasured without llama.cpp rows, and says so in the markdown', () => {
    const rows = [row('16-bit', 'ours', 16, 10), row('QuIP# 4-bit (rvq4, no fine-tuning)', 'ours', 4.02, 10.3)];
    const goals = qualityGoals(rows);
    expect(goals.every((x) => x.met === null)).toBe(true);
    const md = formatQualityMarkdown(
      { model: 'm', ctx: 512, windows: 2, tokensScored: 510, threads: 2, calibration: { text: 'wiki.valid.raw', samples: 8, ctx: 512 }, llamaCpp: null, parity: null, rows, goals, notes: ['llama.cpp rows skipped'] },
      'quip bench quality',
    );
    expect(md).toMatch(/\| QuIP# 4-bit \(rvq4, no fine-tuning\) \| ours \| 4\.02 \| 10\.3000 \|/);
    expect(md).toMatch(/not measured/);
    expect(md).toMatch(/Reproduce: `quip bench quality`/);
  });

  it('shows KLD and top-token agreement beside perplexity, and judges the 4-bit goal on both', () => {
    const rows = [
      { ...row('16-bit', 'ours', 16, 10), kld: 0, kldPlusMinus: 0, sameTop: 1 },
      { ...row('QuIP# 4-bit (rvq4, no fine-tuning)', 'ours', 4.02, 10.1), kld: 0.0123, kldPlusMinus: 0.0004, sameTop: 0.9312 },
      { ...row('Q4_K_M', 'llama.cpp', 5.5, 10.2), kld: 0.0101, kldPlusMinus: 0.0003, sameTop: 0.94 },
      row('IQ4_XS', 'llama.cpp', 4.4, 10.9),
    ];
    // Closer in perplexity (10.1 against 10.2) but not in KLD: not met.
    const g = qualityGoals(rows);
    expect(g[0].met).toBe(false);
    expect(g[0].detail).toMatch(/; KLD 0\.01230 vs 0\.01010/);
    rows[1].kld = 0.009;
    expect(qualityGoals(rows)[0].met).toBe(true);
    const md = formatQualityMarkdown(
      { model: 'm', ctx: 512, windows: 2, tokensScored: 510, threads: 2, calibration: { text: 'wiki.valid.raw', samples: 8, ctx: 512 }, llamaCpp: null, parity: null, rows, goals: g, notes: [] },
      'quip bench quality',
    );
    expect(md).toMatch(/\| perplexity \| vs 16-bit \| KLD vs 16-bit \| same top token \| note \|/);
    expect(md).toMatch(/\| QuIP# 4-bit \(rvq4, no fine-tuning\) \| ours \| 4\.02 \| 10\.1000 \| - \| 0\.00900 ± 0\.00040 \| 93\.12% \|/);
    // A row without the figure (a failed peer, an older cache) shows a dash.
    expect(md).toMatch(/\| IQ4_XS \| llama\.cpp \| 4\.40 \| 10\.9000 \| - \| - \| - \|/);
  });

  it('measures the share of the 2-bit gap that fine-tuning closes, against the run on the same calibration', () => {
    const rows = [
      row('16-bit', 'ours', 16, 10),
      row(quipRowName(2, 'e8p', 'none'), 'ours', 2.02, 20, ''),
      row(`${quipRowName(2, 'e8p', 'none')} [calibration 8 x 512]`, 'ours', 2.02, 30, 'calibration 8 x 512'),
      row(`${quipRowName(2, 'e8p', 'block')} [calibration 8 x 512]`, 'ours', 2.1, 21, 'calibration 8 x 512'),
      row(`${quipRowName(2, 'e8p', 'block+e2e')} [calibration 8 x 512]`, 'ours', 2.1, 19, 'calibration 8 x 512'),
    ];
    // Against the 8-sequence baseline: (30 - 19) / (30 - 10) = 55% closed by the better tuned row.
    let g = qualityGoals(rows)[1];
    expect(g.met).toBe(true);
    expect(g.detail).toMatch(/19\.000 \(in-block \+ e2e fine-tuned\) at 2\.10 bits\/w closes 55%/);
    expect(g.detail).toMatch(/21\.000 \(in-block fine-tuned\) at 2\.10 bits\/w closes 45%/);
    rows[4].ppl = 22;
    g = qualityGoals(rows)[1];
    expect(g.met).toBe(false);
    // The 2-bit moonshot takes the best 2-bit row, whichever it is.
    expect(qualityGoals([...rows, row('IQ2_XXS', 'llama.cpp', 3.9, 19.5)])[3]).toMatchObject({ met: false, detail: expect.stringMatching(/^QuIP# 2-bit 20\.000 at 2\.02/) });
    // Without tuned rows the goal is unmeasured.
    expect(qualityGoals(rows.slice(0, 3))[1].met).toBeNull();
  });

  it('names each QuIP# row by its fine-tuning', () => {
    expect(quipRowName(2, 'e8p', 'none')).toBe('QuIP# 2-bit (e8p, no fine-tuning)');
    expect(quipRowName(3, 'rvq3', 'block')).toBe('QuIP# 3-bit (rvq3, fine-tuned in-block)');
    expect(quipRowName(4, 'rvq4', 'block+e2e')).toBe('QuIP# 4-bit (rvq4, fine-tuned in-block + end-to-end)');
  });

  it('keeps the hand-written section below the table when the file is rewritten', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'quality-md-'));
    try {
      const file = path.join(dir, 'q.md');
      expect(keptSection(file)).toBe('');
      writeFileSync(file, `# old table\n\n| a |\n\n${KEPT_HEADING}\n\nrho sweep\n`);
      expect(keptSection(file)).toBe(`\n${KEPT_HEADING}\n\nrho sweep\n`);
      writeFileSync(file, '# a table only\n');
      expect(keptSection(file)).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads a sweep spec: each codebook its rho list, or its default; bad names and values refused', () => {
    expect(parseSweepSpec('e8p:0.9,1.03; rvq4:0.8')).toEqual([
      { codebook: 'e8p', rho: 0.9 },
      { codebook: 'e8p', rho: 1.03 },
      { codebook: 'rvq4', rho: 0.8 },
    ]);
    expect(parseSweepSpec('rvq3')).toEqual([{ codebook: 'rvq3', rho: 0.98 }]);
    expect(() => parseSweepSpec('e9p:1')).toThrow(/unknown codebook "e9p"/);
    expect(() => parseSweepSpec('e8p:0,1')).toThrow(/not a positive number/);
    expect(parseKeepSpec('')).toEqual([[]]);
    expect(parseKeepSpec('k; q,k;down')).toEqual([['k'], ['q', 'k'], ['down']]);
    expect(() => parseKeepSpec('kv')).toThrow(/unknown layer "kv"/);
  });
});
