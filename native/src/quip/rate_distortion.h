// The Gaussian rate-distortion view of one linear layer: what no code of a given bit rate can beat if
// W's entries were independent Gaussians of each row's own variance (the source the RHT makes them
// resemble), with the error weighed by the layer's damped Hessian. Used by `quip bench layer-errors`
// to say how far a quantizer is from ideal, and whether any code of a size could match another's.
#pragma once
#include <cstdint>
#include <vector>

#include "common/job.h"

namespace quip {

// Eigenvalues of a symmetric n x n matrix (row-major, consumed), ascending: Householder reduction to
// tridiagonal form, then bisection on Sturm counts (each to full double precision).
std::vector<double> symmetric_eigenvalues(std::vector<double> A, int64_t n, const JobHooks& hooks);

// The layer as a Gaussian source: coordinate (r, i) of W in H's eigenbasis has variance
// row_variances[r] and error weight eigenvalues[i]; signal = tr(W H W^T), the proxy loss's denominator.
struct GaussianSource {
  std::vector<double> row_variances;  // m: ||W_r||^2 / n
  std::vector<double> eigenvalues;    // n: of H damped and normalised as quantize_linear does
  double signal = 0;
};
GaussianSource gaussian_source(const float* W, int64_t m, int64_t n, const double* H, double sigma,
                               const JobHooks& hooks);

}  // namespace quip
