// Compare: choose finished runs (of one base model or several) and see them side by side — perplexity
// against true bits per weight with each base model's own 16-bit point, size on disk, time, a table of
// every figure and setting, the per-layer proxy loss overlaid per base model — and the same prompt
// answered by each run and by the original model. The choice lives in the runs store, so it stays
// when the person goes to another page and comes back.
import { useState, type FormEvent } from 'react';
import type { ChatStats, RunDetail } from '../../../app/contract/index';
import { comparedRuns, LayerOverlayChart, PerplexityChart, SizeChart, TimeChart, type ComparedRun } from '../components/compare/CompareCharts';
import { TokenKld } from '../components/compare/TokenKld';
import { calibrationLabel, codebookLabel, groupByModel, otherSettingsLabels, settingsLabel } from '../components/run/labels';
import { MiddleEllipsis } from '../components/run/MiddleEllipsis';
import { PerplexityValue } from '../components/run/Perplexity';
import { Card, EmptyState, ErrorCard } from '../components/ui';
import { formatBytes, formatDuration } from '../../../app/domain/format';
import { streamReply } from '../state/chat';
import { useApi, useRuns } from '../state/runs-context';

interface Answer {
  text: string;
  stats: ChatStats | null;
  error: string | null;
  streaming: boolean;
}

/** Who answers the prompt: a run's quantized model, or the original a run was made from. */
interface Target {
  id: string;
  name: string;
  note: string;
  dir: string;
  color: string;
}

function SamePrompt({ runs }: { runs: ComparedRun[] }) {
  const api = useApi();
  const [prompt, setPrompt] = useState('Once upon a time');
  const [withOriginal, setWithOriginal] = useState(true);
  const [answers, setAnswers] = useState<Record<string, Answer>>({});
  // Each base model's original first, then the runs made from it.
  const groups = groupByModel(runs.map((c) => ({ ...c, modelDir: c.run.modelDir, modelName: c.run.modelName })));
  const originals: Target[] = groups
    .filter((g) => g.modelDir)
    .map((g) => ({ id: `original:${g.modelDir}`, name: g.name, note: '16-bit original', dir: g.modelDir!, color: 'var(--bits-16)' }));
  const targets: Target[] = groups.flatMap((g) => [
    ...(withOriginal ? originals.filter((o) => o.dir === g.modelDir) : []),
    ...g.runs.map(({ run, color, n }) => ({ id: run.runId, name: `${n}. ${run.name}`, note: settingsLabel(run.settings), dir: run.dir, color })),
  ]);
  const busy = Object.values(answers).some((a) => a.streaming);
  const ask = (e: FormEvent) => {
    e.preventDefault();
    if (!prompt.trim() || busy) return;
    const update = (id: string, f: (a: Answer) => Answer) => setAnswers((all) => ({ ...all, [id]: f(all[id]!) }));
    setAnswers(Object.fromEntries(targets.map((t) => [t.id, { text: '', stats: null, error: null, streaming: true }])));
    for (const t of targets) {
      // Greedy decoding: differences come from the weights, not from sampling.
      streamReply(api, { modelDir: t.dir, messages: [{ role: 'user', content: prompt }], sampling: { temperature: 0, topP: 1, maxTokens: 64, seed: 0 } }, {
        text: (piece) => update(t.id, (a) => ({ ...a, text: a.text + piece })),
        done: (stats, text) => update(t.id, (a) => ({ ...a, text: text || a.text, stats, streaming: false })),
        error: (f) => update(t.id, (a) => ({ ...a, error: f.message, streaming: false })),
      });
    }
  };
  return (
    <Card title="Same prompt, each model" testId="same-prompt">
      <form className="field-row" onSubmit={ask}>
        <input className="input" aria-label="Prompt for every run" value={prompt} onChange={(e) => setPrompt(e.target.value)} />
        <button type="submit" className="btn btn-primary" disabled={busy || !prompt.trim()}>
          Ask all
        </button>
      </form>
      {originals.length > 0 && (
        <label className="check-row">
          <input type="checkbox" checked={withOriginal} disabled={busy} onChange={(e) => setWithOriginal(e.target.checked)} data-testid="ask-original" />
          Also ask the original {originals.length > 1 ? 'models' : 'model'} ({originals.map((o) => o.name).join(', ')})
        </label>
      )}
      <div className="answers" style={{ gridTemplateColumns: `repeat(${Math.min(targets.length, 3)}, minmax(0, 1fr))` }}>
        {targets.map((t) => {
          const a = answers[t.id];
          return (
            <div key={t.id} className="answer" data-testid="compare-answer" data-original={t.id.startsWith('original:') || undefined}>
              <div className="answer-head" style={{ borderColor: t.color }} title={`${t.name}\n${t.note}`}>
                <MiddleEllipsis className="answer-name" text={t.name} />
                <div className="answer-note muted">{t.note}</div>
              </div>
              {a?.error ? <div className="error-message">{a.error}</div> : <div className="answer-text">{a?.text || (a?.streaming ? '…' : '')}</div>}
              {a?.stats && <div className="muted answer-stats">{a.stats.tokens} tokens · {a.stats.tokensPerSecond.toFixed(1)} tokens/s</div>}
            </div>
          );
        })}
      </div>
    </Card>
  );
}

