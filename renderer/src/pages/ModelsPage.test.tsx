// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFakeStudio, type FakeStudio, type FakeStudioOptions } from '../api/fake';
import { asHubModel, asSample, stories260k } from '../api/fixtures';
import { App } from '../App';
import { NAV } from '../components/Nav';
import { resetUiState } from '../state/ui';

const config = JSON.parse(readFileSync(path.join('..', 'shared', 'data', 'models', 'stories260k', 'config.json'), 'utf8'));
const SAMPLE = '/opt/quip-studio/assets/models/stories260k';
const HUB_ID = 'tiny-org/stories260k';

function renderStudio(opts: FakeStudioOptions = {}): FakeStudio {
  const fake = createFakeStudio({
    models: { [stories260k.source.path]: stories260k, [SAMPLE]: asSample(stories260k, SAMPLE) },
    sampleModel: SAMPLE,
    hub: [
      { model: { id: HUB_ID, downloads: 12_345, likes: 67, updatedAt: null, pipelineTag: 'text-generation', gated: false, private: false, cached: false }, bytes: 4_000_000, inspection: asHubModel(stories260k, HUB_ID) },
      { model: { id: 'other-org/another-model', downloads: 3, likes: 0, updatedAt: null, pipelineTag: 'text-generation', gated: true, private: false, cached: false }, bytes: 1, inspection: stories260k },
    ],
    ...opts,
  });
  render(<App api={fake.api} />);
  return fake;
}

function openPath(p: string) {
  fireEvent.change(screen.getByLabelText(/Model folder/), { target: { value: p } });
  fireEvent.click(screen.getByRole('button', { name: 'Open' }));
}

