// Machine ceilings that the engine benchmark prints its figures beside: streaming read bandwidth
// (what single-token decode is bound by) and the peak of our own GEMM (what prefill is bound by).
#pragma once
#include <cstddef>

namespace quip::runtime {

// GB/s (1e9 bytes) of summing a `bytes`-sized float buffer with every pool thread, best of `repeats`.
double measure_read_bandwidth(size_t bytes, int repeats);
// GFLOP/s (2 flops per multiply-add) of matmul_wt on an F32 problem whose operands fit in cache
// (tokens x k times m x k), best of `repeats`.
double measure_gemm_peak(int tokens, int m, int k, int repeats);

}  // namespace quip::runtime