function NumbersTable({ runs }: { runs: ComparedRun[] }) {
  const groups = groupByModel(runs.map((c) => ({ ...c, modelDir: c.run.modelDir, modelName: c.run.modelName })));
  const columns = 9;
  return (
    <div className="table-wrap" data-testid="compare-numbers">
      <table className="data-table compare-table">
        <thead>
          <tr>
            <th>Run</th>
            <th>Codebook</th>
            <th className="num" title="True bits per weight: codes, sign vectors and scales">
              Bits/w
            </th>
            <th className="num" title="Perplexity ± one standard error over windows; hover a figure for its text and windows">Perplexity</th>
            <th className="num" title="Weights on disk: bytes of the .safetensors files">Size</th>
            <th className="num" title="Every session of the run, resumes included, every phase">
              Time
            </th>
            <th>Calibration</th>
            <th>Fine-tuning</th>
            <th className="num" title="Mean proxy loss over the linear layers">
              Mean proxy
            </th>
          </tr>
        </thead>
        {groups.map((g) => {
          const full = g.runs.find((c) => c.run.perplexityFull !== null)?.run.perplexityFull ?? null;
          return (
            <tbody key={g.key} data-testid="compare-model">
              <tr className="row-model">
                <th colSpan={columns} scope="rowgroup" title={g.modelDir ?? undefined}>
                  {g.name}
                </th>
              </tr>
              {full !== null && (
                <tr className="row-reference" data-testid="compare-row-16bit">
                  <td className="muted">16-bit original</td>
                  <td className="muted">none</td>
                  <td className="num">16</td>
                  <td className="num">{full.toFixed(2)}</td>
                  <td className="num muted">—</td>
                  <td className="num muted">—</td>
                  <td className="muted">—</td>
                  <td className="muted">—</td>
                  <td className="num muted">—</td>
                </tr>
              )}
              {g.runs.map(({ run, color, n }) => {
                const s = run.settings;
                const other = s ? otherSettingsLabels(s) : [];
                return (
                  <tr key={run.runId} data-testid="compare-row">
                    <td className="cell-name">
                      <span className="cell-name-inner">
                        <span className="chip-dot" style={{ background: color }} />
                        <span className="chart-key-n">{n}</span>
                        <MiddleEllipsis text={run.name} tail={12} />
                      </span>
                    </td>
                    <td title={other.join(', ') || undefined}>
                      {s ? codebookLabel(s) : '—'}
                      {other.length > 0 && <div className="muted cell-note">{other.join(' · ')}</div>}
                    </td>
                    <td className="num">{run.bitsPerWeight?.toFixed(3) ?? '—'}</td>
                    <td className="num"><PerplexityValue run={run} /></td>
                    <td className="num">{run.bytesOnDisk !== null ? formatBytes(run.bytesOnDisk) : '—'}</td>
                    <td className="num">{run.seconds !== null ? formatDuration(run.seconds) : '—'}</td>
                    <td>{s ? calibrationLabel(s) : '—'}</td>
                    <td title={s && s.finetune.mode !== 'none' ? `${s.finetune.epochs} epochs` : undefined}>{s ? (s.finetune.mode === 'none' ? 'off' : s.finetune.mode) : '—'}</td>
                    <td className="num">{run.meanProxyLoss !== null ? run.meanProxyLoss.toExponential(2) : '—'}</td>
                  </tr>
                );
              })}
            </tbody>
          );
        })}
      </table>
    </div>
  );
}

