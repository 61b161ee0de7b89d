// @vitest-environment jsdom
// Bits where they matter (issue #22), against the in-memory StudioApi: New run's target bits per
// weight (presets off, the allocation pass in the estimate, the target in the output size and the
// start), the Run page's bit map of a mixed run with hover details, "mixed 3.0 bpw" in Runs and in
// Compare's numbers, and Compare's token by token (one row per run on one scale, top-5 on hover and
// on keyboard focus, groups per base model).
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunDetail, RunLayer } from '../../../app/contract/index';
import { RunDetail as RunDetailSchema } from '../../../app/contract/index';
import { estimateRun, estimateWeightBytes, resolveSettings } from '../../../app/domain/quantize/index';
import { createFakeStudio, FAKE_TOKEN_TEXT, type FakeStudio } from '../api/fake';
import { stories260k } from '../api/fixtures';
import runsJson from '../api/fixtures/stories260k.runs.json';
import { App } from '../App';
import { kldColor } from '../components/compare/TokenKld';
import { resetUiState } from '../state/ui';

const two: RunDetail = RunDetailSchema.parse(runsJson.two);
const four: RunDetail = RunDetailSchema.parse(runsJson.four);
const DIR = stories260k.source.path;
const WIDTHS: Array<NonNullable<RunLayer['width']>> = ['e8p', 'rvq3', 'rvq4', 'f16'];

/** A finished mixed run of stories260k: the 2-bit run's layers with widths and sensitivities. */
const mixed: RunDetail = RunDetailSchema.parse({
  ...runsJson.two,
  runId: 'mixed-3',
  name: 'mixed-3',
  dir: '/studio/runs/mixed-3',
  settings: { ...runsJson.two.settings, targetBpw: 3 },
  bitsPerWeight: 3.004,
  layers: runsJson.two.layers.map((l, i) => ({ ...l, width: WIDTHS[i % 4], kld2: 0.01 * (i + 1), ...(i % 4 === 3 ? { proxyLoss: 0 } : {}) })),
});

function renderStudio(runs: RunDetail[] = []): FakeStudio {
  const fake = createFakeStudio({ models: { [DIR]: stories260k }, runs });
  render(<App api={fake.api} />);
  return fake;
}
const nav = (label: string) => fireEvent.click(within(screen.getByRole('navigation', { name: 'Studio' })).getByRole('button', { name: label }));

