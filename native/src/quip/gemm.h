// A small blocked GEMM for the BlockLDLQ feedback products and the Cholesky trailing updates
// (row-major float32): C += alpha * A * B with A M x K (lda), B K x N (ldb), C M x N (ldc).
// Parallel over row blocks; AVX2+FMA 6x16 micro-kernel when available, scalar reference beside it.
#pragma once
#include <cstdint>

namespace quip {

void sgemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
           int64_t ldb, float* C, int64_t ldc);
void sgemm_scalar(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float* C, int64_t ldc);
// Double precision (fallback paths and references): straightforward, parallel over rows.
void dgemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda, const double* B,
           int64_t ldb, double* C, int64_t ldc);

}  // namespace quip
