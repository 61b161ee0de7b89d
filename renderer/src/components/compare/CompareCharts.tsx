// The Compare screen's charts: perplexity against true bits per weight, size on disk, quantization
// time, and the per-layer proxy loss of every chosen run overlaid.
import { Bar, BarChart, CartesianGrid, Cell, LabelList, Legend, Line, LineChart, ReferenceLine, Scatter, ScatterChart, Tooltip, XAxis, YAxis } from 'recharts';
import type { RunDetail } from '../../../../app/contract/index';
import { formatBytes, formatDuration } from '../../format';
import { formatLoss, orderLayers, useWidth } from '../run/chart-utils';

export const RUN_COLORS = ['#7c6cf0', '#1fa68c', '#e08a1e', '#d6457a', '#5b8def', '#0ea5a3'];
export const runColor = (i: number) => RUN_COLORS[i % RUN_COLORS.length]!;

export function PerplexityChart({ runs }: { runs: RunDetail[] }) {
  const [ref, width] = useWidth(480);
  const points = runs
    .map((r, i) => ({ name: r.name, x: r.bitsPerWeight, y: r.perplexity, color: runColor(i) }))
    .filter((p): p is { name: string; x: number; y: number; color: string } => p.x !== null && p.y !== null);
  const full = runs.find((r) => r.perplexityFull !== null)?.perplexityFull ?? null;
  return (
    <div ref={ref} className="chart" data-testid="perplexity-chart" data-points={points.length}>
      <ScatterChart width={width} height={260} margin={{ top: 16, right: 24, bottom: 24, left: 8 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" />
        <XAxis type="number" dataKey="x" name="bits/weight" domain={[1.5, 'auto']} stroke="var(--text-3)" fontSize={11} label={{ value: 'true bits per weight', position: 'insideBottom', offset: -12, fill: 'var(--text-3)', fontSize: 11 }} />
        <YAxis type="number" dataKey="y" name="perplexity" domain={['auto', 'auto']} stroke="var(--text-3)" fontSize={11} width={56} tickFormatter={(v: number) => v.toFixed(0)} />
        {full !== null && <ReferenceLine y={full} stroke="var(--text-3)" strokeDasharray="4 4" label={{ value: `full precision ${full.toFixed(1)}`, fill: 'var(--text-3)', fontSize: 11, position: 'insideTopRight' }} />}
        <Tooltip formatter={(v, n) => (n === 'perplexity' ? Number(v).toFixed(2) : Number(v).toFixed(3))} isAnimationActive={false} />
        <Scatter data={points} isAnimationActive={false}>
          {points.map((p) => (
            <Cell key={p.name} fill={p.color} />
          ))}
          <LabelList dataKey="name" position="top" fontSize={10} fill="var(--text-2)" />
        </Scatter>
      </ScatterChart>
    </div>
  );
}

function RunBars(props: { runs: RunDetail[]; value: (r: RunDetail) => number | null; format: (v: number) => string; testId: string }) {
  const [ref, width] = useWidth(480);
  const data = props.runs.map((r, i) => ({ name: r.name, v: props.value(r), color: runColor(i) })).filter((d) => d.v !== null);
  return (
    <div ref={ref} className="chart" data-testid={props.testId}>
      <BarChart width={width} height={44 + 34 * data.length} data={data} layout="vertical" margin={{ top: 4, right: 72, bottom: 4, left: 8 }}>
        <XAxis type="number" hide />
        <YAxis type="category" dataKey="name" width={Math.min(200, 12 + 7 * Math.max(...data.map((d) => d.name.length), 4))} fontSize={11} stroke="var(--text-3)" />
        <Bar dataKey="v" isAnimationActive={false} radius={[0, 4, 4, 0]}>
          {data.map((d) => (
            <Cell key={d.name} fill={d.color} />
          ))}
          <LabelList dataKey="v" position="right" fontSize={11} fill="var(--text-2)" formatter={(v) => props.format(Number(v))} />
        </Bar>
      </BarChart>
    </div>
  );
}

export const SizeChart = ({ runs }: { runs: RunDetail[] }) => <RunBars runs={runs} value={(r) => r.bytesOnDisk} format={formatBytes} testId="size-chart" />;
export const TimeChart = ({ runs }: { runs: RunDetail[] }) => <RunBars runs={runs} value={(r) => r.seconds} format={formatDuration} testId="time-chart" />;

export function LayerOverlayChart({ runs }: { runs: RunDetail[] }) {
  const [ref, width] = useWidth();
  const rows = new Map<number, Record<string, number | string>>();
  runs.forEach((r) => {
    for (const l of orderLayers(r.layers)) {
      const row = rows.get(l.x) ?? { x: l.x, label: `block ${l.block} ${l.kind}` };
      if (l.proxyLoss > 0) row[r.runId] = l.proxyLoss;
      rows.set(l.x, row);
    }
  });
  const data = [...rows.values()].sort((a, b) => (a.x as number) - (b.x as number));
  const losses = runs.flatMap((r) => r.layers.map((l) => l.proxyLoss).filter((v) => v > 0));
  const domain: [number, number] = losses.length ? [Math.min(...losses) / 1.5, Math.max(...losses) * 1.5] : [1e-4, 1];
  return (
    <div ref={ref} className="chart" data-testid="overlay-chart">
      <LineChart width={width} height={280} data={data} margin={{ top: 12, right: 16, bottom: 8, left: 8 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
        <XAxis dataKey="label" fontSize={11} stroke="var(--text-3)" interval={6} tickFormatter={(l: string) => l.replace(/ [a-z]+$/, '')} />
        <YAxis scale="log" domain={domain} tickFormatter={formatLoss} fontSize={11} stroke="var(--text-3)" width={64} />
        <Tooltip formatter={(v) => formatLoss(Number(v))} isAnimationActive={false} />
        <Legend />
        {runs.map((r, i) => (
          <Line key={r.runId} dataKey={r.runId} name={r.name} stroke={runColor(i)} dot={{ r: 2 }} strokeWidth={1.5} isAnimationActive={false} connectNulls />
        ))}
      </LineChart>
    </div>
  );
}
