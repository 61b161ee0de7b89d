// Choosing a model folder, a .gguf file or a text file. The desktop app opens the system's dialog
// (files.pick); the browser face, whose page cannot see the disk, browses with files.list: folders
// under the home folder, the studio home, the Hugging Face cache and mounted volumes, model folders
// marked, and only the files being chosen. BrowseButton sits beside every path field.
import { useEffect, useRef, useState } from 'react';
import type { FileChoice, FileEntry, FilesListResult } from '../../../../app/contract/index';
import { formatBytes } from '../../../../app/domain/format';
import '../../styles/files.css';
import { useApi } from '../../state/runs-context';
import { useStudio } from '../../state/context';
import { toFailure, type Failure } from '../../state/studio';

const TITLES: Record<FileChoice, string> = {
  'model-folder': 'Choose a model folder',
  gguf: 'Choose a GGUF file',
  text: 'Choose a text file',
};

const KIND_LABEL: Record<FileEntry['kind'], string> = { folder: 'folder', 'model-folder': 'model', gguf: 'GGUF', text: 'text' };

/** The browser face's file browser, as a dialog over the page. */
export function FileBrowser(props: { choose: FileChoice; start?: string; onChoose: (path: string) => void; onClose: () => void }) {
  const api = useApi();
  const [listing, setListing] = useState<{ value: FilesListResult | null; error: Failure | null; loading: boolean }>({ value: null, error: null, loading: true });
  const [selected, setSelected] = useState<string | null>(null);
  const dialog = useRef<HTMLDivElement>(null);

  const open = (dir?: string) => {
    setListing((l) => ({ ...l, loading: true, error: null }));
    setSelected(null);
    api.files.list({ ...(dir ? { dir } : {}), choose: props.choose }).then(
      (value) => setListing({ value, error: null, loading: false }),
      (err) => setListing((l) => ({ value: l.value, error: toFailure(err), loading: false })),
    );
  };
  useEffect(() => {
    open(props.start || undefined);
    dialog.current?.focus();
    // eslint-disable-next-line react-hooks/exhaustive-deps -- once, on opening
  }, []);

  const v = listing.value;
  // A model folder is chosen by selecting it (or, inside it, with "Choose this folder").
  const currentIsModel = props.choose === 'model-folder' && v !== null;
  const choosable = (e: FileEntry) => (props.choose === 'model-folder' ? e.kind === 'model-folder' : e.kind === (props.choose === 'gguf' ? 'gguf' : 'text'));
  const activate = (e: FileEntry) => {
    if (choosable(e)) props.onChoose(e.path);
    else open(e.path);
  };

  return (
    <div className="file-browser-backdrop" onMouseDown={(e) => e.target === e.currentTarget && props.onClose()}>
      <div
        className="file-browser card"
        role="dialog"
        aria-modal="true"
        aria-label={TITLES[props.choose]}
        data-testid="file-browser"
        tabIndex={-1}
        ref={dialog}
        onKeyDown={(e) => e.key === 'Escape' && props.onClose()}
      >
        <header className="file-browser-head">
          <h2 className="card-title">{TITLES[props.choose]}</h2>
          <button type="button" className="btn btn-ghost btn-small" onClick={props.onClose} aria-label="Close">
            ✕
          </button>
        </header>
        {v && (
          <div className="file-browser-roots" role="group" aria-label="Places">
            {v.roots.map((r) => (
              <button key={r.path} type="button" className="btn btn-small" title={r.path} onClick={() => open(r.path)}>
                {r.label}
              </button>
            ))}
          </div>
        )}
        <div className="file-browser-path">
          <button type="button" className="btn btn-small" disabled={!v?.parent || listing.loading} onClick={() => v?.parent && open(v.parent)} data-testid="file-browser-up">
            ↑ Up
          </button>
          <span className="mono file-browser-dir" data-testid="file-browser-dir" title={v?.dir}>
            {v?.dir ?? '…'}
          </span>
        </div>
        {listing.error && (
          <div className="field-error file-browser-error" role="alert" data-testid="file-browser-error">
            {listing.error.message}
          </div>
        )}
        <ul className="file-browser-list" role="listbox" aria-label="Folder contents" data-testid="file-browser-list">
          {v && v.entries.length === 0 && !listing.loading && (
            <li className="muted file-browser-empty">
              No folders{props.choose === 'model-folder' ? ' or .gguf files' : props.choose === 'gguf' ? ' or .gguf files' : ' or text files'} here.
            </li>
          )}
          {v?.entries.map((e) => (
            <li key={e.path}>
              <button
                type="button"
                role="option"
                aria-selected={selected === e.path}
                className={`file-entry file-entry-${e.kind} ${selected === e.path ? 'file-entry-on' : ''}`}
                onClick={() => (choosable(e) ? setSelected(e.path) : open(e.path))}
                onDoubleClick={() => activate(e)}
                data-testid="file-entry"
                data-kind={e.kind}
              >
                <span className="file-entry-icon" aria-hidden="true">
                  {e.size === null ? (e.kind === 'model-folder' ? '◆' : '▸') : '·'}
                </span>
                <span className="file-entry-name">{e.name}</span>
                <span className="file-entry-kind muted">{e.size !== null ? formatBytes(e.size) : KIND_LABEL[e.kind]}</span>
              </button>
            </li>
          ))}
          {v?.truncated && <li className="muted file-browser-empty">The folder holds more entries than are shown.</li>}
        </ul>
        <footer className="file-browser-foot">
          <span className="muted file-browser-note">Your home folder, the studio home, the Hugging Face cache and mounted volumes; hidden files are not shown.</span>
          {currentIsModel && !selected && (
            <button type="button" className="btn" onClick={() => v && props.onChoose(v.dir)} data-testid="file-browser-this">
              Choose this folder
            </button>
          )}
          <button type="button" className="btn btn-primary" disabled={!selected} onClick={() => selected && props.onChoose(selected)} data-testid="file-browser-choose">
            Choose
          </button>
        </footer>
      </div>
    </div>
  );
}

/**
 * "Browse…" beside a path field: the native dialog in the desktop app, the file browser in the
 * browser face. `onChoose` gets the chosen path.
 */
export function BrowseButton(props: { choose: FileChoice; onChoose: (path: string) => void; start?: string; label?: string; testId?: string; className?: string }) {
  const api = useApi();
  const info = useStudio((s) => s.info);
  const [browsing, setBrowsing] = useState(false);
  const desktop = info.status === 'ready' && info.value.face === 'electron';
  const click = async () => {
    if (desktop) {
      const r = await api.files.pick({ choose: props.choose }).catch(() => null);
      if (r?.supported) {
        if (r.path) props.onChoose(r.path);
        return;
      }
    }
    setBrowsing(true);
  };
  return (
    <>
      <button type="button" className={props.className ?? 'btn'} onClick={() => void click()} data-testid={props.testId ?? 'browse'} title={TITLES[props.choose]}>
        {props.label ?? 'Browse…'}
      </button>
      {browsing && (
        <FileBrowser
          choose={props.choose}
          start={props.start}
          onClose={() => setBrowsing(false)}
          onChoose={(p) => {
            setBrowsing(false);
            props.onChoose(p);
          }}
        />
      )}
    </>
  );
}
