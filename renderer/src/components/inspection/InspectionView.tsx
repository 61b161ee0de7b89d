import type { ReactNode } from 'react';
import type { ModelInspection } from '../../../../app/contract/model';
import { formatBytes } from '../../../../app/domain/format';
import { baseName, formatCompact } from '../../format';
import { Badge, Card } from '../ui';
import { ArchitectureCard } from './ArchitectureCard';
import { LinearTable } from './LinearTable';
import { ParametersCard } from './ParametersCard';
import { SizesCard } from './SizesCard';
import { TokenizerCard } from './TokenizerCard';

const SOURCE_LABEL = { local: 'Local folder', hub: 'Hugging Face Hub', sample: 'Built-in sample' } as const;

export function modelTitle(inspection: ModelInspection): string {
  return inspection.source.repoId ?? baseName(inspection.source.path);
}

/** Everything the inspector found in a model, laid out for a person; `actions` go in its header. */
export function InspectionView({ inspection, actions }: { inspection: ModelInspection; actions?: ReactNode }) {
  const a = inspection.architecture;
  const weightBytes = inspection.weightFiles.reduce((s, f) => s + f.bytes, 0);
  return (
    <article className="inspection" data-testid="inspection">
      <header className="inspection-header">
        <div className="inspection-head-main">
          <h2 className="inspection-title">{modelTitle(inspection)}</h2>
          <div className="inspection-path mono" title={inspection.source.path}>
            {inspection.source.path}
          </div>
          <div className="inspection-badges">
            <Badge tone="accent">{a.family}</Badge>
            <Badge>{formatCompact(inspection.parameters.total)} parameters</Badge>
            <Badge>{SOURCE_LABEL[inspection.source.kind]}</Badge>
            {inspection.quantization && <Badge tone="ok">Quantized</Badge>}
            {inspection.source.revision && <Badge title="revision">{inspection.source.revision.slice(0, 10)}</Badge>}
          </div>
        </div>
        {actions && <div className="inspection-actions">{actions}</div>}
      </header>

      {inspection.warnings.length > 0 && (
        <div className="warnings" role="status" data-testid="warnings">
          <div className="warnings-title">Worth knowing</div>
          <ul>
            {inspection.warnings.map((w) => (
              <li key={w}>{w}</li>
            ))}
          </ul>
        </div>
      )}

      <div className="inspection-grid">
        <ArchitectureCard inspection={inspection} />
        <ParametersCard inspection={inspection} />
        <SizesCard inspection={inspection} />
        <TokenizerCard inspection={inspection} />
      </div>

      <LinearTable inspection={inspection} />

      <Card title="Weight files" testId="weight-files">
        <table className="data-table">
          <thead>
            <tr>
              <th>File</th>
              <th className="num">Tensors</th>
              <th className="num">Size</th>
            </tr>
          </thead>
          <tbody>
            {inspection.weightFiles.map((f) => (
              <tr key={f.file}>
                <td className="mono">{f.file}</td>
                <td className="num">{f.tensors}</td>
                <td className="num">{formatBytes(f.bytes)}</td>
              </tr>
            ))}
          </tbody>
          {inspection.weightFiles.length > 1 && (
            <tfoot>
              <tr>
                <td>Total</td>
                <td className="num">{inspection.weightFiles.reduce((s, f) => s + f.tensors, 0)}</td>
                <td className="num">{formatBytes(weightBytes)}</td>
              </tr>
            </tfoot>
          )}
        </table>
      </Card>
    </article>
  );
}
