// Fine-tuning loss curves: train and held-out loss per epoch, one pair of lines per stage (each block
// in-block, then end-to-end), drawn as the epochs arrive.
import { CartesianGrid, Legend, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import type { FineTuneEpoch } from '../../../../app/contract/index';
import { axisFormatter, formatLoss, logTicks, textWidth, useWidth } from './chart-utils';

export function FineTuneChart({ epochs }: { epochs: FineTuneEpoch[] }) {
  const [ref, width] = useWidth();
  // One x position per epoch in arrival order, so block after block reads left to right; each tuning
  // step (a block's group, or end-to-end) is its own short curve, with a gap before the next.
  const data: Array<{ i: number; label: string; train?: number; heldOut?: number }> = [];
  // Where each block's tuning (and the end-to-end stage) starts on x, for the axis labels.
  const starts: Array<{ i: number; block: number | null }> = [];
  let step = '';
  for (const e of epochs) {
    const id = e.stage === 'e2e' ? 'e2e' : `b${e.block}${e.group ? ` ${e.group}` : ''}`;
    if (step && id !== step) data.push({ i: data.length, label: '' });
    if (e.stage === 'e2e' ? !starts.some((s) => s.block === null) : !starts.some((s) => s.block === e.block)) starts.push({ i: data.length, block: e.stage === 'e2e' ? null : e.block });
    step = id;
    data.push({ i: data.length, label: `${e.stage === 'e2e' ? 'end-to-end' : `block ${e.block}${e.group ? ` ${e.group}` : ''}`}, epoch ${e.epoch}`, train: e.trainLoss, heldOut: e.heldOutLoss ?? undefined });
  }
  // A label per block where there is room, else every 2nd, 5th, 10th... block, and "end-to-end".
  const blockStarts = starts.filter((s) => s.block !== null);
  const fit = Math.max(2, Math.floor((width - 120) / 62));
  const every = [1, 2, 5, 10, 20, 50, 100].find((k) => Math.ceil(blockStarts.length / k) <= fit - 1) ?? Math.ceil(blockStarts.length / fit);
  const shown = [...blockStarts.filter((_, k) => k % every === 0), ...starts.filter((s) => s.block === null)];
  const tickLabel = new Map(shown.map((s) => [s.i, s.block === null ? 'end-to-end' : `block ${s.block}`]));
  // The last block label must not run into "end-to-end" when both sit near the right end.
  const e2e = shown.find((s) => s.block === null);
  const perX = (width - 120) / Math.max(1, data.length);
  const ticks = shown.filter((s) => s === e2e || !e2e || (e2e.i - s.i) * perX > 70).map((s) => s.i);
  const ys = epochs.flatMap((e) => [e.trainLoss, e.heldOutLoss ?? e.trainLoss]).filter((v) => v > 0);
  const domain: [number, number] = ys.length ? [Math.min(...ys) / 1.3, Math.max(...ys) * 1.3] : [1e-4, 1];
  const yTicks = logTicks(domain[0], domain[1]);
  const yFormat = axisFormatter(yTicks);
  const yWidth = Math.ceil(Math.max(...yTicks.map((t) => textWidth(yFormat(t), 11)), 24)) + 14;
  return (
    <div ref={ref} className="chart" data-testid="finetune-chart" data-points={epochs.length}>
      <LineChart width={width} height={220} data={data} margin={{ top: 12, right: 36, bottom: 8, left: 4 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
        <XAxis type="number" dataKey="i" domain={[-1, Math.max(1, data.length)]} ticks={ticks} tickFormatter={(i: number) => tickLabel.get(i) ?? ''} stroke="var(--text-3)" fontSize={11} allowDecimals={false} />
        <YAxis tickFormatter={yFormat} ticks={yTicks} allowDataOverflow stroke="var(--text-3)" fontSize={11} width={yWidth} scale="log" domain={domain} />
        <Tooltip formatter={(v) => formatLoss(Number(v))} labelFormatter={(i) => data[Number(i)]?.label ?? ''} isAnimationActive={false} />
        <Legend />
        <Line type="linear" dataKey="train" name="train" stroke="var(--accent)" dot={{ r: 2 }} isAnimationActive={false} />
        <Line type="linear" dataKey="heldOut" name="held-out" stroke="var(--kind-gateup)" dot={{ r: 2 }} isAnimationActive={false} />
      </LineChart>
    </div>
  );
}
