// The Compare screen's charts: perplexity against true bits per weight (each base model with its own
// 16-bit point), size on disk and quantization time as labelled bars, and the per-layer proxy loss of
// the chosen runs of one base model overlaid. Every label stays inside its chart: long run names are
// cut with an ellipsis (the full name on hover), point labels that would collide are left to the legend.
import { CartesianGrid, Line, LineChart, Scatter, ScatterChart, Tooltip, usePlotArea, useXAxisScale, useYAxisScale, XAxis, YAxis } from 'recharts';
import type { RunDetail } from '../../../../app/contract/index';
import { formatBytes, formatDuration } from '../../../../app/domain/format';
import { axisFormatter, blockLabel, blockTicks, formatLoss, linearTicks, logTicks, orderLayers, textWidth, useWidth } from '../run/chart-utils';
import { groupByModel, settingsLabel } from '../run/labels';
import { MiddleEllipsis } from '../run/MiddleEllipsis';

export const RUN_COLORS = ['#7c6cf0', '#1fa68c', '#e08a1e', '#d6457a', '#5b8def', '#0ea5a3', '#a0522d', '#8f9a1c', '#b055c8', '#5d6b82'];
export const runColor = (i: number) => RUN_COLORS[i % RUN_COLORS.length]!;

/** A marker shape per base model, so two models' runs read apart even in the same colour. */
const SHAPES = ['circle', 'square', 'diamond', 'triangle'] as const;
type Shape = (typeof SHAPES)[number];

function Marker(props: { cx: number; cy: number; shape: Shape; fill: string; stroke?: string; r?: number }) {
  const { cx, cy, shape, fill } = props;
  const r = props.r ?? 5;
  const common = { fill, stroke: props.stroke ?? 'var(--surface)', strokeWidth: 1.5 };
  if (shape === 'square') return <rect x={cx - r} y={cy - r} width={2 * r} height={2 * r} {...common} />;
  if (shape === 'diamond') return <polygon points={`${cx},${cy - r - 1} ${cx + r + 1},${cy} ${cx},${cy + r + 1} ${cx - r - 1},${cy}`} {...common} />;
  if (shape === 'triangle') return <polygon points={`${cx},${cy - r - 1} ${cx + r + 1},${cy + r} ${cx - r - 1},${cy + r}`} {...common} />;
  return <circle cx={cx} cy={cy} r={r} {...common} />;
}

/** The runs being compared, each with its colour and number (the same on every chart and the table). */
export interface ComparedRun {
  run: RunDetail;
  color: string;
  /** 1-based, as the point labels and the legend show it. */
  n: number;
}

export const comparedRuns = (runs: RunDetail[]): ComparedRun[] => runs.map((run, i) => ({ run, color: runColor(i), n: i + 1 }));

interface PplPoint {
  x: number;
  y: number;
  label: string;
  title: string;
  color: string;
  shape: Shape;
  full: boolean;
}

interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

const overlaps = (a: Box, b: Box) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

/**
 * Point labels placed where they collide with nothing: above, below, right or left of the point,
 * inside the plot area. A label with no free place is left out; the legend below names every point.
 */
