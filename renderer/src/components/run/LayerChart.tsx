// The per-layer chart of one run: a point per quantized linear layer as it finishes, layers along x
// in model order grouped by block (alternate blocks shaded), coloured by kind, proxy loss or relative
// Frobenius error on a log scale, details on hover.
import { CartesianGrid, ReferenceArea, Scatter, ScatterChart, Tooltip, XAxis, YAxis } from 'recharts';
import type { RunLayer } from '../../../../app/contract/index';
import { axisFormatter, blockLabel, blockTicks, formatLoss, KIND_GROUPS, kindColor, logTicks, METRIC_LABEL, orderLayers, textWidth, useWidth, type Metric } from './chart-utils';

interface Point extends RunLayer {
  x: number;
  y: number;
}

function LayerTooltip({ active, payload }: { active?: boolean; payload?: Array<{ payload: Point }> }) {
  const p = active ? payload?.[0]?.payload : undefined;
  if (!p) return null;
  return (
    <div className="chart-tooltip" data-testid="layer-tooltip">
      <div className="chart-tooltip-title">{p.name}</div>
      <div>
        block {p.block} · {p.kind} · {p.shape[0]} × {p.shape[1]}
      </div>
      <div>proxy loss {formatLoss(p.proxyLoss)}</div>
      <div>rel. Frobenius error {formatLoss(p.frobeniusError)}</div>
      <div>
        {p.seconds.toFixed(3)} s · Cholesky {p.cholesky}
      </div>
    </div>
  );
}

export function LayerChart(props: { layers: RunLayer[]; blocks: number | null; metric: Metric; height?: number }) {
  const [ref, width] = useWidth();
  const points: Point[] = orderLayers(props.layers)
    .map((l) => ({ ...l, y: l[props.metric] }))
    // A log axis cannot place zero; such a layer is exact and shows in the table and tooltip instead.
    .filter((p) => p.y > 0);
  const blocks = Math.max(props.blocks ?? 0, ...props.layers.map((l) => l.block + 1), 1);
  // A little room above and below on the log axis, so no point sits on the frame.
  const ys = points.map((p) => p.y);
  const domain: [number, number] = ys.length ? [Math.min(...ys) / 1.5, Math.max(...ys) * 1.5] : [1e-4, 1];
  // One number format for the whole axis, and room for its widest label beside the axis title.
  const yTicks = logTicks(domain[0], domain[1]);
  const yFormat = axisFormatter(yTicks);
  const yWidth = Math.ceil(Math.max(...yTicks.map((t) => textWidth(yFormat(t), 11)), 24)) + 30;
  // One label per block where there is room, else every 2nd, 5th, 10th... so they never run together.
  const ticks = blockTicks(blocks, width - yWidth - 24);
  return (
    <div ref={ref} className="chart" data-testid="layer-chart" data-points={points.length}>
      <ScatterChart width={width} height={props.height ?? 300} margin={{ top: 12, right: 16, bottom: 8, left: 4 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
        {Array.from({ length: blocks }, (_, b) =>
          b % 2 === 1 ? <ReferenceArea key={b} x1={b * 7 - 0.5} x2={b * 7 + 6.5} fill="var(--bg-sunken)" fillOpacity={0.7} stroke="none" ifOverflow="hidden" /> : null,
        )}
        <XAxis
          type="number"
          dataKey="x"
          domain={[-0.5, blocks * 7 - 0.5]}
          ticks={ticks}
          tickFormatter={blockLabel}
          stroke="var(--text-3)"
          fontSize={11}
          allowDecimals={false}
        />
        <YAxis
          type="number"
          dataKey="y"
          scale="log"
          domain={domain}
          ticks={yTicks}
          allowDataOverflow
          tickFormatter={yFormat}
          stroke="var(--text-3)"
          fontSize={11}
          width={yWidth}
          label={{ value: METRIC_LABEL[props.metric], angle: -90, position: 'insideLeft', offset: 4, fill: 'var(--text-3)', fontSize: 11, style: { textAnchor: 'middle' } }}
        />
        <Tooltip content={<LayerTooltip />} cursor={{ strokeDasharray: '3 3' }} isAnimationActive={false} />
        <Scatter
          data={points}
          isAnimationActive={false}
          shape={(p: { cx?: number; cy?: number; payload?: Point }) => (
            <circle cx={p.cx} cy={p.cy} r={5} fill={kindColor(p.payload!.kind)} stroke="var(--surface)" strokeWidth={1.5} data-testid="layer-point" data-kind={p.payload!.kind} />
          )}
        />
      </ScatterChart>
      <div className="chart-legend">
        {KIND_GROUPS.map((g) => (
          <span key={g.id} className="legend-item">
            <span className="legend-swatch" style={{ background: g.color }} />
            <span className="legend-label">{g.label}</span>
          </span>
        ))}
      </div>
    </div>
  );
}
