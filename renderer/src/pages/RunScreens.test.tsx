// @vitest-environment jsdom
// The run screens against the in-memory StudioApi: New run (presets, estimate, start), the live Run
// chart growing from a real run's events (one point per layer, coloured by kind), the Frobenius
// toggle, an error card naming a killed job process, Runs (delete with confirm, reveal), Compare.
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunDetail, RunEvent } from '../../../app/contract/index';
import { RunDetail as RunDetailSchema, RunEvent as RunEventSchema } from '../../../app/contract/index';
import { createFakeStudio, type FakeStudio } from '../api/fake';
import { stories260k } from '../api/fixtures';
import eventsJson from '../api/fixtures/stories260k.run-events.json';
import runsJson from '../api/fixtures/stories260k.runs.json';
import { App } from '../App';
import { resetUiState } from '../state/ui';

const events: RunEvent[] = (eventsJson as unknown[]).map((e) => RunEventSchema.parse(e));
const two: RunDetail = RunDetailSchema.parse(runsJson.two);
const four: RunDetail = RunDetailSchema.parse(runsJson.four);
const DIR = stories260k.source.path;

function renderStudio(runs: RunDetail[] = []): FakeStudio {
  const fake = createFakeStudio({ models: { [DIR]: stories260k }, runs });
  render(<App api={fake.api} />);
  return fake;
}

const nav = (label: string) => fireEvent.click(within(screen.getByRole('navigation', { name: 'Studio' })).getByRole('button', { name: label }));
const points = () => screen.queryAllByTestId('layer-point');
const tick = () => act(() => new Promise((r) => setTimeout(r, 80)));

