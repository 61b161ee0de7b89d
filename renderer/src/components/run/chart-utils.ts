// Shared pieces of the run charts: how layers are ordered and coloured, and a width that follows
// the card (recharts draws at a fixed size; jsdom has no layout, so tests get the fallback width).
import { useEffect, useRef, useState } from 'react';
import type { RunLayer } from '../../../../app/contract/index';

export type KindGroup = 'qkv' | 'o' | 'gateup' | 'down';

export const KIND_GROUPS: Array<{ id: KindGroup; label: string; color: string }> = [
  { id: 'qkv', label: 'q / k / v', color: 'var(--kind-qkv)' },
  { id: 'o', label: 'o', color: 'var(--kind-o)' },
  { id: 'gateup', label: 'gate / up', color: 'var(--kind-gateup)' },
  { id: 'down', label: 'down', color: 'var(--kind-down)' },
];

export function kindGroup(kind: RunLayer['kind']): KindGroup {
  return kind === 'q' || kind === 'k' || kind === 'v' ? 'qkv' : kind === 'o' ? 'o' : kind === 'down' ? 'down' : 'gateup';
}

export const kindColor = (kind: RunLayer['kind']) => KIND_GROUPS.find((g) => g.id === kindGroup(kind))!.color;

const ORDER: Record<RunLayer['kind'], number> = { q: 0, k: 1, v: 2, o: 3, gate: 4, up: 5, down: 6 };

/** Layers in model order (block, then q k v o gate up down), each with its x position. */
export function orderLayers(layers: RunLayer[]): Array<RunLayer & { x: number }> {
  return [...layers].sort((a, b) => a.block - b.block || ORDER[a.kind] - ORDER[b.kind]).map((l) => ({ ...l, x: l.block * 7 + ORDER[l.kind] }));
}

export type Metric = 'proxyLoss' | 'frobeniusError';
export const METRIC_LABEL: Record<Metric, string> = { proxyLoss: 'Proxy loss', frobeniusError: 'Relative Frobenius error' };

export function formatLoss(v: number): string {
  if (v === 0) return '0';
  return Math.abs(v) >= 0.01 && Math.abs(v) < 1000 ? v.toPrecision(3) : v.toExponential(2);
}

/** The width of the element `ref` is attached to, followed as it resizes. */
export function useWidth(fallback = 720): [React.RefObject<HTMLDivElement | null>, number] {
  const ref = useRef<HTMLDivElement | null>(null);
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(([entry]) => {
      const w = Math.floor(entry!.contentRect.width);
      if (w > 0) setWidth(w);
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, width];
}
