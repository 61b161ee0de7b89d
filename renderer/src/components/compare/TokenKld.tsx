// Compare's "Token by token": one text shown once per chosen run, each token's background shaded by
// the KL divergence between the run's next-token distribution and its 16-bit base's at that token
// (compare.tokenKld), on one fixed scale for every row, so bit widths read side by side; hovering or
// focusing a token (arrow keys move along a row) shows both models' five likeliest tokens.
import { useState, type KeyboardEvent } from 'react';
import type { TokenKldGroup, TokenKldResult, TopToken } from '../../../../app/contract/index';
import { TOKEN_KLD_DEFAULT_TOKENS, TOKEN_KLD_MAX_RUNS } from '../../../../app/contract/index';
import { codebookLabel } from '../run/labels';
import { MiddleEllipsis } from '../run/MiddleEllipsis';
import { ErrorCard } from '../ui';
import { useApi } from '../../state/runs-context';
import { toFailure, type Failure } from '../../state/studio';
import type { ComparedRun } from './CompareCharts';

/** The scale's ends (nats, log scale): below LOW reads as no difference, at HIGH and above as the darkest. */
export const KLD_LOW = 1e-3;
export const KLD_HIGH = 1;
/** A sequential scale, light to dark, ordered in lightness (ColorBrewer OrRd): darker = further from 16-bit. */
const STOPS = ['#fff7ec', '#fee8c8', '#fdd49e', '#fdbb84', '#fc8d59', '#ef6548', '#d7301f', '#b30000', '#7f0000'];

function hex(c: string): [number, number, number] {
  return [parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)];
}

/** Where a KLD falls on the scale, 0 (no difference) to 1 (KLD_HIGH or more). */
export function kldPosition(kld: number): number {
  if (!(kld > KLD_LOW)) return 0;
  return Math.min(1, Math.log(kld / KLD_LOW) / Math.log(KLD_HIGH / KLD_LOW));
}

/** The shade of a KLD: [background, text colour] (light text on the dark end). */
export function kldColor(kld: number): [string, string] {
  const t = kldPosition(kld) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(t));
  const f = t - i;
  const [a, b] = [hex(STOPS[i]!), hex(STOPS[i + 1]!)];
  const rgb = a.map((x, k) => Math.round(x + (b[k]! - x) * f));
  return [`rgb(${rgb.join(', ')})`, t > 5.2 ? '#ffffff' : '#1a1a1a'];
}

const fmt = (x: number) => (x === 0 ? '0' : x < 0.001 ? x.toExponential(1) : x < 0.1 ? x.toFixed(4) : x.toFixed(3));
const pct = (p: number) => `${(p * 100).toFixed(p < 0.1 ? 1 : 0)}%`;
/** A token's text as shown in a list: visible spaces and line breaks. */
const shown = (t: string) => JSON.stringify(t).slice(1, -1).replace(/ /g, '\u00b7') || '∅';

function TopList({ title, top }: { title: string; top: TopToken[] | null }) {
  return (
    <div className="kld-top">
      <div className="kld-top-title">{title}</div>
      {top ? (
        <ol>
          {top.map((t, k) => (
            <li key={k}>
              <span className="mono">{shown(t.text)}</span> <span className="muted">{pct(t.p)}</span>
            </li>
          ))}
        </ol>
      ) : (
        <div className="muted">—</div>
      )}
    </div>
  );
}

interface Focus {
  run: string;
  token: number;
  left: number;
  top: number;
}

function Legend() {
  const ticks = [0.001, 0.01, 0.1, 1];
  return (
    <div className="kld-legend" data-testid="kld-legend">
      <span className="muted">KL divergence from 16-bit, per token (nats)</span>
      <span className="kld-legend-bar" style={{ background: `linear-gradient(to right, ${STOPS.join(', ')})` }} aria-hidden="true" />
      <span className="kld-legend-ticks">
        {ticks.map((t, i) => (
          <span key={t}>
            {i === 0 ? '≤' : i === ticks.length - 1 ? '≥' : ''}
            {t}
          </span>
        ))}
      </span>
    </div>
  );
}