describe('run screens', () => {
  beforeEach(() => resetUiState());
  afterEach(() => cleanup());

  it('New run: a preset per bit width, the estimate before starting, then the live chart grows layer by layer', async () => {
    const fake = renderStudio();
    fireEvent.change(screen.getByLabelText(/Model folder/), { target: { value: DIR } });
    fireEvent.click(screen.getByRole('button', { name: 'Open' }));
    await waitFor(() => expect(screen.getByTestId('recent-model')).toBeTruthy());
    nav('New run');
    await waitFor(() => expect(screen.getByLabelText('Model to quantize')).toHaveProperty('value', DIR));
    fireEvent.click(screen.getByRole('radio', { name: /4-bit RVQ/ }));
    await waitFor(() => expect(screen.getByTestId('estimate-size').textContent).toMatch(/KiB|MiB/));
    expect(screen.getByTestId('estimate-card').textContent).toContain('RVQ4');
    fireEvent.click(screen.getByRole('radio', { name: /2-bit E8P/ }));
    await waitFor(() => expect(screen.getByTestId('estimate-card').textContent).toContain('E8P'));
    fireEvent.change(screen.getByLabelText('Samples'), { target: { value: '8' } });
    // Fine-tuning settings appear with their defaults when it is switched on.
    expect(screen.queryByLabelText('Epochs')).toBeNull();
    fireEvent.click(within(screen.getByRole('radiogroup', { name: 'Fine-tuning' })).getByRole('radio', { name: 'In-block' }));
    fireEvent.change(screen.getByLabelText('Epochs'), { target: { value: '2' } });
    // A value out of range marks its own field, in the form's words, and nothing can start.
    fireEvent.change(screen.getByLabelText('Held-out fraction'), { target: { value: '1.5' } });
    await waitFor(() => expect(screen.getByTestId('ft-holdout-error').textContent).toMatch(/1\.5/));
    expect(screen.getByLabelText('Held-out fraction').getAttribute('aria-invalid')).toBe('true');
    fireEvent.change(screen.getByLabelText('Held-out fraction'), { target: { value: '0.25' } });
    fireEvent.change(screen.getByLabelText('Scale ρ'), { target: { value: '-1' } });
    await waitFor(() => expect(screen.getByTestId('run-rho-error').textContent).toMatch(/scale/i));
    expect(screen.getByTestId('form-problems').textContent).toContain('Scale ρ');
    expect(screen.getByTestId('start-run')).toHaveProperty('disabled', true);
    fireEvent.change(screen.getByLabelText('Scale ρ'), { target: { value: '' } });
    await waitFor(() => expect(screen.getByTestId('start-run')).toHaveProperty('disabled', false));
    fireEvent.click(screen.getByTestId('start-run'));
    await waitFor(() => expect(screen.getByTestId('run-page')).toBeTruthy());
    const start = fake.calls.find((c) => c.channel === 'runs.start')!.input as { settings: { bits: number; calibSamples: number } };
    expect(start.settings).toMatchObject({ bits: 2, codebook: 'e8p', calibSamples: 8, finetune: { mode: 'block', epochs: 2, holdout: 0.25 } });
    await waitFor(() => expect(screen.getByTestId('run-progress').textContent).toContain('fine-tuning block, 2 epochs'));
    const runId = [...fake.runs.keys()][0]!;

    // Replay the real run: the chart grows while the run is going.
    const replay = (from: number, to: number) => {
      for (const e of events.slice(from, to)) fake.runEvent(runId, e.body.type === 'state' ? { type: 'state', run: { ...e.body.run, runId } } : e.body);
    };
    const firstLayers = events.findIndex((_e, i) => events.slice(0, i + 1).filter((x) => x.body.type === 'layer').length === 10);
    act(() => replay(0, firstLayers + 1));
    await tick();
    expect(points()).toHaveLength(10);
    expect(screen.getByTestId('run-layers').textContent).toContain('10 / 35 layers');
    expect(screen.getByRole('heading', { level: 1 }).textContent).toContain('running');
    act(() => replay(firstLayers + 1, events.length));
    await tick();
    expect(points()).toHaveLength(35);
    // Coloured by kind: seven kinds per block, five blocks.
    expect(points().filter((p) => p.getAttribute('data-kind') === 'down')).toHaveLength(5);
    expect(points().filter((p) => ['q', 'k', 'v'].includes(p.getAttribute('data-kind')!))).toHaveLength(15);
    fireEvent.click(screen.getByTestId('metric-frobenius'));
    expect(screen.getByText('Relative Frobenius error')).toBeTruthy();
    expect(points()).toHaveLength(35);
    expect(screen.getByTestId('run-log').textContent).toContain('5 blocks x 7 linear layers');
  });

  it('New run: a run name that is not one safe folder name says why under the field and cannot start', async () => {
    const fake = renderStudio();
    fireEvent.change(screen.getByLabelText(/Model folder/), { target: { value: DIR } });
    fireEvent.click(screen.getByRole('button', { name: 'Open' }));
    await waitFor(() => expect(screen.getByTestId('recent-model')).toBeTruthy());
    nav('New run');
    await waitFor(() => expect(screen.getByTestId('start-run')).toHaveProperty('disabled', false));
    for (const [name, message] of [
      ['..', 'A run name can\'t be ".."; use letters, digits, "-", "_" and ".".'],
      ['a/b', 'A run name can\'t contain "/" or "\\" (it names one folder, not a path); use letters, digits, "-", "_" and ".".'],
      ['CON', '"CON" is a device name on Windows (CON, PRN, AUX, NUL, COM1-9, LPT1-9) and can\'t be a run name.'],
    ]) {
      fireEvent.change(screen.getByLabelText('Run name'), { target: { value: name } });
      expect(screen.getByTestId('run-name-error').textContent).toBe(message);
      expect(screen.getByLabelText('Run name').getAttribute('aria-invalid')).toBe('true');
      expect(screen.getByTestId('start-run')).toHaveProperty('disabled', true);
    }
    fireEvent.change(screen.getByLabelText('Run name'), { target: { value: 'stories-2bit' } });
    expect(screen.queryByTestId('run-name-error')).toBeNull();
    await waitFor(() => expect(screen.getByTestId('start-run')).toHaveProperty('disabled', false));
    fireEvent.click(screen.getByTestId('start-run'));
    await waitFor(() => expect(fake.calls.find((c) => c.channel === 'runs.start')?.input).toMatchObject({ name: 'stories-2bit' }));
  });

  it('a killed job process shows an error card naming the reason, with Resume', async () => {
    const killed: RunDetail = {
      ...two,
      runId: 'killed',
      name: 'killed',
      state: 'error',
      error: { code: 'KILLED', message: 'The job process was killed from outside the studio (on Linux the system does this when memory runs out).' },
      layers: two.layers.slice(0, 7),
      layersDone: 7,
    };
    const fake = renderStudio([killed]);
    nav('Runs');
    await waitFor(() => expect(screen.getAllByTestId('run-row')).toHaveLength(1));
    fireEvent.click(screen.getByRole('button', { name: 'killed' }));
    await waitFor(() => expect(screen.getByTestId('run-error').textContent).toContain('The job process was killed'));
    expect(points()).toHaveLength(7);
    fireEvent.click(screen.getByTestId('resume-run'));
    await waitFor(() => expect(fake.calls.some((c) => c.channel === 'runs.resume')).toBe(true));
    await waitFor(() => expect(screen.getByRole('heading', { level: 1 }).textContent).toContain('queued'));
  });

  it('fine-tuning epochs draw train and held-out loss curves as they arrive', async () => {
    const tuned: RunDetail = { ...two, runId: 'tuned', name: 'tuned', state: 'running', layers: two.layers.slice(0, 3), layersDone: 3 };
    const fake = renderStudio([tuned]);
    nav('Runs');
    await waitFor(() => expect(screen.getAllByTestId('run-row')).toHaveLength(1));
    fireEvent.click(screen.getByRole('button', { name: 'tuned' }));
    await waitFor(() => expect(points()).toHaveLength(3));
    expect(screen.queryByTestId('finetune-chart')).toBeNull();
    act(() => {
      for (let epoch = 0; epoch < 4; epoch++) {
        fake.runEvent('tuned', { type: 'fineTune', epoch: { stage: 'block', block: 0, group: 'qkv', epoch, trainLoss: 0.02 / (epoch + 1), heldOutLoss: 0.021 / (epoch + 1) } });
      }
    });
    await tick();
    expect(screen.getByTestId('finetune-chart').getAttribute('data-points')).toBe('4');
    expect(screen.getByTestId('finetune-chart').querySelectorAll('.recharts-line')).toHaveLength(2);
  });

  it('Runs: reveal says where the folder is in the browser face; delete asks first and removes the run', async () => {
    const fake = renderStudio([two, four]);
    nav('Runs');
    await waitFor(() => expect(screen.getAllByTestId('run-row')).toHaveLength(2));
    const row = screen.getAllByTestId('run-row').find((r) => r.getAttribute('data-run') === two.runId)!;
    fireEvent.click(within(row).getByTestId('reveal-run'));
    await waitFor(() => expect(screen.getByTestId('reveal-path').textContent).toContain(two.dir));
    fireEvent.click(within(row).getByTestId('delete-run'));
    expect(fake.runs.size).toBe(2);
    fireEvent.click(within(row).getByTestId('confirm-delete'));
    await waitFor(() => expect(screen.getAllByTestId('run-row')).toHaveLength(1));
    expect([...fake.runs.keys()]).toEqual([four.runId]);
  });

  it('Compare: groups runs by base model (each with its 16-bit point), the numbers, the originals in Same prompt, and keeps the choice', async () => {
    const smol: RunDetail = { ...two, runId: 'smol-2bit', name: 'smol-2bit', dir: '/studio/runs/smol-2bit', modelDir: '/models/SmolLM2-135M', modelName: 'SmolLM2-135M', perplexity: 60.2, perplexityFull: 20.5 };
    renderStudio([two, four, smol]);
    nav('Compare');
    await waitFor(() => expect(screen.getAllByTestId('compare-chip')).toHaveLength(3));
    expect(screen.getAllByTestId('compare-group').map((g) => g.firstElementChild!.textContent)).toEqual(['SmolLM2-135M', 'stories260k']);
    for (const chip of screen.getAllByTestId('compare-chip')) fireEvent.click(within(chip).getByRole('checkbox'));
    await waitFor(() => expect(screen.getByTestId('perplexity-chart').getAttribute('data-points')).toBe('3'));
    expect(screen.getByTestId('size-chart').textContent).toContain('KiB');
    expect(screen.getByTestId('time-chart').textContent).toMatch(/\d s/);
    // One per-layer chart per base model: stories260k's two runs overlaid, SmolLM2's one.
    const overlays = screen.getAllByTestId('overlay-chart');
    expect(overlays.map((o) => o.querySelectorAll('.recharts-line').length).sort()).toEqual([1, 2]);
    // The numbers: every run with size, time, calibration and fine-tuning, and a 16-bit row per model.
    expect(screen.getAllByTestId('compare-row')).toHaveLength(3);
    expect(screen.getAllByTestId('compare-row-16bit').map((r) => r.textContent)).toEqual([expect.stringContaining('20.50'), expect.stringContaining('120.76')]);
    const head = screen.getByTestId('compare-numbers').querySelector('thead')!.textContent!;
    for (const col of ['Size', 'Time', 'Calibration', 'Fine-tuning', 'Mean proxy']) expect(head).toContain(col);
    expect(screen.getAllByTestId('compare-row')[0]!.textContent).toContain('8×128');
    // Same prompt: the three runs and the two originals they were made from.
    const answers = screen.getAllByTestId('compare-answer');
    expect(answers).toHaveLength(5);
    expect(answers.filter((a) => a.getAttribute('data-original'))).toHaveLength(2);
    fireEvent.click(screen.getByTestId('ask-original'));
    expect(screen.getAllByTestId('compare-answer')).toHaveLength(3);
    // The choice stays when the person leaves the page and comes back.
    nav('Runs');
    nav('Compare');
    expect(screen.getAllByTestId('compare-chip').filter((c) => (within(c).getByRole('checkbox') as HTMLInputElement).checked)).toHaveLength(3);
    expect(screen.getByTestId('perplexity-chart').getAttribute('data-points')).toBe('3');
  });

  it('Runs: each row says codebook, fine-tuning and calibration, so two 2-bit E8P runs read apart', async () => {
    const tuned: RunDetail = { ...two, runId: 'two-ft', name: 'two-ft', settings: { ...two.settings!, finetune: { ...two.settings!.finetune, mode: 'block+e2e' } } };
    renderStudio([two, tuned]);
    nav('Runs');
    await waitFor(() => expect(screen.getAllByTestId('run-row')).toHaveLength(2));
    const lines = screen.getAllByTestId('run-settings').map((e) => e.textContent);
    expect(lines).toEqual([expect.stringContaining('2-bit E8P · FT block+e2e · 8×128'), expect.stringContaining('2-bit E8P · no FT · 8×128')]);
    // Actions are named icon buttons; a long name is in the title too.
    const row = screen.getAllByTestId('run-row')[0]!;
    expect(within(row).getByRole('button', { name: 'Reveal' })).toBeTruthy();
    expect(within(row).getByRole('button', { name: 'Delete' })).toBeTruthy();
    expect(within(row).getByRole('button', { name: 'two-ft' }).querySelector('[title]')!.getAttribute('title')).toBe('two-ft');
  });

  it('Run page: a finished run leads on to Compare, Chat, Reveal and Delete', async () => {
    const fake = renderStudio([two, four]);
    nav('Runs');
    await waitFor(() => expect(screen.getAllByTestId('run-row')).toHaveLength(2));
    fireEvent.click(screen.getByRole('button', { name: two.name }));
    await waitFor(() => expect(screen.getByTestId('run-result')).toBeTruthy());
    fireEvent.click(screen.getByTestId('compare-run'));
    await waitFor(() => expect(screen.getByTestId('compare-page')).toBeTruthy());
    const chip = screen.getAllByTestId('compare-chip').find((c) => c.textContent!.includes(two.name))!;
    expect((within(chip).getByRole('checkbox') as HTMLInputElement).checked).toBe(true);

    nav('Runs');
    fireEvent.click(screen.getByRole('button', { name: two.name }));
    await waitFor(() => expect(screen.getByTestId('chat-with-run')).toBeTruthy());
    fireEvent.click(screen.getByTestId('chat-with-run'));
    await waitFor(() => expect(screen.getByTestId('chat-page')).toBeTruthy());
    expect((screen.getByLabelText('Model 1') as HTMLSelectElement).value).toBe(two.dir);

    nav('Runs');
    fireEvent.click(screen.getByRole('button', { name: two.name }));
    await waitFor(() => expect(screen.getByTestId('run-result')).toBeTruthy());
    fireEvent.click(screen.getByTestId('reveal-run'));
    await waitFor(() => expect(screen.getByTestId('reveal-path').textContent).toContain(two.dir));
    fireEvent.click(screen.getByTestId('delete-run'));
    expect(fake.runs.size).toBe(2);
    fireEvent.click(screen.getByTestId('confirm-delete'));
    await waitFor(() => expect(screen.getByTestId('runs-page')).toBeTruthy());
    await waitFor(() => expect(screen.getAllByTestId('run-row')).toHaveLength(1));
    expect([...fake.runs.keys()]).toEqual([four.runId]);
  });

  it('New run: a field that is not a number or out of range says what is allowed under it; few samples warn', async () => {
    const fake = renderStudio();
    fireEvent.change(screen.getByLabelText(/Model folder/), { target: { value: DIR } });
    fireEvent.click(screen.getByRole('button', { name: 'Open' }));
    await waitFor(() => expect(screen.getByTestId('recent-model')).toBeTruthy());
    nav('New run');
    await waitFor(() => expect(screen.getByTestId('start-run')).toHaveProperty('disabled', false));
    const estimates = () => fake.calls.filter((c) => c.channel === 'runs.estimate').length;
    const samples = () => screen.getByLabelText('Samples');
    fireEvent.change(samples(), { target: { value: 'abc' } });
    expect(screen.getByTestId('run-samples-error').textContent).toBe('"abc" is not a number: type a whole number, like 128.');
    expect(samples().getAttribute('aria-invalid')).toBe('true');
    expect(screen.getByTestId('form-problems').textContent).toContain('Calibration samples');
    expect(screen.getByTestId('start-run')).toHaveProperty('disabled', true);
    // Nothing reaches the server while a field is marked (no "Invalid input for runs.estimate").
    const before = estimates();
    await tick();
    await tick();
    await tick();
    expect(estimates()).toBe(before);
    expect(screen.queryByTestId('estimate-error')).toBeNull();
    fireEvent.change(samples(), { target: { value: '0' } });
    expect(screen.getByTestId('run-samples-error').textContent).toMatch(/^0 is out of range: use a whole number from 1/);
    expect(screen.getByTestId('run-samples-error').textContent).not.toContain('--');
    fireEvent.change(samples(), { target: { value: '4' } });
    expect(screen.queryByTestId('run-samples-error')).toBeNull();
    expect(samples().getAttribute('aria-invalid')).toBeNull();
    expect(screen.getByTestId('run-samples-warning').textContent).toContain('Under 8 samples');
    await waitFor(() => expect(screen.getByTestId('start-run')).toHaveProperty('disabled', false));
    fireEvent.change(samples(), { target: { value: '64' } });
    expect(screen.queryByTestId('run-samples-warning')).toBeNull();
  });

  it('New run starts with the model the person came from; its name placeholder follows the model and codebook', async () => {
    const other: RunDetail = { ...two, runId: 'other-2bit', name: 'other-2bit', modelDir: '/models/other-model', modelName: 'other-model' };
    renderStudio([other]);
    fireEvent.change(screen.getByLabelText(/Model folder/), { target: { value: DIR } });
    fireEvent.click(screen.getByRole('button', { name: 'Open' }));
    // "Quantize this model" on the inspection opens New run with that model.
    await waitFor(() => expect(screen.getByTestId('quantize-this')).toBeTruthy());
    fireEvent.click(screen.getByTestId('quantize-this'));
    await waitFor(() => expect(screen.getByTestId('new-run-page')).toBeTruthy());
    expect((screen.getByLabelText('Model to quantize') as HTMLSelectElement).value).toBe(DIR);
    expect(screen.getByLabelText('Run name').getAttribute('placeholder')).toBe('stories260k-2bit-e8p-<time>');
    fireEvent.click(screen.getByRole('radio', { name: /4-bit RVQ/ }));
    expect(screen.getByLabelText('Run name').getAttribute('placeholder')).toBe('stories260k-4bit-rvq4-<time>');
    // Off says tuning is off; the tuned parts are described only when tuning is on.
    const ftHint = () => screen.getByTestId('finetune-settings').querySelector('.ft-hint')!.textContent!;
    expect(ftHint()).toMatch(/^No tuning/);
    expect(ftHint()).not.toContain('Sign vectors');
    fireEvent.click(within(screen.getByRole('radiogroup', { name: 'Fine-tuning' })).getByRole('radio', { name: 'In-block' }));
    expect(ftHint()).toContain('Sign vectors');
    // From a run's page, New run starts with the model that run was made from.
    nav('Runs');
    await waitFor(() => expect(screen.getAllByTestId('run-row')).toHaveLength(1));
    fireEvent.click(screen.getByRole('button', { name: other.name }));
    await waitFor(() => expect(screen.getByTestId('run-result')).toBeTruthy());
    nav('New run');
    expect((screen.getByLabelText('Model to quantize') as HTMLSelectElement).value).toBe(other.modelDir);
    expect(screen.getByLabelText('Run name').getAttribute('placeholder')).toBe('other-model-2bit-e8p-<time>');
  });
});
