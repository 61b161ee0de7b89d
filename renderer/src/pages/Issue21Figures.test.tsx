// @vitest-environment jsdom
// Issue #21 items 2, 6 and 7 on the screens, against the in-memory StudioApi: a perplexity with its
// +- and what it was measured on (and "calibrated on this text"), the evaluation text in New run and
// its warning when it is the calibration text, a field the studio refuses marked under its input in
// the form's words, choosing files with the file browser, and the status bar when the server is gone.
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConnectionState, RunDetail, StudioApi } from '../../../app/contract/index';
import { RunDetail as RunDetailSchema, SERVER_STOPPED } from '../../../app/contract/index';
import { createFakeStudio, type FakeStudio } from '../api/fake';
import { stories260k } from '../api/fixtures';
import runsJson from '../api/fixtures/stories260k.runs.json';
import { App } from '../App';
import { resetUiState } from '../state/ui';

const two: RunDetail = RunDetailSchema.parse(runsJson.two);
const DIR = stories260k.source.path;
const HOME = '/home/ann';
const FILES = {
  [HOME]: [
    { name: 'models', path: `${HOME}/models`, kind: 'folder' as const, size: null },
    { name: 'texts', path: `${HOME}/texts`, kind: 'folder' as const, size: null },
  ],
  [`${HOME}/models`]: [
    { name: 'stories260k', path: DIR, kind: 'model-folder' as const, size: null },
    { name: 'small.gguf', path: `${HOME}/models/small.gguf`, kind: 'gguf' as const, size: 1234 },
  ],
  [`${HOME}/texts`]: [{ name: 'held-out.txt', path: `${HOME}/texts/held-out.txt`, kind: 'text' as const, size: 5000 }],
};

function renderStudio(runs: RunDetail[] = [], api?: (fake: FakeStudio) => StudioApi): FakeStudio {
  const fake = createFakeStudio({ models: { [DIR]: stories260k }, runs, files: FILES });
  render(<App api={api ? api(fake) : fake.api} />);
  return fake;
}

const nav = (label: string) => fireEvent.click(within(screen.getByRole('navigation', { name: 'Studio' })).getByRole('button', { name: label }));

async function openNewRun() {
  fireEvent.change(screen.getByLabelText(/Model folder/), { target: { value: DIR } });
  fireEvent.click(screen.getByRole('button', { name: 'Open' }));
  await waitFor(() => expect(screen.getByTestId('recent-model')).toBeTruthy());
  nav('New run');
  await waitFor(() => expect(screen.getByTestId('start-run')).toHaveProperty('disabled', false));
}