function PointLabels({ points }: { points: PplPoint[] }) {
  const xs = useXAxisScale();
  const ys = useYAxisScale();
  const area = usePlotArea();
  if (!xs || !ys || !area) return null;
  const at = points.map((p) => ({ p, cx: xs(p.x), cy: ys(p.y) })).filter((d): d is { p: PplPoint; cx: number; cy: number } => d.cx !== undefined && d.cy !== undefined);
  const taken: Box[] = at.map(({ cx, cy }) => ({ x0: cx - 6, y0: cy - 6, x1: cx + 6, y1: cy + 6 }));
  const fontSize = 11;
  const h = fontSize + 2;
  const labels: Array<{ x: number; y: number; anchor: 'start' | 'middle' | 'end'; text: string; key: string }> = [];
  // Run labels first (they are short numbers), then the 16-bit points.
  const order = [...at].sort((a, b) => Number(a.p.full) - Number(b.p.full));
  for (const { p, cx, cy } of order) {
    const w = textWidth(p.label, fontSize);
    const candidates: Array<{ x: number; y: number; anchor: 'start' | 'middle' | 'end'; box: Box }> = [
      { x: cx, y: cy - 9, anchor: 'middle', box: { x0: cx - w / 2, y0: cy - 9 - h + 3, x1: cx + w / 2, y1: cy - 7 } },
      { x: cx + 9, y: cy + 4, anchor: 'start', box: { x0: cx + 8, y0: cy - h / 2, x1: cx + 9 + w, y1: cy + h / 2 } },
      { x: cx, y: cy + 18, anchor: 'middle', box: { x0: cx - w / 2, y0: cy + 7, x1: cx + w / 2, y1: cy + 7 + h } },
      { x: cx - 9, y: cy + 4, anchor: 'end', box: { x0: cx - 9 - w, y0: cy - h / 2, x1: cx - 8, y1: cy + h / 2 } },
      { x: cx + 8, y: cy - 8, anchor: 'start', box: { x0: cx + 7, y0: cy - 8 - h + 3, x1: cx + 8 + w, y1: cy - 6 } },
      { x: cx - 8, y: cy - 8, anchor: 'end', box: { x0: cx - 8 - w, y0: cy - 8 - h + 3, x1: cx - 7, y1: cy - 6 } },
      { x: cx + 8, y: cy + 17, anchor: 'start', box: { x0: cx + 7, y0: cy + 6, x1: cx + 8 + w, y1: cy + 6 + h } },
      { x: cx - 8, y: cy + 17, anchor: 'end', box: { x0: cx - 8 - w, y0: cy + 6, x1: cx - 7, y1: cy + 6 + h } },
    ];
    const inside = (b: Box) => b.x0 >= area.x && b.x1 <= area.x + area.width && b.y0 >= area.y && b.y1 <= area.y + area.height;
    const own = { x0: cx - 6, y0: cy - 6, x1: cx + 6, y1: cy + 6 };
    const fit = candidates.find((c) => inside(c.box) && !taken.some((t) => overlaps(t, c.box) && !(t.x0 === own.x0 && t.y0 === own.y0)));
    if (!fit) continue;
    taken.push(fit.box);
    labels.push({ x: fit.x, y: fit.y, anchor: fit.anchor, text: p.label, key: `${p.label}-${p.x}-${p.y}` });
  }
  return (
    <g className="point-labels" data-testid="point-labels">
      {labels.map((l) => (
        <text key={l.key} x={l.x} y={l.y} textAnchor={l.anchor} fontSize={fontSize} fill="var(--text-2)" fontWeight={600}>
          {l.text}
        </text>
      ))}
    </g>
  );
}

function PplTooltip({ active, payload }: { active?: boolean; payload?: Array<{ payload: PplPoint }> }) {
  const p = active ? payload?.[0]?.payload : undefined;
  if (!p) return null;
  return (
    <div className="chart-tooltip">
      <div className="chart-tooltip-title">{p.title}</div>
      <div>
        perplexity {p.y.toFixed(2)} · {p.full ? '16 bits per weight' : `${p.x.toFixed(3)} bits per weight`}
      </div>
    </div>
  );
}

/**
 * Perplexity against true bits per weight on a log2-like axis from 2 to 16 bits, so each base model's
 * 16-bit point sits on the same chart as its runs. Points of one model share a marker shape.
 */
