// Fine-tuning loss curves: train and held-out loss per epoch, one pair of lines per stage (each block
// in-block, then end-to-end), drawn as the epochs arrive.
import { CartesianGrid, Legend, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import type { FineTuneEpoch } from '../../../../app/contract/index';
import { formatLoss, useWidth } from './chart-utils';

export function FineTuneChart({ epochs }: { epochs: FineTuneEpoch[] }) {
  const [ref, width] = useWidth();
  // One x position per epoch in arrival order, so block after block reads left to right.
  const data = epochs.map((e, i) => ({ i, label: e.stage === 'e2e' ? `e2e ${e.epoch}` : `b${e.block}${e.group ? ` ${e.group}` : ''} e${e.epoch}`, train: e.trainLoss, heldOut: e.heldOutLoss ?? undefined }));
  return (
    <div ref={ref} className="chart" data-testid="finetune-chart" data-points={data.length}>
      <LineChart width={width} height={220} data={data} margin={{ top: 12, right: 16, bottom: 8, left: 8 }}>
        <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
        <XAxis dataKey="label" stroke="var(--text-3)" fontSize={11} interval="preserveStartEnd" />
        <YAxis tickFormatter={formatLoss} stroke="var(--text-3)" fontSize={11} width={64} scale="log" domain={['auto', 'auto']} allowDataOverflow />
        <Tooltip formatter={(v) => formatLoss(Number(v))} isAnimationActive={false} />
        <Legend />
        <Line type="monotone" dataKey="train" name="train" stroke="var(--accent)" dot={false} isAnimationActive={false} />
        <Line type="monotone" dataKey="heldOut" name="held-out" stroke="var(--kind-gateup)" dot={false} isAnimationActive={false} connectNulls />
      </LineChart>
    </div>
  );
}
