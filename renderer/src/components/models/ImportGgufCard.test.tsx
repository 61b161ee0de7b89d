// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOSSY_NOTE } from '../../../../app/domain/gguf-import';
import { createFakeStudio, type FakeStudio } from '../../api/fake';
import { stories260k } from '../../api/fixtures';
import { App } from '../../App';
import { resetUiState } from '../../state/ui';

const GGUF = '/data/stories260k.Q4_0.gguf';
const F16_GGUF = '/data/stories260k.f16.gguf';
const imported = (dir: string) => ({ ...stories260k, source: { kind: 'local' as const, path: dir, repoId: null, revision: null } });

function renderStudio(): FakeStudio {
  const fake = createFakeStudio({
    ggufFiles: {
      [GGUF]: { inspection: imported('/tmp/quip-studio-test/models/stories260k.Q4_0'), lossy: true },
      [F16_GGUF]: { inspection: imported('/tmp/quip-studio-test/models/stories260k.f16'), lossy: false },
    },
  });
  render(<App api={fake.api} />);
  return fake;
}

function importPath(p: string) {
  fireEvent.change(screen.getByLabelText(/GGUF file/), { target: { value: p } });
  fireEvent.click(screen.getByRole('button', { name: 'Import' }));
}

describe('Import GGUF card', () => {
  beforeEach(() => resetUiState());
  afterEach(() => cleanup());

  it('shows the job progress, then opens the inspection with the lossy notice', async () => {
    const fake = renderStudio();
    const release = fake.hold('models.importGguf');
    importPath(GGUF);
    const row = await screen.findByTestId('gguf-import');
    expect(row.getAttribute('data-state')).toBe('running');
    expect(fake.calls.find((c) => c.channel === 'models.importGguf')?.input).toEqual({ file: GGUF });
    // Cancel needs the job id, known only from the job's first event.
    expect(within(row).getByRole('button', { name: 'Cancel' })).toHaveProperty('disabled', true);

    fake.emit('models.importProgress', { jobId: 'job-7', file: GGUF, fraction: null, message: 'Import stories260k.Q4_0.gguf' });
    fake.emit('models.importProgress', { jobId: 'job-7', file: GGUF, fraction: 0.25, message: 'Converting tensors: model.layers.1.mlp.up_proj.weight' });
    // Another import job's progress leaves the bar alone.
    fake.emit('models.importProgress', { jobId: 'job-9', file: F16_GGUF, fraction: 0.9, message: 'Converting tensors: model.norm.weight' });
    await waitFor(() => expect(within(row).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('25'));
    expect(screen.getByTestId('gguf-import-status').textContent).toContain('model.layers.1.mlp.up_proj.weight');
    expect(within(row).getByRole('button', { name: 'Cancel' })).toHaveProperty('disabled', false);
    expect(screen.getByRole('button', { name: 'Import' })).toHaveProperty('disabled', true);

    release();
    const view = await screen.findByTestId('inspection');
    expect(within(view).getByRole('heading', { level: 2 }).textContent).toBe('stories260k.Q4_0');
    const note = screen.getByTestId('import-note');
    expect(note.textContent).toContain('Imported from a quantized GGUF: already lossy');
    expect(note.textContent).toContain(LOSSY_NOTE);
    expect(screen.getByTestId('gguf-import').getAttribute('data-state')).toBe('done');
    await waitFor(() => expect(fake.recent[0]?.path).toBe('/tmp/quip-studio-test/models/stories260k.Q4_0'));

    // Opening another model takes the notice away; it belongs to the import.
    fireEvent.change(screen.getByLabelText(/Model folder/), { target: { value: '/tmp/quip-studio-test/models/stories260k.Q4_0' } });
    fireEvent.click(screen.getByRole('button', { name: 'Open' }));
    await waitFor(() => expect(screen.queryByTestId('import-note')).toBeNull());
  });

  it('says an unquantized GGUF is not lossy', async () => {
    renderStudio();
    importPath(F16_GGUF);
    const note = await screen.findByTestId('import-note');
    expect(note.getAttribute('data-lossy')).toBe('false');
    expect(note.textContent).not.toContain('already lossy');
    expect(note.textContent).toContain('float16');
  });

  it('cancels through the job and says so', async () => {
    const fake = renderStudio();
    const release = fake.hold('models.importGguf');
    importPath(GGUF);
    fake.emit('models.importProgress', { jobId: 'job-3', file: GGUF, fraction: null, message: 'Import stories260k.Q4_0.gguf' });
    const cancel = await screen.findByRole('button', { name: 'Cancel' });
    await waitFor(() => expect(cancel).toHaveProperty('disabled', false));
    fireEvent.click(cancel);
    await waitFor(() => expect(fake.calls.find((c) => c.channel === 'jobs.cancel')?.input).toEqual({ jobId: 'job-3' }));
    fake.failNext('models.importGguf', 'The job was cancelled.', 'CANCELLED');
    release();
    await waitFor(() => expect(screen.getByTestId('gguf-import').getAttribute('data-state')).toBe('cancelled'));
    expect(screen.getByTestId('gguf-import-status').textContent).toBe('Cancelled');
    expect(screen.queryByTestId('inspection')).toBeNull();
  });

  it('shows why a file cannot be imported and stays usable', async () => {
    renderStudio();
    importPath('/data/missing.gguf');
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('There is no file at /data/missing.gguf');
    expect(screen.getByTestId('gguf-import').getAttribute('data-state')).toBe('error');
    importPath(GGUF);
    expect(await screen.findByTestId('import-note')).toBeTruthy();
  });
});
