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

/**
 * One number format for a whole axis, chosen from the axis range: plain decimals when every tick reads
 * well that way (0.01 up to 100 000), otherwise powers of ten for all ticks ("2e-3", "1.5e-2"), so an
 * axis never shows "0.0100" beside "7.00e-3". `ticks` are the values the axis will show.
 */
export function axisFormatter(ticks: readonly number[]): (v: number) => string {
  const finite = ticks.filter((t) => Number.isFinite(t));
  const nonzero = finite.map(Math.abs).filter((t) => t > 0);
  if (!nonzero.length) return (v) => String(v);
  const lo = Math.min(...nonzero);
  const hi = Math.max(...nonzero);
  if (lo >= 0.01 && hi < 1e5) {
    // As many decimals as the finest tick needs (at most 4), the same for every tick.
    let decimals = 0;
    for (const t of finite) {
      while (decimals < 4 && Math.abs(Number(t.toFixed(decimals)) - t) > Math.abs(t) * 1e-6) decimals++;
    }
    return (v) => v.toFixed(decimals);
  }
  let digits = 0;
  for (const t of finite) {
    while (digits < 3 && t !== 0 && Math.abs(Number(t.toExponential(digits)) - t) > Math.abs(t) * 1e-6) digits++;
  }
  return (v) => (v === 0 ? '0' : v.toExponential(digits).replace('e+', 'e'));
}

/** Ticks for a log axis over [lo, hi]: powers of ten, with 2x and 5x steps when fewer than three fit. */
export function logTicks(lo: number, hi: number): number[] {
  if (!(lo > 0 && hi > lo)) return lo > 0 ? [lo] : [];
  const from = Math.floor(Math.log10(lo));
  const to = Math.ceil(Math.log10(hi));
  const pick = (mults: number[]) => {
    const out: number[] = [];
    for (let e = from; e <= to; e++) for (const m of mults) {
      const v = Number((m * 10 ** e).toPrecision(6));
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
    }
    return out;
  };
  for (const mults of [[1], [1, 3], [1, 2, 5], [1, 1.5, 2, 3, 5, 7]]) {
    const t = pick(mults);
    if (t.length >= 3) return t.length > 8 ? t.filter((_, i) => i % Math.ceil(t.length / 8) === 0) : t;
  }
  // A narrow range: a few evenly spaced ticks, rounded to two significant digits.
  return linearTicks(lo, hi, 4);
}

/** About `count` evenly spaced round ticks inside [lo, hi]. */
export function linearTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * Block ticks for a per-layer x axis (x = block * 7 + kind): one per block when there is room, else
 * every 2nd, 5th, 10th... block, so the labels never run together at 30 or 80 blocks.
 */
export function blockTicks(blocks: number, plotWidth: number, labelWidth = 58): number[] {
  const fit = Math.max(1, Math.floor(plotWidth / labelWidth));
  const every = [1, 2, 5, 10, 20, 50, 100].find((k) => Math.ceil(blocks / k) <= fit) ?? Math.ceil(blocks / fit);
  return Array.from({ length: blocks }, (_, b) => b).filter((b) => b % every === 0).map((b) => b * 7 + 3);
}

export const blockLabel = (x: number) => `block ${Math.round((x - 3) / 7)}`;

/** About how wide a line of text is in the UI font (for layout before the browser draws it). */
export function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.6 + 2;
}