describe('mixed widths and token by token', () => {
  beforeEach(() => resetUiState());
  afterEach(() => cleanup());

  it('New run: a target bits per weight turns the presets off, counts its allocation pass and sizes the output at the target', async () => {
    const fake = renderStudio();
    fireEvent.change(screen.getByLabelText(/Model folder/), { target: { value: DIR } });
    fireEvent.click(screen.getByRole('button', { name: 'Open' }));
    await waitFor(() => expect(screen.getByTestId('recent-model')).toBeTruthy());
    nav('New run');
    await waitFor(() => expect(screen.getByTestId('estimate-size').textContent).toMatch(/KiB/));
    // Off by default: uniform bits, no slider.
    const toggle = within(screen.getByTestId('target-bpw')).getByRole('switch');
    expect(toggle).toHaveProperty('checked', false);
    expect(screen.queryByTestId('target-bpw-slider')).toBeNull();
    fireEvent.click(toggle);
    for (const p of within(screen.getByRole('radiogroup', { name: 'Preset' })).getAllByRole('radio')) {
      expect(p).toHaveProperty('disabled', true);
      expect(p.getAttribute('aria-checked')).toBe('false');
    }
    expect(screen.getByTestId('target-bpw-hint').textContent).toMatch(/2, 3 or 4 bits, or stays 16-bit, by its measured sensitivity/);
    // The slider and the number field move together.
    const slider = screen.getByTestId('target-bpw-slider') as HTMLInputElement;
    expect(slider.min).toBe('2');
    expect(slider.max).toBe('6');
    expect(slider.step).toBe('0.1');
    fireEvent.change(slider, { target: { value: '3.5' } });
    expect(screen.getByLabelText('Bits per weight')).toHaveProperty('value', '3.5');
    fireEvent.change(screen.getByLabelText('Bits per weight'), { target: { value: '2.5' } });
    expect(slider.value).toBe('2.5');
    fireEvent.change(screen.getByLabelText('Samples'), { target: { value: '8' } });
    await waitFor(() => expect(screen.getByTestId('estimate-target').textContent).toContain('2.5 bits per weight'));
    // The estimate is the domain's: the allocation pass counted, the output at the target.
    const settings = resolveSettings({ targetBpw: 2.5, calibSamples: 8 });
    const e = estimateRun(stories260k.architecture, settings, 2, stories260k.architecture.contextLength);
    expect(e.seconds.allocation).toBeGreaterThan(0);
    await waitFor(() => expect(screen.getByTestId('estimate-card').textContent).toContain("measuring each layer's sensitivity"));
    const estimate = fake.calls.filter((c) => c.channel === 'runs.estimate').pop()!.input as { settings: { targetBpw: number } };
    expect(estimate.settings.targetBpw).toBe(2.5);
    const bytes = estimateWeightBytes(stories260k.architecture, settings);
    expect(bytes).toBeGreaterThan(estimateWeightBytes(stories260k.architecture, resolveSettings({ bits: 2 })));
    // Out of range: the field says so, nothing starts.
    fireEvent.change(screen.getByLabelText('Bits per weight'), { target: { value: '7' } });
    await waitFor(() => expect(screen.getByTestId('run-target-bpw-error').textContent).toMatch(/from 2 to 6/));
    expect(screen.getByTestId('start-run')).toHaveProperty('disabled', true);
    fireEvent.change(screen.getByLabelText('Bits per weight'), { target: { value: '3' } });
    await waitFor(() => expect(screen.getByTestId('start-run')).toHaveProperty('disabled', false));
    expect(screen.getByTestId('start-run').textContent).toBe('Start mixed 3.0 bpw run');
    fireEvent.click(screen.getByTestId('start-run'));
    await waitFor(() => expect(screen.getByTestId('run-page')).toBeTruthy());
    const start = fake.calls.find((c) => c.channel === 'runs.start')!.input as { settings: Record<string, unknown> };
    expect(start.settings).toMatchObject({ targetBpw: 3, calibSamples: 8 });
    expect([...fake.runs.values()][0]!.settings!.targetBpw).toBe(3);
    // Turned off again: uniform bits.
    nav('New run');
    await waitFor(() => expect(screen.getByTestId('estimate-size')).toBeTruthy());
  });

  it('Run page: the bit map of a mixed run, its legend and hover details; Runs and Compare say "mixed 3.0 bpw"', async () => {
    renderStudio([two, mixed]);
    nav('Runs');
    await waitFor(() => expect(screen.getAllByTestId('run-row')).toHaveLength(2));
    const settingsText = screen.getAllByTestId('run-settings').map((s) => s.textContent);
    expect(settingsText.some((t) => t!.startsWith('mixed 3.0 bpw · no FT · 8×128'))).toBe(true);
    fireEvent.click(screen.getByRole('button', { name: 'mixed-3' }));
    await waitFor(() => expect(screen.getByTestId('bit-map')).toBeTruthy());
    const cells = screen.getAllByTestId('bitmap-cell');
    expect(cells).toHaveLength(mixed.layers.length);
    expect(cells.map((c) => c.getAttribute('data-width')).slice(0, 4).sort()).toEqual([...WIDTHS].sort());
    const legend = screen.getByTestId('bitmap-legend').textContent!;
    for (const label of ['2-bit E8P', '3-bit RVQ', '4-bit RVQ', '16-bit']) expect(legend).toContain(label);
    expect(legend).toContain(`${mixed.layers.filter((l) => l.width === 'rvq3').length} layers`);
    // Hover: the layer, its width, proxy loss and measured sensitivity.
    const layer = mixed.layers.find((l) => l.width === 'rvq4')!;
    fireEvent.mouseEnter(screen.getByRole('gridcell', { name: `${layer.name}: 4-bit RVQ` }));
    const tip = screen.getByTestId('bitmap-tooltip').textContent!;
    expect(tip).toContain(layer.name);
    expect(tip).toContain('4-bit RVQ');
    expect(tip).toContain('proxy loss');
    expect(tip).toMatch(/sensitivity \(KLD at 2 bits\) [\d.e+-]+ nats/);
    // Keyboard focus shows the same; a 16-bit layer has no proxy loss.
    const kept = mixed.layers.find((l) => l.width === 'f16')!;
    fireEvent.focus(screen.getByRole('gridcell', { name: `${kept.name}: 16-bit (kept)` }));
    expect(screen.getByTestId('bitmap-tooltip').textContent).toContain('kept at 16 bits');
    // A uniform run has no bit map.
    nav('Runs');
    fireEvent.click(screen.getByRole('button', { name: two.name }));
    await waitFor(() => expect(screen.getByTestId('run-result')).toBeTruthy());
    expect(screen.queryByTestId('bitmap-card')).toBeNull();
    // Compare's numbers name the mixed run by its target.
    nav('Compare');
    await waitFor(() => expect(screen.getAllByTestId('compare-chip')).toHaveLength(2));
    for (const chip of screen.getAllByTestId('compare-chip')) fireEvent.click(within(chip).getByRole('checkbox'));
    await waitFor(() => expect(screen.getAllByTestId('compare-row')).toHaveLength(2));
    expect(screen.getAllByTestId('compare-row').map((r) => r.children[1]!.firstChild!.textContent).sort()).toEqual(['2-bit E8P', 'mixed 3.0 bpw']);
  });

  it('Compare: token by token, one row per run on one scale, top-5 on hover and keyboard focus, per base model', async () => {
    const smol: RunDetail = { ...four, runId: 'smol-4bit', name: 'smol-4bit', dir: '/studio/runs/smol-4bit', modelDir: '/models/SmolLM2-135M', modelName: 'SmolLM2-135M' };
    const fake = renderStudio([two, four, smol]);
    nav('Compare');
    await waitFor(() => expect(screen.getAllByTestId('compare-chip')).toHaveLength(3));
    for (const name of [two.name, four.name, 'smol-4bit']) fireEvent.click(within(screen.getAllByTestId('compare-chip').find((c) => c.textContent!.includes(name))!).getByRole('checkbox'));
    const card = await waitFor(() => screen.getByTestId('token-kld-card'));
    fireEvent.click(within(card).getByTestId('token-kld-run'));
    await waitFor(() => expect(screen.getByTestId('token-kld-result')).toBeTruthy());
    const call = fake.calls.find((c) => c.channel === 'compare.tokenKld')!.input as { runIds: string[]; text: string | null };
    expect(call.runIds.sort()).toEqual([two.runId, four.runId, 'smol-4bit'].sort());
    expect(call.text).toBeNull();
    // Runs of two base models: two groups, rows per run; the text shown once per row.
    const groups = screen.getAllByTestId('token-kld-group');
    expect(groups).toHaveLength(2);
    const rows = screen.getAllByTestId('token-row');
    expect(rows).toHaveLength(3);
    for (const row of rows) expect(within(row).getAllByTestId('kld-token').map((t) => t.textContent).join('')).toBe(FAKE_TOKEN_TEXT);
    expect(screen.getByTestId('kld-legend').textContent).toContain('nats');
    // One scale: the same KLD gets the same shade in every row; the 2-bit row is darker than the 4-bit.
    const lightness = (row: HTMLElement) => {
      const tokens = within(row).getAllByTestId('kld-token').filter((t) => t.dataset.kld);
      return tokens.reduce((a, t) => a + kldColor(Number(t.dataset.kld))[0].match(/\d+/g)!.map(Number).reduce((x, y) => x + y, 0), 0) / tokens.length;
    };
    const [rowTwo, rowFour] = [rows.find((r) => r.dataset.run === two.runId)!, rows.find((r) => r.dataset.run === four.runId)!];
    expect(lightness(rowTwo)).toBeLessThan(lightness(rowFour));
    const shade = (t: HTMLElement) => t.style.background;
    const tokenTwo = within(rowTwo).getAllByTestId('kld-token')[3]!;
    expect(shade(tokenTwo)).toBe(kldColor(Number(tokenTwo.dataset.kld))[0]);
    expect(Number(rowTwo.dataset.meanKld)).toBeGreaterThan(Number(rowFour.dataset.meanKld));
    // Hover: the run's and the original's top-5, with probabilities.
    fireEvent.mouseEnter(tokenTwo);
    const tip = within(rowTwo).getByTestId('kld-tooltip');
    expect(tip.textContent).toContain('KL divergence');
    expect(tip.textContent).toContain('16-bit original');
    expect(tip.querySelectorAll('ol')).toHaveLength(2);
    for (const ol of tip.querySelectorAll('ol')) expect(ol.querySelectorAll('li')).toHaveLength(5);
    expect(tip.textContent).toMatch(/\d+%/);
    fireEvent.mouseLeave(tokenTwo);
    expect(within(rowTwo).queryByTestId('kld-tooltip')).toBeNull();
    // Keyboard: one tab stop per row; arrow keys move along it and show the tooltip.
    const first = within(rowFour).getAllByTestId('kld-token')[0]!;
    expect(first.tabIndex).toBe(0);
    expect(within(rowFour).getAllByTestId('kld-token')[1]!.tabIndex).toBe(-1);
    fireEvent.focus(first);
    expect(within(rowFour).getByTestId('kld-tooltip').textContent).toContain('first token');
    fireEvent.keyDown(first, { key: 'ArrowRight' });
    const second = within(rowFour).getAllByTestId('kld-token')[1]!;
    expect(document.activeElement).toBe(second);
    expect(second.tabIndex).toBe(0);
    expect(within(rowFour).getByTestId('kld-tooltip').textContent).toContain('token 2');
    // Your own text.
    fireEvent.click(within(card).getByRole('radio', { name: 'Your text' }));
    fireEvent.change(within(card).getByLabelText('Text to compare token by token'), { target: { value: 'Once upon a time' } });
    fireEvent.click(within(card).getByTestId('token-kld-run'));
    await waitFor(() => expect(within(screen.getAllByTestId('token-row')[0]!).getAllByTestId('kld-token')).toHaveLength(4));
    expect((fake.calls.filter((c) => c.channel === 'compare.tokenKld').pop()!.input as { text: string }).text).toBe('Once upon a time');
  });
});
