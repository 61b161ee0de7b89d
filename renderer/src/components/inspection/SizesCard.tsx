import type { ModelInspection } from '../../../../app/contract/model';
import { formatBytes } from '../../../../app/domain/format';
import { Card } from '../ui';

/** Estimated weight files' size at 2, 3, 4 and 16 bits (app/domain estimateWeightBytes, New run's figure), as bars against 16 bits. */
export function SizesCard({ inspection }: { inspection: ModelInspection }) {
  const sizes = [...inspection.sizes].sort((a, b) => a.bits - b.bits);
  const full = sizes.find((s) => s.bits === 16)?.bytes ?? Math.max(1, ...sizes.map((s) => s.bytes));
  return (
    <Card title="Size on disk" testId="sizes-card">
      <p className="card-note">The weight files (.safetensors) a run at these bits writes, as New run estimates them: codes, sign vectors and scales; embeddings and norms stay 16-bit.</p>
      <ul className="size-bars">
        {sizes.map((s) => (
          <li key={s.bits} className="size-row" data-testid={`size-${s.bits}`}>
            <span className="size-label">{s.bits === 16 ? '16-bit' : `${s.bits}-bit`}</span>
            <span className="size-track">
              <span className={`size-fill size-fill-${s.bits}`} style={{ width: `${Math.max(1, (100 * s.bytes) / full)}%` }} />
            </span>
            <span className="size-value">
              {formatBytes(s.bytes)}
              <span className="muted"> · {s.bitsPerLinearWeight.toFixed(2)} bits/weight</span>
              {s.bits !== 16 && <span className="muted"> · {(full / s.bytes).toFixed(1)}× smaller</span>}
            </span>
          </li>
        ))}
      </ul>
    </Card>
  );
}
