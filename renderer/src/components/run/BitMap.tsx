// The bit map of a mixed-width run (a target bits per weight): one cell per linear layer, blocks
// along x and the seven linear kinds down, coloured by the width the allocation gave it (E8P 2-bit,
// RVQ 3-bit, RVQ 4-bit, or kept at 16 bits), with a legend counting each width and the layer's
// details (width, proxy loss, measured sensitivity) on hover or keyboard focus.
import { useState } from 'react';
import type { RunLayer } from '../../../../app/contract/index';
import { formatLoss } from './chart-utils';

type Width = NonNullable<RunLayer['width']>;

export const WIDTHS: Array<{ id: Width; bits: number; label: string; color: string }> = [
  { id: 'e8p', bits: 2, label: '2-bit E8P', color: 'var(--bits-2)' },
  { id: 'rvq3', bits: 3, label: '3-bit RVQ', color: 'var(--bits-3)' },
  { id: 'rvq4', bits: 4, label: '4-bit RVQ', color: 'var(--bits-4)' },
  { id: 'f16', bits: 16, label: '16-bit (kept)', color: 'var(--bits-16)' },
];
const KINDS: Array<RunLayer['kind']> = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

/** Whether a run's layers carry widths (a --target-bpw run). */
export function isMixed(layers: readonly RunLayer[]): boolean {
  return layers.some((l) => l.width !== undefined);
}

export function BitMap({ layers, blocks }: { layers: RunLayer[]; blocks: number | null }) {
  const [at, setAt] = useState<{ layer: RunLayer; left: number; top: number } | null>(null);
  const n = Math.max(blocks ?? 0, ...layers.map((l) => l.block + 1), 1);
  const byKey = new Map(layers.map((l) => [`${l.block}:${l.kind}`, l]));
  const counts = Object.fromEntries(WIDTHS.map((w) => [w.id, layers.filter((l) => l.width === w.id).length])) as Record<Width, number>;
  const weights = layers.reduce((a, l) => a + l.shape[0] * l.shape[1], 0);
  const share = (w: Width) => (weights ? layers.filter((l) => l.width === w).reduce((a, l) => a + l.shape[0] * l.shape[1], 0) / weights : 0);
  const show = (layer: RunLayer, el: HTMLElement) => setAt({ layer, left: el.offsetLeft + el.offsetWidth / 2, top: el.offsetTop + el.offsetHeight });
  const hide = () => setAt(null);
  const w = at ? WIDTHS.find((x) => x.id === at.layer.width) : undefined;
  return (
    <div className="bitmap" data-testid="bit-map" data-layers={layers.length}>
      <div className="bitmap-grid" style={{ gridTemplateColumns: `3.2em repeat(${n}, minmax(6px, 32px))` }} role="grid" aria-label="Bit width of each linear layer">
        {KINDS.map((kind) => (
          <div key={kind} className="bitmap-row" role="row">
            <div className="bitmap-kind" role="rowheader">
              {kind}
            </div>
            {Array.from({ length: n }, (_, b) => {
              const l = byKey.get(`${b}:${kind}`);
              const width = l?.width ? WIDTHS.find((x) => x.id === l.width) : undefined;
              return (
                <div
                  key={b}
                  role="gridcell"
                  className={`bitmap-cell ${l ? '' : 'bitmap-cell-empty'}`}
                  style={width ? { background: width.color } : undefined}
                  tabIndex={l ? 0 : -1}
                  aria-label={l ? `${l.name}: ${width?.label ?? 'width unknown'}` : `block ${b} ${kind}: not yet quantized`}
                  data-testid={l ? 'bitmap-cell' : undefined}
                  data-width={l?.width}
                  onMouseEnter={l ? (e) => show(l, e.currentTarget) : undefined}
                  onFocus={l ? (e) => show(l, e.currentTarget) : undefined}
                  onMouseLeave={hide}
                  onBlur={hide}
                />
              );
            })}
          </div>
        ))}
        <div className="bitmap-row bitmap-axis" aria-hidden="true">
          <div />
          {Array.from({ length: n }, (_, b) => (
            <div key={b} className="bitmap-block">
              {n <= 12 || b % 5 === 0 ? b : ''}
            </div>
          ))}
        </div>
      </div>
      {at && (
        <div className="chart-tooltip bitmap-tooltip" style={{ left: at.left, top: at.top + 4 }} data-testid="bitmap-tooltip" role="tooltip">
          <div className="chart-tooltip-title">{at.layer.name}</div>
          <div>
            block {at.layer.block} · {at.layer.kind} · {at.layer.shape[0]} × {at.layer.shape[1]}
          </div>
          <div>width: {w?.label ?? 'unknown'}</div>
          <div>proxy loss {at.layer.width === 'f16' ? '— (kept at 16 bits)' : formatLoss(at.layer.proxyLoss)}</div>
          <div title="Mean KL divergence of the output from the 16-bit model's with this layer alone at 2 bits, on the calibration text">
            sensitivity (KLD at 2 bits) {at.layer.kld2 !== undefined ? `${formatLoss(at.layer.kld2)} nats` : '—'}
          </div>
        </div>
      )}
      <div className="chart-legend" data-testid="bitmap-legend">
        {WIDTHS.map((x) => (
          <span key={x.id} className="legend-item" data-width={x.id}>
            <span className="legend-swatch" style={{ background: x.color }} />
            <span className="legend-label">
              {x.label} · {counts[x.id]} {counts[x.id] === 1 ? 'layer' : 'layers'}
              {counts[x.id] > 0 ? ` (${(share(x.id) * 100).toFixed(0)}% of weights)` : ''}
            </span>
          </span>
        ))}
      </div>
    </div>
  );
}
