// Drag and drop onto the Models page. In the desktop app a dropped model folder opens and a dropped
// .gguf file is imported (the preload's window.studioFiles turns the dropped File into its path). A
// browser never tells a page where a dropped file is on disk, so the browser face says so and points
// to Browse instead.
import { useState, type DragEvent } from 'react';
import '../../styles/files.css';
import { useStudio } from '../../state/context';

interface StudioFiles {
  pathForFile(file: File): string;
}

const studioFiles = () => (globalThis as { studioFiles?: StudioFiles }).studioFiles ?? null;

export const BROWSER_DROP_NOTE = 'Dropping files needs the desktop app: a browser does not tell the studio where a dropped file is on disk. Use “Choose a model folder…” or “Choose a .gguf file…” instead.';

export function DropZone({ desktop }: { desktop: boolean }) {
  const inspect = useStudio((s) => s.inspect);
  const importGguf = useStudio((s) => s.importGguf);
  const [over, setOver] = useState(false);
  const [note, setNote] = useState<string | null>(null);
  const files = desktop ? studioFiles() : null;

  const drop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    if (!files) {
      setNote(BROWSER_DROP_NOTE);
      return;
    }
    const dropped = [...e.dataTransfer.files];
    if (!dropped.length) return;
    const p = files.pathForFile(dropped[0]!);
    if (!p) {
      setNote('That was not a file or folder on this computer.');
      return;
    }
    setNote(dropped.length > 1 ? 'Several items were dropped; the first one is opened.' : null);
    if (/\.gguf$/i.test(p)) void importGguf(p);
    else void inspect(p);
  };

  return (
    <div
      className={`drop-zone ${over ? 'drop-zone-over' : ''}`}
      data-testid="drop-zone"
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={drop}
    >
      {files ? 'Or drop a model folder or a .gguf file here' : 'Drag and drop works in the desktop app only: a browser does not tell the page where a dropped file is.'}
      {note && (
        <div className="field-hint" role="status" data-testid="drop-note">
          {note}
        </div>
      )}
    </div>
  );
}