export function ComparePage() {
  const runs = useRuns((s) => s.runs);
  const compared = useRuns((s) => s.compared);
  const details = useRuns((s) => s.details);
  const toggle = useRuns((s) => s.toggleCompared);
  const finished = runs.filter((r) => r.state === 'done');
  const chosen = comparedRuns(compared.map((id) => details[id]).filter((d): d is RunDetail => !!d && d.state === 'done'));
  const chipGroups = groupByModel(finished);
  const layerGroups = groupByModel(chosen.map((c) => ({ ...c, modelDir: c.run.modelDir, modelName: c.run.modelName })));

  return (
    <div className="page" data-testid="compare-page">
      <header className="page-header">
        <div>
          <h1 className="page-title">Compare</h1>
          <p className="page-subtitle">Bit widths, codebooks and fine-tuning side by side: quality, size, time and answers, each model against its own 16-bit original.</p>
        </div>
      </header>
      <Card title="Runs" testId="compare-choose">
        {finished.length === 0 ? (
          <EmptyState title="No finished runs yet">Finish a run or two (say 2 and 4 bits) to compare them.</EmptyState>
        ) : (
          chipGroups.map((g) => (
            <div key={g.key} className="chip-group" data-testid="compare-group">
              <div className="chip-group-name" title={g.modelDir ?? undefined}>
                {g.name}
              </div>
              <div className="chip-list">
                {g.runs.map((r) => {
                  const at = compared.indexOf(r.runId);
                  const on = at >= 0;
                  const c = on ? chosen.find((x) => x.run.runId === r.runId) : undefined;
                  return (
                    <label key={r.runId} className={`chip ${on ? 'chip-on' : ''}`} data-testid="compare-chip" title={`${r.name}\n${settingsLabel(r.settings)}`}>
                      <input type="checkbox" checked={on} onChange={() => toggle(r.runId)} />
                      {c && <span className="chip-dot" style={{ background: c.color }} />}
                      <MiddleEllipsis className="chip-name" text={r.name} />
                      <span className="muted chip-settings">{r.settings ? settingsLabel(r.settings) : ''}</span>
                    </label>
                  );
                })}
              </div>
            </div>
          ))
        )}
      </Card>
      {compared.length > 0 && chosen.length === 0 && <ErrorCard title="Loading the chosen runs" message="Their records are being read." />}
      {chosen.length > 0 && (
        <>
          <div className="compare-grid">
            <Card title="Perplexity vs bits per weight" testId="perplexity-card">
              <PerplexityChart runs={chosen} />
            </Card>
            <div className="compare-stack">
              <Card title="Size on disk" testId="size-card">
                <SizeChart runs={chosen} />
              </Card>
              <Card title="Time" testId="time-card">
                <TimeChart runs={chosen} />
              </Card>
            </div>
          </div>
          <Card title="Numbers" testId="numbers-card">
            <NumbersTable runs={chosen} />
          </Card>
          {layerGroups.map((g) => (
            <Card key={g.key} title={layerGroups.length > 1 ? `Per-layer proxy loss · ${g.name}` : 'Per-layer proxy loss'} testId="overlay-card">
              <LayerOverlayChart runs={g.runs} />
            </Card>
          ))}
          <Card title="Token by token" testId="token-kld-card">
            <TokenKld runs={chosen} />
          </Card>
          <SamePrompt runs={chosen} />
        </>
      )}
    </div>
  );
}
