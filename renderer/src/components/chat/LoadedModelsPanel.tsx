// The models loaded in their own processes (each serves the chats, the compare prompts and the local
// server): resident memory, state and an Unload button; the idle time after which a model unloads
// itself and the memory budget (past it, the least recently used idle model is unloaded).
import { useEffect, useState } from 'react';
import { formatBytes } from '../../../../app/domain/format';
import { useChat } from '../../state/runs-context';

const GIB = 2 ** 30;

/** A number field that commits on blur or Enter (not on every keystroke). */
function CommitField(props: { label: string; value: number | null; placeholder?: string; step: number; min: number; unit: string; onCommit(v: number | null): void; testId: string }) {
  const [text, setText] = useState(props.value === null ? '' : String(props.value));
  useEffect(() => setText(props.value === null ? '' : String(props.value)), [props.value]);
  const commit = () => {
    const t = text.trim();
    if (t === '') return props.onCommit(null);
    const n = Number(t);
    if (Number.isFinite(n) && n >= props.min) props.onCommit(n);
    else setText(props.value === null ? '' : String(props.value));
  };
  return (
    <label className="panel-field">
      <span>{props.label}</span>
      <span className="panel-field-input">
        <input
          className="input mono"
          type="number"
          step={props.step}
          min={props.min}
          value={text}
          placeholder={props.placeholder}
          onChange={(e) => setText(e.target.value)}
          onBlur={commit}
          onKeyDown={(e) => e.key === 'Enter' && commit()}
          data-testid={props.testId}
        />
        <span className="muted">{props.unit}</span>
      </span>
    </label>
  );
}

export function LoadedModelsPanel() {
  const loaded = useChat((s) => s.loaded);
  const unload = useChat((s) => s.unload);
  const setModelLimits = useChat((s) => s.setModelLimits);
  const models = loaded?.models ?? [];
  const used = models.reduce((a, m) => a + (m.residentBytes ?? 0), 0);
  const halfRam = loaded ? loaded.totalMemoryBytes / 2 : null;
  const budgetIsDefault = loaded && halfRam !== null && Math.abs(loaded.memoryBudgetBytes - Math.floor(halfRam)) < 1;

  return (
    <section className="side-panel" data-testid="loaded-models" aria-label="Loaded models">
      <h3 className="side-panel-title">Loaded models</h3>
      {models.length === 0 ? (
        <div className="muted side-panel-empty">None. A model loads with its first message and stays loaded for the next.</div>
      ) : (
        <ul className="loaded-list">
          {models.map((m) => (
            <li key={m.modelDir} className="loaded-item" data-testid="loaded-model" title={m.modelDir}>
              <div className="loaded-name">{m.name}</div>
              <div className="loaded-meta muted">
                {m.residentBytes !== null ? formatBytes(m.residentBytes) : 'memory unknown'} · {m.state === 'loading' ? 'loading…' : m.busy ? 'answering' : 'idle'}
                {m.queued > 0 ? ` · ${m.queued} waiting` : ''}
              </div>
              <button type="button" className="btn btn-ghost btn-small" aria-label={`Unload ${m.name}`} onClick={() => void unload(m.modelDir)}>
                Unload
              </button>
            </li>
          ))}
        </ul>
      )}
      {loaded && (
        <>
          <div className="muted loaded-total" data-testid="loaded-memory">
            {formatBytes(used)} of a {formatBytes(loaded.memoryBudgetBytes)} budget
          </div>
          <CommitField
            label="Unload after idle"
            value={loaded.idleUnloadMinutes}
            step={1}
            min={0}
            unit="min (0: never)"
            onCommit={(v) => void setModelLimits({ idleUnloadMinutes: Math.round(v ?? 15) })}
            testId="idle-unload-minutes"
          />
          <CommitField
            label="Memory budget"
            value={budgetIsDefault ? null : Math.round((loaded.memoryBudgetBytes / GIB) * 10) / 10}
            placeholder={halfRam !== null ? (halfRam / GIB).toFixed(1) : undefined}
            step={0.5}
            min={0.1}
            unit={budgetIsDefault ? 'GiB (half the RAM)' : 'GiB'}
            onCommit={(v) => void setModelLimits({ memoryBudgetBytes: v === null ? null : Math.round(v * GIB) })}
            testId="memory-budget"
          />
        </>
      )}
    </section>
  );
}
