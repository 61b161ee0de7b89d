import type { ModelInspection } from '../../../../app/contract/model';
import { formatCompact, formatCount } from '../../format';
import { Card } from '../ui';

/** Parameter counts as one stacked bar: the linear weights QuIP# quantizes against what stays 16-bit. */
export function ParametersCard({ inspection }: { inspection: ModelInspection }) {
  const p = inspection.parameters;
  const parts = [
    { key: 'linear', label: 'Linear layers (quantized)', value: p.linear },
    { key: 'embedding', label: 'Embeddings', value: p.embedding },
    { key: 'other', label: 'Norms and biases', value: p.other },
  ];
  return (
    <Card title="Parameters" testId="parameters-card">
      <div className="big-number" data-testid="parameters-total">
        {formatCount(p.total)} <span className="big-number-unit">parameters ({formatCompact(p.total)})</span>
      </div>
      <div className="stacked-bar" aria-hidden="true">
        {parts.map((part) =>
          part.value > 0 ? <div key={part.key} className={`stacked-part part-${part.key}`} style={{ flexGrow: part.value }} /> : null,
        )}
      </div>
      <ul className="legend">
        {parts.map((part) => (
          <li key={part.key}>
            <span className={`legend-swatch part-${part.key}`} />
            <span className="legend-label">{part.label}</span>
            <span className="legend-value">
              {formatCount(part.value)} <span className="muted">({p.total > 0 ? ((100 * part.value) / p.total).toFixed(1) : '0'}%)</span>
            </span>
          </li>
        ))}
      </ul>
    </Card>
  );
}
