// Import a GGUF file (llama.cpp's format) into the studio home's models folder. The import runs in
// the job process; its progress comes as models.importProgress events and the inspection opens when it is done.
import { useState, type FormEvent } from 'react';
import { useStudio } from '../../state/context';
import { BrowseButton } from '../files/FileBrowser';
import { Card, ProgressBar } from '../ui';

export function ImportGgufCard() {
  const slot = useStudio((s) => s.ggufImport);
  const importGguf = useStudio((s) => s.importGguf);
  const cancel = useStudio((s) => s.cancelImport);
  const [draft, setDraft] = useState('');
  const running = slot.status === 'running';

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const file = draft.trim();
    if (file) void importGguf(file);
  };

  return (
    <Card title="Import a GGUF file" testId="import-gguf-card">
      <form onSubmit={submit}>
        <label className="field-label" htmlFor="gguf-path">
          GGUF file (llama.cpp format; converted to 16-bit into the studio home)
        </label>
        <div className="field-row">
          <input
            id="gguf-path"
            className="input mono"
            placeholder="/path/to/model.gguf"
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            spellCheck={false}
            autoComplete="off"
          />
          <button type="submit" className="btn" disabled={running || !draft.trim()}>
            Import
          </button>
        </div>
        <BrowseButton choose="gguf" onChoose={setDraft} testId="browse-gguf" className="btn btn-ghost btn-small browse-below" label="Choose a .gguf file…" />
      </form>
      {slot.status !== 'idle' && (
        <div className="download" data-testid="gguf-import" data-state={slot.status}>
          <ProgressBar
            fraction={slot.status === 'done' ? 1 : slot.fraction}
            label={`Importing ${slot.file ?? 'the GGUF file'}`}
            tone={slot.status === 'error' ? 'danger' : slot.status === 'done' ? 'ok' : 'accent'}
          />
          <div className="download-figures">
            <span className="download-status" data-testid="gguf-import-status" title={running ? (slot.message ?? undefined) : undefined}>
              {running && (slot.message ?? 'Importing…')}
              {slot.status === 'done' && 'Imported'}
              {slot.status === 'cancelled' && 'Cancelled'}
              {slot.status === 'error' && 'Import failed'}
            </span>
            {running && (
              <button type="button" className="btn btn-ghost btn-small btn-danger" onClick={() => void cancel()} disabled={!slot.jobId}>
                Cancel
              </button>
            )}
          </div>
          {slot.status === 'error' && slot.error && (
            <div className="download-error" role="alert">
              {slot.error.message}
            </div>
          )}
        </div>
      )}
    </Card>
  );
}