describe('Models page', () => {
  beforeEach(() => resetUiState());
  afterEach(() => cleanup());

  it('shows the status bar from app.info and every screen of the nav, pending ones disabled with why', async () => {
    renderStudio();
    await waitFor(() => expect(screen.getByTestId('status-threads').textContent).toBe('2 threads'));
    expect(screen.getByTestId('status-cpu').textContent).toContain('Test CPU');
    for (const entry of NAV) {
      const button = screen.getByRole('button', { name: new RegExp(`^${entry.label}$`) });
      expect(button).toHaveProperty('disabled', entry.pending !== null);
      expect(button.getAttribute('title')).toBe(entry.pending ? `${entry.label} ${entry.pending}` : null);
    }
    expect(screen.queryByTestId('nav-pending') !== null).toBe(NAV.some((e) => e.pending !== null));
    expect(screen.getByRole('button', { name: /^Models$/ }).getAttribute('aria-current')).toBe('page');
  });

  it('opens stories260k by path and lays out its inspection', async () => {
    renderStudio();
    openPath(stories260k.source.path);
    const view = await screen.findByTestId('inspection');
    expect(within(view).getByRole('heading', { level: 2 }).textContent).toBe('stories260k');

    const arch = screen.getByTestId('architecture-card');
    const stat = (label: string) => within(arch).getByText(label).nextElementSibling?.textContent;
    expect(stat('Hidden size')).toBe(String(config.hidden_size));
    expect(stat('Layers')).toBe(String(config.num_hidden_layers));
    expect(stat('Key/value heads')).toContain(String(config.num_key_value_heads));

    // One row per linear layer: 7 per block, every block open for a 5-block model.
    expect(screen.getByTestId('linear-summary').textContent).toContain(`${config.num_hidden_layers * 7} linear layers in ${config.num_hidden_layers} blocks`);
    expect(screen.getAllByTestId('linear-row')).toHaveLength(config.num_hidden_layers * 7);
    // down_proj reads n = intermediate_size; its factorisation is K x 2^k with K * 2^k = n.
    const down = screen.getAllByTestId('linear-row').find((r) => r.textContent?.startsWith('mlp.down_proj'))!;
    expect(down.textContent).toContain(`${config.hidden_size} × ${config.intermediate_size}`);
    const h = stories260k.linears.find((l) => l.kind === 'down')!.hadamardIn;
    expect(h.k * h.pow2).toBe(config.intermediate_size);
    expect(down.textContent).toContain(`${h.k} × 2`);

    // Every bit width, and the 2-bit model is smaller than the 4-bit one.
    for (const bits of [2, 3, 4, 16]) expect(screen.getByTestId(`size-${bits}`)).toBeTruthy();
    const bytes = (bits: number) => stories260k.sizes.find((s) => s.bits === bits)!.bytes;
    expect(bytes(2)).toBeLessThan(bytes(4));
    expect(screen.getByTestId('tokenizer-card').textContent).toContain('BPE');
  });

  it('collapses and expands blocks of the layer table', async () => {
    renderStudio();
    openPath(stories260k.source.path);
    await screen.findByTestId('inspection');
    fireEvent.click(screen.getByRole('button', { name: 'Collapse all' }));
    expect(screen.queryAllByTestId('linear-row')).toHaveLength(0);
    fireEvent.click(within(screen.getByTestId('block-2')).getByRole('button'));
    expect(screen.getAllByTestId('linear-row')).toHaveLength(7);
  });

  it('shows a clear error card for a non-model folder and keeps working', async () => {
    renderStudio();
    openPath('/tmp/holiday-photos');
    const card = await screen.findByTestId('inspection-error');
    expect(card.textContent).toContain('This folder is not a model');
    expect(card.textContent).toContain('/tmp/holiday-photos');
    expect(card.textContent).toContain('config.json');
    // The app still works: the built-in sample opens from the same page.
    fireEvent.click(screen.getByRole('button', { name: 'Open the built-in sample (stories260k)' }));
    const view = await screen.findByTestId('inspection');
    expect(view.textContent).toContain('Built-in sample');
    expect(screen.queryByTestId('inspection-error')).toBeNull();
  });

  it('names an unsupported model type and the folder that was opened', async () => {
    const fake = renderStudio();
    fake.failNext('models.inspect', 'config.json: model_type "gpt2" is not supported; the studio supports llama, mistral, qwen2 (the Llama family).', 'BAD_CONFIG');
    openPath('/models/gpt2');
    const card = await screen.findByTestId('inspection-error');
    expect(card.textContent).toContain('This model type is not supported');
    expect(card.textContent).toContain('llama, mistral, qwen2');
    expect(card.textContent).toContain('/models/gpt2');
  });

  it('searches the hub, downloads with a progress bar and then shows the inspection', async () => {
    const fake = renderStudio();
    fireEvent.change(screen.getByLabelText('Search the Hugging Face Hub'), { target: { value: 'stories' } });
    fireEvent.click(screen.getByRole('button', { name: 'Search' }));
    const results = await screen.findAllByTestId('hub-result');
    expect(results).toHaveLength(1);
    expect(results[0]!.textContent).toContain(HUB_ID);
    expect(results[0]!.textContent).toContain('12.3 k');
    expect(results[0]!.textContent).toContain('67');

    fireEvent.click(within(results[0]!).getByRole('button', { name: `Download ${HUB_ID}` }));
    const row = await screen.findByTestId('download');
    const [id] = [...fake.downloads.keys()];
    fake.advanceDownload(id!, 1_000_000);
    await waitFor(() => expect(within(row).getByTestId('download-bytes').textContent).toBe('977 KiB of 3.81 MiB'));
    expect(within(row).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('25');
    expect(within(row).getByTestId('download-rate').textContent).toMatch(/1\.00 MiB\/s · 3 s left/);

    fake.advanceDownload(id!, 3_000_000);
    const view = await screen.findByTestId('inspection');
    expect(view.textContent).toContain(HUB_ID);
    expect(view.textContent).toContain('Hugging Face Hub');
    await waitFor(() => expect(screen.getByTestId('download').getAttribute('data-state')).toBe('done'));
    // The cache now has it: the results are asked again and offer Open instead of Download.
    await waitFor(() => expect(within(screen.getAllByTestId('hub-result')[0]!).getByRole('button').textContent).toBe('Open'));
  });

  it('cancels a download and resumes it from the bytes already fetched', async () => {
    const fake = renderStudio();
    fireEvent.change(screen.getByLabelText('Search the Hugging Face Hub'), { target: { value: 'stories' } });
    fireEvent.click(screen.getByRole('button', { name: 'Search' }));
    fireEvent.click(await screen.findByRole('button', { name: `Download ${HUB_ID}` }));
    await screen.findByTestId('download');
    const [first] = [...fake.downloads.keys()];
    fake.advanceDownload(first!, 2_000_000);
    fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.getByTestId('download').getAttribute('data-state')).toBe('cancelled'));
    expect(screen.getByTestId('download').textContent).toContain('Cancelled, resumable');

    fireEvent.click(screen.getByRole('button', { name: 'Resume' }));
    await waitFor(() => expect(screen.getByTestId('download').getAttribute('data-state')).toBe('running'));
    await waitFor(() => expect(screen.getByTestId('download-bytes').textContent).toBe('1.91 MiB of 3.81 MiB'));
    expect(fake.calls.filter((c) => c.channel === 'hub.download')).toHaveLength(2);
  });

  it('reports an interrupted download with its reason', async () => {
    const fake = renderStudio();
    fireEvent.change(screen.getByLabelText('Search the Hugging Face Hub'), { target: { value: 'stories' } });
    fireEvent.click(screen.getByRole('button', { name: 'Search' }));
    fireEvent.click(await screen.findByRole('button', { name: `Download ${HUB_ID}` }));
    await screen.findByTestId('download');
    fake.interruptDownload([...fake.downloads.keys()][0]!, 'The connection to the Hub dropped while fetching model.safetensors.');
    await waitFor(() => expect(screen.getByTestId('download').getAttribute('data-state')).toBe('error'));
    expect(screen.getByTestId('download').textContent).toContain('connection to the Hub dropped');
    expect(screen.getByRole('button', { name: 'Resume' })).toBeTruthy();
  });

  it('shows a failed hub search as an error card', async () => {
    const fake = renderStudio();
    fake.failNext('hub.search', 'The Hugging Face Hub at http://127.0.0.1:9 did not answer. Check the network or HF_ENDPOINT.', 'HUB_UNREACHABLE');
    fireEvent.change(screen.getByLabelText('Search the Hugging Face Hub'), { target: { value: 'x' } });
    fireEvent.click(screen.getByRole('button', { name: 'Search' }));
    expect((await screen.findByTestId('hub-error')).textContent).toContain('did not answer');
  });

  it('lists recent models, reopens and forgets them', async () => {
    const fake = renderStudio();
    openPath(stories260k.source.path);
    await screen.findByTestId('inspection');
    const item = await screen.findByTestId('recent-model');
    expect(item.textContent).toContain('stories260k');
    expect(item.textContent).toContain('260 k params');
    fireEvent.click(within(item).getByRole('button', { name: /^stories260k/ }));
    await waitFor(() => expect(fake.calls.filter((c) => c.channel === 'models.inspect')).toHaveLength(2));
    fireEvent.click(within(item).getByRole('button', { name: 'Forget stories260k' }));
    await waitFor(() => expect(screen.queryByTestId('recent-model')).toBeNull());
  });

  it('uses the native folder dialog in the desktop face', async () => {
    const fake = renderStudio({ face: 'electron', pickedFolder: stories260k.source.path });
    fireEvent.click(await screen.findByRole('button', { name: 'Choose a model folder…' }));
    await screen.findByTestId('inspection');
    expect(fake.calls.map((c) => c.channel)).toContain('models.pickFolder');
  });

  it('browses with the server\'s file browser in the browser face (no native dialog there)', async () => {
    const fake = renderStudio();
    await waitFor(() => expect(screen.getByTestId('status-threads')).toBeTruthy());
    fireEvent.click(screen.getByRole('button', { name: 'Choose a model folder…' }));
    expect(await screen.findByTestId('file-browser')).toBeTruthy();
    await waitFor(() => expect(fake.calls.map((c) => c.channel)).toContain('files.list'));
    expect(fake.calls.map((c) => c.channel)).not.toContain('models.pickFolder');
  });
});
