// Fine-tuning loss curves: train and held-out loss per epoch, one pair of lines per stage (each block
// in-block, then end-to-end), drawn as the epochs arrive.
import { CartesianGrid, Legend, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import type { FineTuneEpoch } from '../../../../app/contract/index';
import { formatLoss, useWidth } from './chart-utils';

export function FineTuneChart({ epochs }: { epochs: FineTuneEpoch[] }) {
  const [ref, width] = useWidth();
  // One x position per epoch in arrival order, so block after block reads left to right; each tuning
  // step (a block's group, or end-to-end) is its own short curve, with a gap before the next.
  const data: Array<{ label: string; train?: number; heldOut?: number }> = [];
  let step = '';
  for (const e of epochs) {
    const id = e.stage === 'e2e' ? 'e2e' : `b${e.block}${e.group ? ` ${e.group}` : ''}`;
    if (step && id !== step) data.push({ label: '' });
    step = id;
    data.push({ label: `${id} e${e.epoch}`, train: e.trainLoss, heldOut: e.heldOutLoss ?? undefined });
  }
  const ys = epochs.flatMap((e) => [e.trainLoss, e.heldOutLoss ?? e.trainLoss]).filter((v) => v > 0);
  const domain: [number, number] = ys.length ? [Math.min(...ys) / 1.3, Math.max(...ys) * 1.3] : [1e-4, 1];
  return (
    <div ref={ref} className="chart" data-testid="finetune-chart" data-points={epochs.length}>
      <LineChart width={width} height={220} data={data} margin={{ top: 12, right: 16, bottom: 8, left: 8 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
        <XAxis dataKey="label" stroke="var(--text-3)" fontSize={11} interval="preserveStartEnd" />
        <YAxis tickFormatter={formatLoss} stroke="var(--text-3)" fontSize={11} width={64} scale="log" domain={domain} />
        <Tooltip formatter={(v) => formatLoss(Number(v))} isAnimationActive={false} />
        <Legend />
        <Line type="linear" dataKey="train" name="train" stroke="var(--accent)" dot={{ r: 2 }} isAnimationActive={false} />
        <Line type="linear" dataKey="heldOut" name="held-out" stroke="var(--kind-gateup)" dot={{ r: 2 }} isAnimationActive={false} />
      </LineChart>
    </div>
  );
}
