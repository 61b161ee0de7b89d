// Kernel benchmarks of the QuIP# core (`quip bench kernels`): each figure is measured beside its
// comparison in the same run.
#pragma once
#include <string>
#include <vector>

#include "common/job.h"

namespace quip {

struct BenchFigure {
  std::string name;        // e.g. "e8p_quantize"
  std::string variant;     // e.g. "avx2, 2 threads"
  double value = 0;        // in `unit`
  std::string unit;        // "weights/s", "s", "GFLOP/s", ...
  std::string comparison;  // what it is compared against (text)
};

// threads: the thread count of the multi-threaded figures. quick: small sizes (tests).
std::vector<BenchFigure> bench_kernels(int threads, bool quick, const JobHooks& hooks);

// A Hessian like that of correlated Gaussian activations x = s .* a + U z: a_i AR(1) along channels
// (coefficient 0.9), s_i log-normal channel scales (sigma 1), U n x 8 shared factors:
// H = diag(s) T diag(s) + U U^T with T_ij = 0.9^|i-j|. O(n^2), deterministic in `seed`.
std::vector<double> synthetic_hessian(int64_t n, uint64_t seed);

// Peak single-precision FMA throughput of this thread (register-only loop), in GFLOP/s.
double fma_peak_gflops_this_thread(double seconds);

}  // namespace quip
