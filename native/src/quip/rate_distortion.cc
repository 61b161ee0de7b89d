#include "quip/rate_distortion.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "quip/ldlq.h"

namespace quip {

std::vector<double> symmetric_eigenvalues(std::vector<double> A, int64_t n, const JobHooks& hooks) {
  if (n < 1 || static_cast<int64_t>(A.size()) != n * n) throw std::invalid_argument("symmetric_eigenvalues: A must be n x n");
  std::vector<double> d(n), e(n, 0.0), v(n), p(n);
  // Householder: for each column k, reflect rows k+1.. so that column k has one entry below the
  // diagonal (e[k]); the trailing block B becomes (I - 2vv^T) B (I - 2vv^T) = B - 2(v w^T + w v^T)
  // with p = B v, w = p - (v^T p) v.
  for (int64_t k = 0; k + 1 < n; ++k) {
    if (k % 64 == 0) hooks.check();
    const int64_t s = n - k - 1;
    double norm2 = 0;
    for (int64_t i = 0; i < s; ++i) norm2 += A[(k + 1 + i) * n + k] * A[(k + 1 + i) * n + k];
    const double x0 = A[(k + 1) * n + k];
    if (norm2 == 0 || norm2 == x0 * x0) {  // already tridiagonal in this column
      e[k] = x0;
      continue;
    }
    const double alpha = x0 > 0 ? -std::sqrt(norm2) : std::sqrt(norm2);
    for (int64_t i = 0; i < s; ++i) v[i] = A[(k + 1 + i) * n + k];
    v[0] -= alpha;
    double vn = 0;
    for (int64_t i = 0; i < s; ++i) vn += v[i] * v[i];
    vn = 1 / std::sqrt(vn);
    for (int64_t i = 0; i < s; ++i) v[i] *= vn;
    double K = 0;
    for (int64_t i = 0; i < s; ++i) {
      const double* row = &A[(k + 1 + i) * n + k + 1];
      double acc = 0;
      for (int64_t j = 0; j < s; ++j) acc += row[j] * v[j];
      p[i] = acc, K += v[i] * acc;
    }
    for (int64_t i = 0; i < s; ++i) p[i] -= K * v[i];
    for (int64_t i = 0; i < s; ++i) {
      double* row = &A[(k + 1 + i) * n + k + 1];
      const double vi = 2 * v[i], wi = 2 * p[i];
      for (int64_t j = 0; j < s; ++j) row[j] -= vi * p[j] + wi * v[j];
    }
    e[k] = alpha;
  }
  for (int64_t i = 0; i < n; ++i) d[i] = A[i * n + i];
  A.clear(), A.shrink_to_fit();

  // Sturm count: eigenvalues of the tridiagonal (d, e) below x.
  auto below = [&](double x) {
    int64_t count = 0;
    double q = 1;
    for (int64_t i = 0; i < n; ++i) {
      q = d[i] - x - (i ? e[i - 1] * e[i - 1] / q : 0.0);
      if (q == 0) q = -1e-300;
      if (q < 0) ++count;
    }
    return count;
  };
  double lo = d[0], hi = d[0];  // Gershgorin
  for (int64_t i = 0; i < n; ++i) {
    const double r = (i ? std::fabs(e[i - 1]) : 0.0) + (i + 1 < n ? std::fabs(e[i]) : 0.0);
    lo = std::min(lo, d[i] - r), hi = std::max(hi, d[i] + r);
  }
  const double tol = 4 * std::numeric_limits<double>::epsilon() * std::max(std::fabs(lo), std::fabs(hi));
  std::vector<double> eig(n);
  for (int64_t j = 0; j < n; ++j) {
    if (j % 64 == 0) hooks.check();
    double a = j ? eig[j - 1] : lo, b = hi;  // the j-th eigenvalue (0-based) is >= the (j-1)-th
    while (b - a > tol && b - a > 1e-15 * (std::fabs(a) + std::fabs(b))) {
      const double mid = 0.5 * (a + b);
      if (mid <= a || mid >= b) break;
      (below(mid) > j ? b : a) = mid;
    }
    eig[j] = 0.5 * (a + b);
  }
  return eig;
}

GaussianSource gaussian_source(const float* W, int64_t m, int64_t n, const double* H0, double sigma,
                               const JobHooks& hooks) {
  GaussianSource g;
  g.signal = weighted_energy(W, m, n, H0, sigma, hooks);
  std::vector<double> H(H0, H0 + n * n);
  damp_hessian(H.data(), n, sigma);
  g.eigenvalues = symmetric_eigenvalues(std::move(H), n, hooks);
  g.row_variances.resize(m);
  for (int64_t r = 0; r < m; ++r) {
    double v = 0;
    for (int64_t c = 0; c < n; ++c) v += double(W[r * n + c]) * W[r * n + c];
    g.row_variances[r] = v / double(n);
  }
  return g;
}

}  // namespace quip
