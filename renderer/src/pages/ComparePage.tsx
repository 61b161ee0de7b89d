// Compare: choose finished runs (of one model or several) and see them side by side — perplexity
// against true bits per weight, size on disk, quantization time, per-layer proxy loss overlaid — and
// the same prompt answered by each.
import { useState, type FormEvent } from 'react';
import type { ChatStats, RunDetail } from '../../../app/contract/index';
import { LayerOverlayChart, PerplexityChart, runColor, SizeChart, TimeChart } from '../components/compare/CompareCharts';
import { Card, EmptyState, ErrorCard } from '../components/ui';
import { streamReply } from '../state/chat';
import { useApi, useRuns } from '../state/runs-context';

interface Answer {
  text: string;
  stats: ChatStats | null;
  error: string | null;
  streaming: boolean;
}

function SamePrompt({ runs }: { runs: RunDetail[] }) {
  const api = useApi();
  const [prompt, setPrompt] = useState('Once upon a time');
  const [answers, setAnswers] = useState<Record<string, Answer>>({});
  const busy = Object.values(answers).some((a) => a.streaming);
  const ask = (e: FormEvent) => {
    e.preventDefault();
    if (!prompt.trim() || busy) return;
    const update = (id: string, f: (a: Answer) => Answer) => setAnswers((all) => ({ ...all, [id]: f(all[id]!) }));
    setAnswers(Object.fromEntries(runs.map((r) => [r.runId, { text: '', stats: null, error: null, streaming: true }])));
    for (const r of runs) {
      // Greedy decoding: differences come from the weights, not from sampling.
      streamReply(api, { modelDir: r.dir, messages: [{ role: 'user', content: prompt }], sampling: { temperature: 0, topP: 1, maxTokens: 64, seed: 0 } }, {
        text: (piece) => update(r.runId, (a) => ({ ...a, text: a.text + piece })),
        done: (stats, text) => update(r.runId, (a) => ({ ...a, text: text || a.text, stats, streaming: false })),
        error: (f) => update(r.runId, (a) => ({ ...a, error: f.message, streaming: false })),
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
      <div className="answers" style={{ gridTemplateColumns: `repeat(${Math.min(runs.length, 3)}, minmax(0, 1fr))` }}>
        {runs.map((r, i) => {
          const a = answers[r.runId];
          return (
            <div key={r.runId} className="answer" data-testid="compare-answer">
              <div className="answer-head" style={{ borderColor: runColor(i) }}>
                {r.name}
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

export function ComparePage() {
  const runs = useRuns((s) => s.runs);
  const compared = useRuns((s) => s.compared);
  const details = useRuns((s) => s.details);
  const toggle = useRuns((s) => s.toggleCompared);
  const finished = runs.filter((r) => r.state === 'done');
  const chosen = compared.map((id) => details[id]).filter((d): d is RunDetail => !!d && d.state === 'done');

  return (
    <div className="page" data-testid="compare-page">
      <header className="page-header">
        <div>
          <h1 className="page-title">Compare</h1>
          <p className="page-subtitle">Bit widths and codebooks side by side: quality, size, time and answers.</p>
        </div>
      </header>
      <Card title="Runs" testId="compare-choose">
        {finished.length === 0 ? (
          <EmptyState title="No finished runs yet">Finish a run or two (say 2 and 4 bits) to compare them.</EmptyState>
        ) : (
          <div className="chip-list">
            {finished.map((r) => {
              const on = compared.includes(r.runId);
              const at = compared.indexOf(r.runId);
              return (
                <label key={r.runId} className={`chip ${on ? 'chip-on' : ''}`} data-testid="compare-chip">
                  <input type="checkbox" checked={on} onChange={() => toggle(r.runId)} />
                  {on && <span className="chip-dot" style={{ background: runColor(at) }} />}
                  {r.name}
                  <span className="muted">{r.settings ? ` ${r.settings.bits}-bit ${r.settings.codebook}` : ''}</span>
                </label>
              );
            })}
          </div>
        )}
      </Card>
      {compared.length > 0 && chosen.length === 0 && <ErrorCard title="Loading the chosen runs" message="Their records are being read." />}
      {chosen.length > 0 && (
        <>
          <div className="compare-grid">
            <Card title="Perplexity vs bits per weight">
              <PerplexityChart runs={chosen} />
            </Card>
            <Card title="Size on disk">
              <SizeChart runs={chosen} />
            </Card>
          </div>
          <Card title="Per-layer proxy loss">
            <LayerOverlayChart runs={chosen} />
          </Card>
          <div className="compare-grid">
            <Card title="Quantization time">
              <TimeChart runs={chosen} />
            </Card>
            <Card title="Numbers">
              <table className="data-table">
                <thead>
                  <tr>
                    <th>Run</th>
                    <th className="num">bits/w</th>
                    <th className="num">ppl</th>
                    <th className="num">mean proxy</th>
                  </tr>
                </thead>
                <tbody>
                  {chosen.map((r) => (
                    <tr key={r.runId}>
                      <td>{r.name}</td>
                      <td className="num">{r.bitsPerWeight?.toFixed(3) ?? '—'}</td>
                      <td className="num">{r.perplexity?.toFixed(2) ?? '—'}</td>
                      <td className="num">{r.meanProxyLoss?.toExponential(2) ?? '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </Card>
          </div>
          <SamePrompt runs={chosen} />
        </>
      )}
    </div>
  );
}
