// The codebooks of the numeric core, one row each (as ggml's type_traits and quip-sharp's
// codebook_id): adding a codebook is adding a row. The native core keeps the same facts in its own
// table (native/src/quip/e8p.cc kInfo, exported by the addon as codebookInfo); codebooks.test.ts
// checks every row against it. Everything on the TypeScript side (settings, estimates, the saved
// format, inference specs, the UI) reads this table.
import { SettingsError } from './errors.js';

/** The concrete codebooks. e8p = E8P 2-bit; rvq3/rvq4 = E8P + residual stage; rtnB = scalar
 * round-to-nearest at B bits (the baseline; same RHT and BlockLDLQ around it). */
export const CODEBOOKS = ['e8p', 'rvq3', 'rvq4', 'rtn2', 'rtn3', 'rtn4'] as const;
export type Codebook = (typeof CODEBOOKS)[number];
/** The codebooks built on the E8P lattice (the ones with decode kernels of their own). */
export type LatticeCodebook = Exclude<Codebook, `rtn${string}`>;

/** What the user picks: the lattice family (E8P, with RVQ at 3/4 bits), or scalar rounding.
 * 'rvq' is accepted as an explicit name for the residual codebooks and needs 3 or 4 bits. */
export const CODEBOOK_FAMILIES = ['e8p', 'rvq', 'rtn'] as const;
export type CodebookFamily = (typeof CODEBOOK_FAMILIES)[number];

export type BitWidth = 2 | 3 | 4;

export interface CodebookRow {
  name: Codebook;
  /** The family it belongs to: e8p (one E8P stage), rvq (E8P + a residual stage), rtn (scalar). */
  family: CodebookFamily;
  /** The bit width it quantizes to. */
  bits: BitWidth;
  /** Default scale rho: the quantizer sees W~ scaled to RMS rho (spec section 2). How each was
   * chosen: docs/quality-smollm2.md, "How the defaults were chosen". */
  defaultRho: number;
  /** Code arrays per layer: 1, or 2 with a residual stage. */
  stages: 1 | 2;
  /** Scale of the residual stage (the second stage encodes residual * s2); 0 without one. */
  s2: number;
  /** Bits per weight of the codes alone (sign vectors and scales come on top). */
  codeBitsPerWeight: number;
}

export const CODEBOOK_TABLE: { readonly [K in Codebook]: CodebookRow & { name: K } } = {
  // E8P 1.03: Gaussian-MSE optimal (the paper ran 0.9); RVQ3 0.98 and RVQ4 1.03 measured on SmolLM2.
  e8p: { name: 'e8p', family: 'e8p', bits: 2, defaultRho: 1.03, stages: 1, s2: 0, codeBitsPerWeight: 2 },
  rvq3: { name: 'rvq3', family: 'rvq', bits: 3, defaultRho: 0.98, stages: 2, s2: 2.04, codeBitsPerWeight: 3 },
  rvq4: { name: 'rvq4', family: 'rvq', bits: 4, defaultRho: 1.03, stages: 2, s2: 3.45, codeBitsPerWeight: 4 },
  // Scalar levels sit at half-integer steps: 4 / 8 / 16 uniform levels minimise Gaussian MSE at RMS 1.0 / 1.71 / 2.98.
  rtn2: { name: 'rtn2', family: 'rtn', bits: 2, defaultRho: 1.0, stages: 1, s2: 0, codeBitsPerWeight: 2 },
  rtn3: { name: 'rtn3', family: 'rtn', bits: 3, defaultRho: 1.71, stages: 1, s2: 0, codeBitsPerWeight: 3 },
  rtn4: { name: 'rtn4', family: 'rtn', bits: 4, defaultRho: 2.98, stages: 1, s2: 0, codeBitsPerWeight: 4 },
};

export function isCodebook(name: string): name is Codebook {
  return (CODEBOOKS as readonly string[]).includes(name);
}

/** The row of a codebook. */
export function codebookInfo(codebook: Codebook): CodebookRow {
  return CODEBOOK_TABLE[codebook];
}

/** Bits per weight of the codes alone (overhead of sign vectors and scales comes on top). */
export function codeBitsPerWeight(codebook: Codebook): number {
  return CODEBOOK_TABLE[codebook].codeBitsPerWeight;
}

/** True for the codebooks with a residual stage (two code planes, a residual scale). */
export function hasResidual(codebook: Codebook): boolean {
  return CODEBOOK_TABLE[codebook].stages === 2;
}

/** The concrete codebook of a bits/family pairing: rtn and rvq name their own rows; e8p means the
 * E8P lattice at any width (plain at 2 bits, with the residual stage at 3 and 4). Throws
 * SettingsError for pairings that do not exist. */
export function codebookFor(bits: number, family: string): Codebook {
  if (!(CODEBOOK_FAMILIES as readonly string[]).includes(family))
    throw new SettingsError('codebook', `"${family}" is not a codebook: use e8p (E8P lattice, residual at 3/4 bits) or rtn (scalar rounding).`, 'UNSUPPORTED_PAIRING');
  const row = Object.values(CODEBOOK_TABLE).find((r) => r.bits === bits && (family === 'e8p' ? r.family !== 'rtn' : r.family === family));
  if (row) return row.name;
  if (family === 'rvq' && bits === 2)
    throw new SettingsError('codebook', 'rvq (the residual codebook) needs 3 or 4 bits; at 2 bits use e8p.', 'UNSUPPORTED_PAIRING');
  throw new SettingsError('bits', `${bits} is not supported with the ${family} codebook: choose 2, 3 or 4 bits.`, 'UNSUPPORTED_PAIRING');
}
