import { useMemo, useState } from 'react';
import type { HadamardFactor, LinearLayer, ModelInspection } from '../../../../app/contract/model';
import { formatCount } from '../../format';
import { Badge, Card } from '../ui';
import { factorText, methodShort, methodText } from './hadamard';

/** Blocks shown expanded at first; a 30-block model opens with its first two. */
const OPEN_BLOCKS_SMALL_MODEL = 6;

function groupByBlock(linears: LinearLayer[]): Array<[number, LinearLayer[]]> {
  const groups = new Map<number, LinearLayer[]>();
  for (const l of linears) {
    const g = groups.get(l.block);
    if (g) g.push(l);
    else groups.set(l.block, [l]);
  }
  return [...groups.entries()].sort((a, b) => a[0] - b[0]);
}

/** "model.layers.3.self_attn.q_proj" -> "self_attn.q_proj". */
function shortName(name: string): string {
  return name.replace(/^model\.layers\.\d+\./, '');
}

/**
 * In the summary the full method; in table cells only a fallback is named (the summary says how each
 * size is built, the cell's tooltip too), so the table fits its card at 30 blocks and 1280 px.
 */
function Factor({ h, full }: { h: HadamardFactor; full?: boolean }) {
  const note = full ? methodText(h) : h.method === 'random-orthogonal' ? methodShort(h) : null;
  return (
    <span className="factor" title={`${h.n} = ${h.k} x ${h.pow2} (${methodText(h)})`}>
      <span className="factor-value">{factorText(h)}</span>
      {note && <span className={`factor-method ${h.method === 'random-orthogonal' ? 'factor-fallback' : ''}`}> ({note})</span>}
    </span>
  );
}

/** Every distinct transform size in the model with its factorisation, once. */
function TransformSizes({ linears }: { linears: LinearLayer[] }) {
  const distinct = useMemo(() => {
    const seen = new Map<number, HadamardFactor>();
    for (const l of linears) {
      seen.set(l.hadamardIn.n, l.hadamardIn);
      seen.set(l.hadamardOut.n, l.hadamardOut);
    }
    return [...seen.values()].sort((a, b) => a.n - b.n);
  }, [linears]);
  const fallbacks = distinct.filter((h) => h.method === 'random-orthogonal');
  return (
    <>
      <ul className="transform-sizes" data-testid="transform-sizes">
        {distinct.map((h) => (
          <li key={h.n} className="transform-size">
            <span className="transform-n">{formatCount(h.n)}</span> = <Factor h={h} full />
          </li>
        ))}
      </ul>
      {fallbacks.length > 0 && (
        <p className="card-note" data-testid="transform-fallbacks">
          {fallbacks.map((h) => `${h.n}: ${h.construction ?? `no Hadamard matrix of order ${h.k} is available`}`).join('; ')}. A fixed seeded orthogonal factor keeps the
          weights incoherent; only the transform is slower than a Hadamard one.
        </p>
      )}
    </>
  );
}

export function LinearTable({ inspection }: { inspection: ModelInspection }) {
  const groups = useMemo(() => groupByBlock(inspection.linears), [inspection.linears]);
  const [open, setOpen] = useState<Set<number>>(
    () => new Set(groups.slice(0, groups.length <= OPEN_BLOCKS_SMALL_MODEL ? groups.length : 2).map(([b]) => b)),
  );
  const toggle = (block: number) =>
    setOpen((prev) => {
      const next = new Set(prev);
      if (next.has(block)) next.delete(block);
      else next.add(block);
      return next;
    });
  const allOpen = open.size === groups.length;

  return (
    <Card
      title={`Linear layers`}
      testId="linear-card"
      actions={
        <button type="button" className="btn btn-ghost btn-small" onClick={() => setOpen(allOpen ? new Set() : new Set(groups.map(([b]) => b)))}>
          {allOpen ? 'Collapse all' : 'Expand all'}
        </button>
      }
    >
      <p className="card-note" data-testid="linear-summary">
        {inspection.linears.length} linear layers in {groups.length} blocks. Each side is rotated by a randomized Hadamard transform of size n = K × 2
        <sup>k</sup>; the sizes in this model and how each is built:
      </p>
      <TransformSizes linears={inspection.linears} />
      <div className="table-wrap">
        <table className="data-table linear-table">
          <thead>
            <tr>
              <th>Layer</th>
              <th>Kind</th>
              <th className="num">Out × in</th>
              <th>Input side n</th>
              <th>Output side m</th>
              <th className="num">Padded n</th>
            </tr>
          </thead>
          {groups.map(([block, layers]) => {
            const isOpen = open.has(block);
            const params = layers.reduce((s, l) => s + l.outFeatures * l.inFeatures, 0);
            return (
              <tbody key={block} className="block-group" data-testid={`block-${block}`}>
                <tr className="block-row">
                  <th colSpan={6} scope="rowgroup">
                    <button type="button" className="block-toggle" aria-expanded={isOpen} onClick={() => toggle(block)}>
                      <span className={`chevron ${isOpen ? 'chevron-open' : ''}`} aria-hidden="true" />
                      Block {block}
                      <span className="muted">
                        {' '}
                        · {layers.length} layers · {formatCount(params)} weights
                      </span>
                    </button>
                  </th>
                </tr>
                {isOpen &&
                  layers.map((l) => (
                    <tr key={l.name} data-testid="linear-row">
                      <td className="mono" title={`${l.name} (${l.dtype})`}>
                        {shortName(l.name)}
                      </td>
                      <td>
                        <span className={`kind kind-${l.kind}`}>{l.kind}</span>
                      </td>
                      <td className="num mono">
                        {l.outFeatures} × {l.inFeatures}
                      </td>
                      <td>
                        <Factor h={l.hadamardIn} />
                      </td>
                      <td>
                        <Factor h={l.hadamardOut} />
                      </td>
                      <td className="num mono">
                        {l.paddedIn === l.inFeatures ? l.paddedIn : <Badge tone="warn" title={`n = ${l.inFeatures} is padded to a multiple of 8 for BlockLDLQ`}>{l.paddedIn}</Badge>}
                      </td>
                    </tr>
                  ))}
              </tbody>
            );
          })}
        </table>
      </div>
    </Card>
  );
}