function GroupRows({ group, runs }: { group: TokenKldGroup; runs: ComparedRun[] }) {
  const [focus, setFocus] = useState<Focus | null>(null);
  const [active, setActive] = useState<Record<string, number>>({});
  // Below the token, kept inside the row (the tooltip is ~330 px wide).
  const show = (run: string, token: number, el: HTMLElement) => {
    const room = (el.offsetParent as HTMLElement | null)?.clientWidth ?? 0;
    setFocus({ run, token, left: Math.max(0, Math.min(el.offsetLeft, room - 340)), top: el.offsetTop + el.offsetHeight });
  };
  const onKey = (e: KeyboardEvent<HTMLSpanElement>, run: string, token: number) => {
    const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : e.key === 'Home' ? -token : e.key === 'End' ? group.tokens.length - 1 - token : 0;
    if (!step) {
      if (e.key === 'Escape') setFocus(null);
      return;
    }
    e.preventDefault();
    const next = Math.max(0, Math.min(group.tokens.length - 1, token + step));
    setActive((a) => ({ ...a, [run]: next }));
    const sibling = (e.currentTarget.parentElement?.children[next] as HTMLElement | undefined) ?? null;
    sibling?.focus();
  };
  return (
    <div className="kld-rows">
      {group.runs.map((r) => {
        const c = runs.find((x) => x.run.runId === r.runId);
        const s = c?.run.settings ?? null;
        return (
          <div key={r.runId} className="kld-row" data-testid="token-row" data-run={r.runId} data-mean-kld={r.meanKld}>
            <div className="kld-row-head">
              {c && <span className="chip-dot" style={{ background: c.color }} />}
              {c && <span className="chart-key-n">{c.n}</span>}
              <MiddleEllipsis className="kld-row-name" text={c?.run.name ?? r.runId} />
              <span className="muted">{s ? codebookLabel(s) : ''}</span>
              <span className="kld-row-stats" data-testid="token-row-stats">
                mean KLD <strong>{fmt(r.meanKld)}</strong> · same top token {pct(r.sameTop)}
              </span>
            </div>
            <div className="kld-text" role="group" aria-label={`${c?.run.name ?? r.runId}: tokens shaded by KL divergence; arrow keys move between tokens`}>
              {group.tokens.map((t, i) => {
                const k = r.kld[i] ?? null;
                const [bg, fg] = k === null ? ['transparent', 'inherit'] : kldColor(k);
                const at = active[r.runId] ?? 0;
                return (
                  <span
                    key={i}
                    className="kld-token"
                    style={{ background: bg, color: fg }}
                    tabIndex={i === at ? 0 : -1}
                    data-testid="kld-token"
                    data-kld={k ?? undefined}
                    aria-label={k === null ? `${t} (first token, nothing predicts it)` : `${t}: KL divergence ${fmt(k)} nats`}
                    onMouseEnter={(e) => show(r.runId, i, e.currentTarget)}
                    onMouseLeave={() => setFocus(null)}
                    onFocus={(e) => (setActive((a) => ({ ...a, [r.runId]: i })), show(r.runId, i, e.currentTarget))}
                    onBlur={() => setFocus(null)}
                    onKeyDown={(e) => onKey(e, r.runId, i)}
                  >
                    {t}
                  </span>
                );
              })}
              {focus && focus.run === r.runId && (
                <div className="chart-tooltip kld-tooltip" style={{ left: focus.left, top: focus.top + 4 }} role="tooltip" data-testid="kld-tooltip">
                  <div className="chart-tooltip-title">
                    “{shown(group.tokens[focus.token]!)}” · token {focus.token + 1}
                  </div>
                  <div>
                    {r.kld[focus.token] === null || r.kld[focus.token] === undefined ? 'first token: nothing predicts it' : `KL divergence ${fmt(r.kld[focus.token]!)} nats`}
                  </div>
                  <div className="kld-tops">
                    <TopList title={`${c?.n ? `${c.n}. ` : ''}${s ? codebookLabel(s) : 'run'}`} top={r.top[focus.token] ?? null} />
                    <TopList title="16-bit original" top={group.baseTop[focus.token] ?? null} />
                  </div>
                </div>
              )}
            </div>
          </div>
        );
      })}
    </div>
  );
}

export function TokenKld({ runs }: { runs: ComparedRun[] }) {
  const api = useApi();
  const [own, setOwn] = useState(false);
  const [text, setText] = useState('');
  const [state, setState] = useState<{ value: TokenKldResult | null; error: Failure | null; loading: boolean; key: string | null }>({ value: null, error: null, loading: false, key: null });
  const chosen = runs.slice(0, TOKEN_KLD_MAX_RUNS);
  const key = chosen.map((c) => c.run.runId).join(',');
  const go = async () => {
    setState({ value: null, error: null, loading: true, key });
    try {
      const value = await api.compare.tokenKld({ runIds: chosen.map((c) => c.run.runId), text: own && text.trim() ? text : null, ctx: TOKEN_KLD_DEFAULT_TOKENS });
      setState({ value, error: null, loading: false, key });
    } catch (err) {
      setState({ value: null, error: toFailure(err), loading: false, key });
    }
  };
  const result = state.key === key ? state.value : null;
  return (
    <>
      <p className="muted kld-intro">
        Where the bit widths differ, at the level you read: each token shaded by how far the run's prediction of it is from the 16-bit original's (KL divergence, llama.cpp's convention). Hover or focus a token for both models' five likeliest tokens.
      </p>
      <div className="kld-controls">
        <div className="segmented" role="radiogroup" aria-label="Text">
          <button type="button" role="radio" aria-checked={!own} onClick={() => setOwn(false)}>
            Evaluation text
          </button>
          <button type="button" role="radio" aria-checked={own} onClick={() => setOwn(true)}>
            Your text
          </button>
        </div>
        <button type="button" className="btn btn-primary" disabled={state.loading || (own && !text.trim())} onClick={() => void go()} data-testid="token-kld-run">
          {state.loading ? 'Running the models…' : result ? 'Run again' : 'Compare token by token'}
        </button>
        {runs.length > TOKEN_KLD_MAX_RUNS && <span className="muted">The first {TOKEN_KLD_MAX_RUNS} chosen runs, one row each.</span>}
      </div>
      {own && (
        <textarea
          className="input kld-input"
          aria-label="Text to compare token by token"
          placeholder="Paste a prompt's answer or any paragraph"
          value={text}
          rows={3}
          onChange={(e) => setText(e.target.value)}
        />
      )}
      {state.error && state.key === key && <ErrorCard title="Token by token did not run" message={state.error.message} testId="token-kld-error" />}
      {result && (
        <div data-testid="token-kld-result">
          <Legend />
          {result.groups.map((g) => (
            <div key={g.modelDir} className="kld-group" data-testid="token-kld-group">
              <div className="kld-group-head">
                <strong title={g.modelDir}>{g.modelName}</strong>
                <span className="muted">
                  {' '}
                  · {result.source}
                  {g.truncated ? ' (cut)' : ''} · {g.tokens.length} tokens · {g.seconds.toFixed(1)} s
                </span>
              </div>
              <GroupRows group={g} runs={runs} />
            </div>
          ))}
        </div>
      )}
    </>
  );
}
