// The Gaussian rate-distortion view of one linear layer (native gaussianSource): coordinate (r, i) of W
// in H's eigenbasis is a Gaussian of variance rowVariances[r] whose error weighs eigenvalues[i], so
// component c = v_r lambda_i. Reverse water-filling over the components gives the least proxy loss a
// code of R bits per weight can reach, D(theta) = sum min(theta, c) at
// R(theta) = sum over c > theta of log2(c / theta) / 2, per weight; and, inverted, the bits an ideal
// code spends for a given loss.
export interface GaussianSource {
  rowVariances: Float64Array;
  /** Of H damped and normalised as quantizeLinear does. */
  eigenvalues: Float64Array;
  /** tr(W H W^T), the proxy loss's denominator. */
  signal: number;
}

/** D(theta) and R(theta) in O(m log n) each, from the sorted eigenvalues and their prefix sums. */
export class WaterFilling {
  private readonly lambda: Float64Array;
  private readonly sum: Float64Array;
  private readonly sumLog2: Float64Array;
  private readonly rows: number[];
  readonly weights: number;
  /** The largest component: above it nothing is coded. */
  readonly top: number;
  /** The distortion at zero bits: every component's variance. */
  readonly total: number;

  constructor(private readonly src: GaussianSource) {
    this.lambda = Float64Array.from(src.eigenvalues).sort();
    const n = this.lambda.length;
    this.sum = new Float64Array(n + 1);
    this.sumLog2 = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) {
      if (!(this.lambda[i] > 0)) throw new Error('WaterFilling: H must be positive definite (damped)');
      this.sum[i + 1] = this.sum[i] + this.lambda[i];
      this.sumLog2[i + 1] = this.sumLog2[i] + Math.log2(this.lambda[i]);
    }
    this.rows = Array.from(src.rowVariances).filter((v) => v > 0); // a zero row costs nothing
    this.weights = src.rowVariances.length * n;
    this.top = Math.max(0, ...this.rows) * this.lambda[n - 1];
    this.total = this.rows.reduce((a, v) => a + v * this.sum[n], 0);
  }

  at(theta: number): { distortion: number; bits: number } {
    const n = this.lambda.length;
    let distortion = 0, bits = 0;
    for (const v of this.rows) {
      const k = upperBound(this.lambda, theta / v); // lambda_0..k-1 <= theta / v: not coded
      distortion += v * this.sum[k] + theta * (n - k);
      bits += 0.5 * ((n - k) * Math.log2(v / theta) + (this.sumLog2[n] - this.sumLog2[k]));
    }
    return { distortion, bits: bits / this.weights };
  }

  /** theta at which f(theta) (monotone in theta) meets target, by bisection on log2 theta. */
  private solve(f: (theta: number) => number, target: number, increasing: boolean): number {
    let lo = Math.log2(this.top) - 200, hi = Math.log2(this.top);
    for (let i = 0; i < 200; i++) {
      const mid = 0.5 * (lo + hi);
      if (f(2 ** mid) < target === increasing) lo = mid;
      else hi = mid;
    }
    return 2 ** (0.5 * (lo + hi));
  }

  /** The least proxy loss (relative to the signal) of any code of `bits` bits per weight. */
  floor(bits: number): number {
    return this.at(this.solve((t) => this.at(t).bits, bits, false)).distortion / this.src.signal;
  }

  /** Bits per weight an ideal code needs for a proxy loss of `loss` (relative to the signal). */
  idealBits(loss: number): number {
    const target = loss * this.src.signal;
    if (target >= this.total) return 0;
    return this.at(this.solve((t) => this.at(t).distortion, target, true)).bits;
  }
}

/** Count of sorted entries <= x. */
function upperBound(a: Float64Array, x: number): number {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
