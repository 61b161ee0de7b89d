// How a Hadamard factorisation n = K x 2^k reads for a person, e.g. "172 × 2⁰" and "Hadamard (Williamson)".
import type { HadamardFactor } from '../../../../app/contract/model';

const SUPERSCRIPT = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];

function superscript(n: number): string {
  return String(n)
    .split('')
    .map((d) => SUPERSCRIPT[Number(d)] ?? d)
    .join('');
}

/** "K × 2^k" with the exponent as a superscript; pow2 is 2^k itself. */
export function factorText(h: HadamardFactor): string {
  return `${h.k} × 2${superscript(Math.round(Math.log2(h.pow2)))}`;
}

/** The method in one word or two, for table cells. */
export function methodShort(h: HadamardFactor): string {
  return h.method === 'sylvester' ? 'Sylvester' : h.method === 'hadamard' ? 'Hadamard' : 'fallback';
}

/** The method, with how an order-K Hadamard factor was built, e.g. "Hadamard, Paley I (q = 11)". */
export function methodText(h: HadamardFactor): string {
  switch (h.method) {
    case 'sylvester':
      return 'Sylvester';
    case 'hadamard':
      return h.construction ? `Hadamard, ${h.construction}` : 'Hadamard';
    case 'random-orthogonal':
      return 'random orthogonal fallback';
  }
}

/** The full reading: "172 × 2⁰ (Hadamard, Williamson)". */
export function factorisationText(h: HadamardFactor): string {
  return `${factorText(h)} (${methodText(h)})`;
}