describe('issue 21: figures, form errors, files, connection', () => {
  beforeEach(() => resetUiState());
  afterEach(() => cleanup());

  it('Run page: the perplexity with its ±, its text and windows, the change against full precision, and "calibrated on this text"', async () => {
    const measured: RunDetail = {
      ...two,
      perplexity: 193.274,
      perplexityFull: 131.963,
      perplexityInfo: { dataset: '/a/wiki.test.raw', text: 'WikiText-2 test', ctx: 512, windows: 40, tokens: 20440, quantized: 193.274, full: 131.963, stdErr: 0.016, fullStdErr: 0.015, ratioStdErr: 0.004, calibratedOnText: true },
    };
    renderStudio([measured]);
    nav('Runs');
    await waitFor(() => expect(screen.getAllByTestId('run-row')).toHaveLength(1));
    // The table shows the figure with its ±, and says it was calibrated on its own evaluation text.
    const row = screen.getByTestId('run-row');
    expect(within(row).getByTestId('perplexity-value').textContent).toContain('193.3 ± 3.1');
    expect(within(row).getByTestId('perplexity-value').getAttribute('title')).toBe('WikiText-2 test, 40 windows of 512 tokens · calibrated on this text');
    fireEvent.click(within(row).getByRole('button', { name: two.name }));
    await waitFor(() => expect(screen.getByTestId('run-result')).toBeTruthy());
    const result = screen.getByTestId('run-result');
    expect(within(result).getByTestId('perplexity-value').textContent).toBe('193.3 ± 3.1calibrated on this text');
    expect(within(result).getByTestId('calibrated-on-text')).toBeTruthy();
    expect(result.textContent).toContain('WikiText-2 test, 40 windows of 512 tokens');
    expect(result.textContent).toContain('full precision 132.0 ± 2.0 (+46% ± 0.6% on the same windows)');
    expect(result.textContent).toContain('Weights on disk');
  });

  it('New run: the evaluation text (held out by default) warns when it is the calibration text, and goes with the estimate', async () => {
    const fake = renderStudio();
    await openNewRun();
    expect(screen.getByLabelText('Evaluation text file').getAttribute('placeholder')).toMatch(/^WikiText-2 test \(held out/);
    expect(screen.queryByTestId('run-eval-text-warning')).toBeNull();
    // Calibrating on the default evaluation text: the defaults would coincide, and the form says so.
    fireEvent.change(screen.getByLabelText('Calibration text file'), { target: { value: '/data/wikitext-2-raw/wiki.test.raw' } });
    expect(screen.getByTestId('run-eval-text-warning').textContent).toMatch(/text the run calibrates on: it flatters the model/);
    fireEvent.change(screen.getByLabelText('Evaluation text file'), { target: { value: '/data/held-out.txt' } });
    expect(screen.queryByTestId('run-eval-text-warning')).toBeNull();
    fireEvent.change(screen.getByLabelText('Windows'), { target: { value: '64' } });
    await waitFor(() => {
      const last = fake.calls.filter((c) => c.channel === 'runs.estimate').at(-1)!.input as { evaluation?: { windows: number; textFile: string } };
      expect(last.evaluation).toMatchObject({ windows: 64, textFile: '/data/held-out.txt' });
    });
    fireEvent.change(screen.getByLabelText('Windows'), { target: { value: 'many' } });
    expect(screen.getByTestId('eval-windows-error').textContent).toBe('"many" is not a number: type a whole number, like 40.');
  });

  it('New run: a field the studio refuses is marked under its own input, in the form\'s words', async () => {
    const fake = renderStudio();
    await openNewRun();
    const message = 'Seed 7 is not allowed on this machine.';
    fake.failNext('runs.estimate', message, 'BAD_SETTING', [{ path: 'settings.seed', label: 'Seed', message }]);
    fireEvent.change(screen.getByLabelText('Seed'), { target: { value: '7' } });
    await waitFor(() => expect(screen.getByTestId('run-seed-error').textContent).toBe(message));
    expect(screen.getByLabelText('Seed').getAttribute('aria-invalid')).toBe('true');
    expect(screen.getByTestId('form-problems').textContent).toBe('Fix Seed (marked) to see the cost and start.');
    expect(screen.queryByTestId('estimate-error')).toBeNull();
    fireEvent.change(screen.getByLabelText('Seed'), { target: { value: '8' } });
    await waitFor(() => expect(screen.queryByTestId('run-seed-error')).toBeNull());
  });

  it('Browse opens the file browser: model folders marked, only the files being chosen; a choice fills the field', async () => {
    const fake = renderStudio();
    // Models: a model folder, chosen in the browser, opens.
    fireEvent.click(await screen.findByTestId('browse-model'));
    const browser = await screen.findByTestId('file-browser');
    await waitFor(() => expect(within(browser).getByTestId('file-browser-dir').textContent).toBe(HOME));
    fireEvent.click(within(browser).getByRole('option', { name: /models/ }));
    await waitFor(() => expect(within(browser).getByTestId('file-browser-dir').textContent).toBe(`${HOME}/models`));
    const entries = within(browser).getAllByTestId('file-entry');
    expect(entries.map((e) => [e.textContent, e.getAttribute('data-kind')])).toEqual([
      ['◆stories260kmodel', 'model-folder'],
      ['·small.gguf1.21 KiB', 'gguf'],
    ]);
    fireEvent.click(within(browser).getByRole('option', { name: /stories260k/ }));
    fireEvent.click(within(browser).getByTestId('file-browser-choose'));
    await waitFor(() => expect(screen.queryByTestId('file-browser')).toBeNull());
    await waitFor(() => expect(fake.calls.some((c) => c.channel === 'models.inspect' && (c.input as { source: string }).source === DIR)).toBe(true));
    // The browser face cannot take dropped files, and says so.
    expect(screen.getByTestId('drop-zone').textContent).toMatch(/desktop app/);
    // New run: a text file for calibration.
    await waitFor(() => expect(screen.getByTestId('recent-model')).toBeTruthy());
    nav('New run');
    await waitFor(() => expect(screen.getByTestId('start-run')).toHaveProperty('disabled', false));
    fireEvent.click(screen.getByTestId('browse-calib-text'));
    const texts = await screen.findByTestId('file-browser');
    await waitFor(() => expect(within(texts).getAllByTestId('file-entry')).toHaveLength(2));
    fireEvent.click(within(texts).getByRole('option', { name: /texts/ }));
    await waitFor(() => expect(within(texts).getByTestId('file-browser-dir').textContent).toBe(`${HOME}/texts`));
    fireEvent.doubleClick(within(texts).getByRole('option', { name: /held-out\.txt/ }));
    await waitFor(() => expect(screen.queryByTestId('file-browser')).toBeNull());
    expect((screen.getByLabelText('Calibration text file') as HTMLInputElement).value).toBe(`${HOME}/texts/held-out.txt`);
    // A folder outside the roots is refused with the studio's words.
    fireEvent.click(screen.getByTestId('browse-eval-text'));
    const again = await screen.findByTestId('file-browser');
    await waitFor(() => expect(within(again).getByTestId('file-browser-dir').textContent).toBe(HOME));
    expect(within(again).getByTestId('file-browser-up')).toHaveProperty('disabled', true);
  });

  it('the status bar turns red and says how to restart when the server stops', async () => {
    let state: ConnectionState = 'connected';
    const watchers = new Set<(s: ConnectionState) => void>();
    renderStudio([], (fake) => ({ ...fake.api, connection: { state: () => state, on: (l) => (watchers.add(l), () => void watchers.delete(l)) } }));
    await waitFor(() => expect(screen.getByTestId('status-threads')).toBeTruthy());
    expect(screen.getByTestId('status-bar').getAttribute('data-connection')).toBe('connected');
    act(() => {
      state = 'disconnected';
      for (const w of watchers) w(state);
    });
    const line = screen.getByTestId('status-disconnected');
    expect(line.textContent).toBe(SERVER_STOPPED);
    expect(line.textContent).toMatch(/^Disconnected — the studio server stopped\. Start it again with `npm start` \(or `node dist\/server\.mjs`\)/);
    expect(line.querySelector('.status-dot.bad')).toBeTruthy();
    expect(screen.queryByTestId('status-threads')).toBeNull();
  });
});
