// Colours that code needs as values (chart series in SVG attributes cannot read CSS variables);
// they match the variables in styles/app.css so a layer kind looks the same in tables and charts.
import type { LinearKind } from '../../app/contract/model';

export const KIND_GROUPS = ['q/k/v', 'o', 'gate/up', 'down'] as const;
export type KindGroup = (typeof KIND_GROUPS)[number];

export function kindGroup(kind: LinearKind): KindGroup {
  return kind === 'q' || kind === 'k' || kind === 'v' ? 'q/k/v' : kind === 'gate' || kind === 'up' ? 'gate/up' : kind;
}

/** --kind-qkv, --kind-o, --kind-gateup, --kind-down */
export const KIND_COLORS: Record<KindGroup, string> = {
  'q/k/v': '#5b5bd6',
  o: '#0ea5a3',
  'gate/up': '#e08a1e',
  down: '#d6457a',
};

/** --bits-2, --bits-3, --bits-4, --bits-16 (light scheme) */
export const BITS_COLORS: Record<2 | 3 | 4 | 16, string> = { 2: '#7c6cf0', 3: '#5b8def', 4: '#1fa68c', 16: '#9aa1b8' };
