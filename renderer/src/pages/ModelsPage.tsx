// The Models page: open a local folder, the built-in sample or a Hugging Face model, and see what is
// inside it. The left column finds models; the right one shows the open model's inspection.
import { useEffect, type FormEvent } from 'react';
import { DownloadsCard } from '../components/models/DownloadsCard';
import { HubSearchCard } from '../components/models/HubSearchCard';
import { ImportGgufCard } from '../components/models/ImportGgufCard';
import { RecentCard } from '../components/models/RecentCard';
import { InspectionView } from '../components/inspection/InspectionView';
import { BrowseButton } from '../components/files/FileBrowser';
import { DropZone } from '../components/files/DropZone';
import { Card, ErrorCard, Spinner } from '../components/ui';
import { baseName } from '../format';
import { useStudio } from '../state/context';
import { useModelsPage, useNavigation, useNewRun } from '../state/ui';

function OpenModelCard() {
  const info = useStudio((s) => s.info);
  const inspect = useStudio((s) => s.inspect);
  const pickFolder = useStudio((s) => s.pickFolder);
  const busy = useStudio((s) => s.inspection.state.status === 'loading');
  const pathDraft = useModelsPage((s) => s.pathDraft);
  const setPathDraft = useModelsPage((s) => s.setPathDraft);
  const desktop = info.status === 'ready' && info.value.face === 'electron';
  const sample = info.status === 'ready' ? info.value.sampleModel : null;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const path = pathDraft.trim();
    if (path) void inspect(path);
  };

  return (
    <Card title="Open a model" testId="open-card">
      {info.status !== 'ready' ? null : desktop ? (
        <button type="button" className="btn btn-primary btn-block" onClick={() => void pickFolder()} disabled={busy}>
          Choose a model folder…
        </button>
      ) : (
        // The browser face browses with the server's file browser (the page cannot see the disk).
        <BrowseButton
          choose="model-folder"
          testId="browse-model"
          className="btn btn-primary btn-block"
          label="Choose a model folder…"
          onChoose={(p) => {
            setPathDraft(p);
            void inspect(p);
          }}
        />
      )}
      <div className="divider-text">or type its path</div>
      <form onSubmit={submit}>
        <label className="field-label" htmlFor="model-path">
          Model folder (with config.json and safetensors)
        </label>
        <div className="field-row">
          <input
            id="model-path"
            className="input mono"
            placeholder="/path/to/model"
            value={pathDraft}
            onChange={(e) => setPathDraft(e.target.value)}
            spellCheck={false}
            autoComplete="off"
          />
          <button type="submit" className="btn" disabled={busy || !pathDraft.trim()}>
            Open
          </button>
        </div>
      </form>
      <DropZone desktop={desktop} />
      <button
        type="button"
        className="btn btn-ghost btn-block sample-button"
        disabled={!sample || busy}
        title={sample ?? 'The sample model is missing from this installation.'}
        onClick={() => sample && void inspect(sample)}
      >
        Open the built-in sample (stories260k)
      </button>
    </Card>
  );
}

/** Titles by the error codes of app/engine/model and app/services; the message says the rest. */
const ERROR_TITLES: Record<string, string> = {
  NOT_A_MODEL: 'This folder is not a model',
  BAD_CONFIG: 'This model’s config.json cannot be used',
  BAD_SAFETENSORS: 'A weight file is damaged',
  SHAPE_MISMATCH: 'The weights do not match config.json',
  BAD_TOKENIZER: 'The tokenizer cannot be read',
  NOT_FOUND: 'Nothing found there',
};

function errorTitle(error: { code: string; message: string }, source: string | null): string {
  if (error.code === 'BAD_CONFIG' && /model_type/.test(error.message)) return 'This model type is not supported';
  return ERROR_TITLES[error.code] ?? `Could not open ${source ? baseName(source) : 'the model'}`;
}

function InspectionPane() {
  const inspection = useStudio((s) => s.inspection);
  const info = useStudio((s) => s.info);
  const inspect = useStudio((s) => s.inspect);
  const importNote = useStudio((s) => s.importNote);
  const setNewRunModel = useNewRun((s) => s.setModelDir);
  const go = useNavigation((s) => s.go);
  const { source, state } = inspection;
  const ready = state.status === 'ready' ? state.value.source.path : null;
  // New run from here starts with the model on screen.
  useEffect(() => {
    if (ready) setNewRunModel(ready);
  }, [ready, setNewRunModel]);

  if (state.status === 'loading') {
    return (
      <Card className="loading-card">
        <Spinner label={`Inspecting ${source ? baseName(source) : 'the model'}…`} />
      </Card>
    );
  }
  if (state.status === 'ready') {
    const quantizable = !state.value.quantization;
    return (
      <>
        {importNote && (
          <div className="warnings" role="note" data-testid="import-note" data-lossy={importNote.lossy}>
            <div className="warnings-title">{importNote.lossy ? 'Imported from a quantized GGUF: already lossy' : 'Imported from a GGUF file'}</div>
            <p>{importNote.text}</p>
          </div>
        )}
        <InspectionView
          inspection={state.value}
          actions={
            quantizable && (
              <button
                type="button"
                className="btn btn-primary"
                data-testid="quantize-this"
                onClick={() => {
                  setNewRunModel(state.value.source.path);
                  go('new-run');
                }}
              >
                Quantize this model
              </button>
            )
          }
        />
      </>
    );
  }
  const sample = info.status === 'ready' ? info.value.sampleModel : null;
  return (
    <>
      {state.status === 'error' && (
        <ErrorCard
          testId="inspection-error"
          title={errorTitle(state.error, source)}
          message={state.error.message}
          detail={source && !state.error.message.includes(source) ? source : undefined}
        />
      )}
      <Card className="welcome">
        <h2>See what is inside a model</h2>
        <p>
          Open a Hugging Face model folder, search the Hub, or start with the tiny built-in sample. The studio shows its architecture, every linear layer with
          the Hadamard transform QuIP# will use, and how small it gets at 2, 3 and 4 bits.
        </p>
        {sample && (
          <button type="button" className="btn btn-primary" onClick={() => void inspect(sample)}>
            Open the sample (stories260k)
          </button>
        )}
      </Card>
    </>
  );
}

export function ModelsPage() {
  const notice = useStudio((s) => s.notice);
  const dismissNotice = useStudio((s) => s.dismissNotice);
  return (
    <div className="page">
      <header className="page-header">
        <div>
          <h1 className="page-title">Models</h1>
          <div className="page-subtitle">Open a model to see its layers and what QuIP# will make of it.</div>
        </div>
      </header>
      {notice && <ErrorCard testId="notice" title="Something went wrong" message={notice.message} onDismiss={dismissNotice} />}
      <div className="models-layout">
        <aside className="models-side">
          <OpenModelCard />
          <ImportGgufCard />
          <DownloadsCard />
          <HubSearchCard />
          <RecentCard />
        </aside>
        <section className="models-main" aria-label="Inspection">
          <InspectionPane />
        </section>
      </div>
    </div>
  );
}
