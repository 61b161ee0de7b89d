// Types of the QuIP# numeric core exported by the native addon (native/addon/quip_bindings.cc).
import type { HadamardFactor } from '../../contract/model.js';

export interface QuipNative {
  /** How the orthogonal Hadamard transform of size n is built: n = k * pow2 (see spec section 2). */
  hadamardPlan(n: number): HadamardFactor;
}