export function PerplexityChart({ runs }: { runs: ComparedRun[] }) {
  const [ref, width] = useWidth(480);
  const groups = groupByModel(runs.map((c) => ({ ...c, modelDir: c.run.modelDir, modelName: c.run.modelName })));
  const many = groups.length > 1;
  const points: PplPoint[] = [];
  groups.forEach((g, gi) => {
    const shape = SHAPES[gi % SHAPES.length]!;
    for (const { run, color, n } of g.runs) {
      if (run.bitsPerWeight === null || run.perplexity === null) continue;
      points.push({ x: run.bitsPerWeight, y: run.perplexity, label: String(n), title: `${n}. ${run.name}`, color, shape, full: false });
    }
    const full = g.runs.find((c) => c.run.perplexityFull !== null)?.run.perplexityFull ?? null;
    if (full !== null) points.push({ x: 16, y: full, label: '16-bit', title: `${g.name}, 16-bit original`, color: 'var(--bits-16)', shape, full: true });
  });
  const runPoints = points.filter((p) => !p.full).length;
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const xDomain: [number, number] = xs.length ? [Math.min(1.8, ...xs.map((x) => x * 0.92)), Math.max(4.5, ...xs.map((x) => x * 1.12))] : [1.8, 17];
  const xTicks = [2, 3, 4, 6, 8, 12, 16].filter((t) => t >= xDomain[0] && t <= xDomain[1]);
  const yMin = ys.length ? Math.min(...ys) : 1;
  const yMax = ys.length ? Math.max(...ys) : 10;
  // A log axis when the perplexities span a wide range (2-bit next to 16-bit), else a linear one.
  const logY = yMax / yMin > 3;
  const yDomain: [number, number] = logY ? [yMin / 1.25, yMax * 1.25] : [Math.max(0, yMin - (yMax - yMin) * 0.2 - 0.5), yMax + (yMax - yMin) * 0.2 + 0.5];
  const yTicks = logY ? logTicks(yDomain[0], yDomain[1]) : linearTicks(yDomain[0], yDomain[1], 5);
  const yFormat = axisFormatter(yTicks);
  const yWidth = Math.ceil(Math.max(...yTicks.map((t) => textWidth(yFormat(t), 11)), 20)) + 14;
  return (
    <div ref={ref} className="chart" data-testid="perplexity-chart" data-points={runPoints}>
      <ScatterChart width={width} height={270} margin={{ top: 12, right: 20, bottom: 22, left: 4 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" />
        <XAxis
          type="number"
          dataKey="x"
          name="bits/weight"
          scale="log"
          domain={xDomain}
          ticks={xTicks}
          allowDataOverflow
          tickFormatter={(v: number) => String(v)}
          stroke="var(--text-3)"
          fontSize={11}
          label={{ value: 'bits per weight', position: 'insideBottom', offset: -12, fill: 'var(--text-3)', fontSize: 11 }}
        />
        <YAxis type="number" dataKey="y" name="perplexity" scale={logY ? 'log' : 'linear'} domain={yDomain} ticks={yTicks} allowDataOverflow stroke="var(--text-3)" fontSize={11} width={yWidth} tickFormatter={yFormat} />
        <Tooltip content={<PplTooltip />} isAnimationActive={false} cursor={{ strokeDasharray: '3 3' }} />
        <Scatter
          data={points}
          isAnimationActive={false}
          shape={(s: { cx?: number; cy?: number; payload?: PplPoint }) =>
            s.payload!.full ? (
              <Marker cx={s.cx!} cy={s.cy!} shape={s.payload!.shape} fill="var(--surface)" stroke="var(--text-3)" />
            ) : (
              <Marker cx={s.cx!} cy={s.cy!} shape={s.payload!.shape} fill={s.payload!.color} />
            )
          }
        />
        <PointLabels points={points} />
      </ScatterChart>
      <ul className="chart-key" data-testid="perplexity-legend">
        {many &&
          groups.map((g, gi) => (
            <li key={g.key} className="chart-key-group">
              <svg width="12" height="12" viewBox="0 0 12 12" aria-hidden="true">
                <Marker cx={6} cy={6} r={4} shape={SHAPES[gi % SHAPES.length]!} fill="var(--text-3)" />
              </svg>
              <span className="chart-key-name" title={g.modelDir ?? g.name}>
                {g.name}
              </span>
            </li>
          ))}
        {runs.map((c) => (
          <RunKeyItem key={c.run.runId} {...c} />
        ))}
      </ul>
    </div>
  );
}

function RunKeyItem({ run, color, n }: ComparedRun) {
  return (
    <li title={`${run.name}\n${settingsLabel(run.settings)}`}>
      <span className="chip-dot" style={{ background: color }} />
      <span className="chart-key-n">{n}</span>
      <MiddleEllipsis className="chart-key-name" text={run.name} />
    </li>
  );
}

/** Which colour and number is which run, under a chart (names cut with an ellipsis, in full on hover). */
export function RunKey({ runs }: { runs: ComparedRun[] }) {
  return (
    <ul className="chart-key">
      {runs.map((c) => (
        <RunKeyItem key={c.run.runId} {...c} />
      ))}
    </ul>
  );
}

/**
 * Horizontal bars, each with its run's number and settings beside it (the name in full on hover and in
 * the legend); each base model's bars on their own scale, since a 135M model's size dwarfs a 260k one's.
 */
function RunBars(props: { runs: ComparedRun[]; value: (r: RunDetail) => number | null; format: (v: number) => string; testId: string }) {
  const groups = groupByModel(props.runs.map((c) => ({ ...c, modelDir: c.run.modelDir, modelName: c.run.modelName })));
  return (
    <div className="run-bars" data-testid={props.testId}>
      {groups.map((g) => {
        const max = Math.max(0, ...g.runs.map((c) => props.value(c.run) ?? 0));
        return (
        <div key={g.key} className="run-bars-group">
          {groups.length > 1 && <div className="run-bars-model">{g.name}</div>}
          {g.runs.map(({ run, color, n }) => {
            const v = props.value(run);
            return (
              <div key={run.runId} className="run-bar" title={`${n}. ${run.name}\n${settingsLabel(run.settings)}`}>
                <span className="run-bar-name">
                  <span className="chart-key-n">{n}</span>
                  <span className="run-bar-label">{settingsLabel(run.settings)}</span>
                </span>
                <span className="run-bar-track">{v !== null && max > 0 && <span className="run-bar-fill" style={{ width: `${(100 * v) / max}%`, background: color }} />}</span>
                <span className="run-bar-value">{v !== null ? props.format(v) : '—'}</span>
              </div>
            );
          })}
        </div>
        );
      })}
    </div>
  );
}

export const SizeChart = ({ runs }: { runs: ComparedRun[] }) => <RunBars runs={runs} value={(r) => r.bytesOnDisk} format={formatBytes} testId="size-chart" />;
export const TimeChart = ({ runs }: { runs: ComparedRun[] }) => <RunBars runs={runs} value={(r) => r.seconds} format={formatDuration} testId="time-chart" />;

/** The per-layer proxy loss of runs of one base model, overlaid; x is the layer in model order. */
export function LayerOverlayChart({ runs }: { runs: ComparedRun[] }) {
  const [ref, width] = useWidth();
  const rows = new Map<number, Record<string, number>>();
  let blocks = 1;
  for (const { run } of runs) {
    for (const l of orderLayers(run.layers)) {
      blocks = Math.max(blocks, l.block + 1);
      const row = rows.get(l.x) ?? { x: l.x };
      // A log axis cannot place zero; such a layer is exact and shows in the Run page's table.
      if (l.proxyLoss > 0) row[run.runId] = l.proxyLoss;
      rows.set(l.x, row);
    }
  }
  const data = [...rows.values()].sort((a, b) => a.x! - b.x!);
  const losses = runs.flatMap(({ run }) => run.layers.map((l) => l.proxyLoss).filter((v) => v > 0));
  const domain: [number, number] = losses.length ? [Math.min(...losses) / 1.5, Math.max(...losses) * 1.5] : [1e-4, 1];
  const yTicks = logTicks(domain[0], domain[1]);
  const yFormat = axisFormatter(yTicks);
  const yWidth = Math.ceil(Math.max(...yTicks.map((t) => textWidth(yFormat(t), 11)), 20)) + 14;
  const ticks = blockTicks(blocks, width - yWidth - 32);
  return (
    <div ref={ref} className="chart" data-testid="overlay-chart" data-blocks={blocks}>
      <LineChart width={width} height={280} data={data} margin={{ top: 12, right: 16, bottom: 8, left: 4 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
        <XAxis type="number" dataKey="x" domain={[-0.5, blocks * 7 - 0.5]} ticks={ticks} tickFormatter={blockLabel} fontSize={11} stroke="var(--text-3)" allowDecimals={false} />
        <YAxis scale="log" domain={domain} ticks={yTicks} allowDataOverflow tickFormatter={yFormat} fontSize={11} stroke="var(--text-3)" width={yWidth} />
        <Tooltip formatter={(v) => formatLoss(Number(v))} labelFormatter={(x) => blockLabel(Math.floor(Number(x) / 7) * 7 + 3)} isAnimationActive={false} />
        {runs.map(({ run, color, n }) => (
          <Line key={run.runId} dataKey={run.runId} name={`${n}. ${run.name}`} stroke={color} dot={{ r: 2 }} strokeWidth={1.5} isAnimationActive={false} connectNulls />
        ))}
      </LineChart>
      <RunKey runs={runs} />
    </div>
  );
}
