#include "quip/gemm.h"

#include <algorithm>
#include <vector>

#include "common/cpu.h"
#include "common/thread_pool.h"

namespace quip {

// C[rows x N] += alpha * A * Bp over one packed K-block (Bp: panels of 16 columns).
using SgemmBlock = void (*)(int64_t rows, int64_t N, int64_t kc, float alpha, const float* A, int64_t lda,
                            const float* Bp, float* C, int64_t ldc);
#ifdef QUIP_X86
void sgemm_block_avx2(int64_t rows, int64_t N, int64_t kc, float alpha, const float* A, int64_t lda,
                      const float* Bp, float* C, int64_t ldc);  // gemm_avx2.cc
#endif
#ifdef QUIP_ARM64
void sgemm_block_neon(int64_t rows, int64_t N, int64_t kc, float alpha, const float* A, int64_t lda,
                      const float* Bp, float* C, int64_t ldc);  // gemm_neon.cc
#endif

// The packed micro-kernel of this CPU, or nullptr for the scalar reference.
static SgemmBlock sgemm_block_kernel() {
#ifdef QUIP_X86
  if (cpu_features().avx2) return sgemm_block_avx2;
#endif
#ifdef QUIP_ARM64
  if (cpu_features().neon) return sgemm_block_neon;
#endif
  return nullptr;
}

void sgemm_scalar(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float* C, int64_t ldc) {
  parallel_for(M, 16, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      for (int64_t k = 0; k < K; ++k) {
        const float a = alpha * A[i * lda + k];
        const float* brow = B + k * ldb;
        float* crow = C + i * ldc;
        for (int64_t j = 0; j < N; ++j) crow[j] += a * brow[j];
      }
  });
}

void sgemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
           int64_t ldb, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  if (SgemmBlock block = sgemm_block_kernel()) {
    const int64_t KC = 256, NP = (N + 15) / 16;
    std::vector<float> Bp(KC * NP * 16);
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kc = std::min(KC, K - k0);
      // Pack B[k0:k0+kc, :] as NP panels of kc x 16 (zero-padded columns).
      parallel_for(NP, 4, [&](size_t pb, size_t pe) {
        for (size_t p = pb; p < pe; ++p) {
          float* dst = Bp.data() + p * kc * 16;
          const int64_t j0 = p * 16, w = std::min<int64_t>(16, N - j0);
          for (int64_t k = 0; k < kc; ++k) {
            const float* src = B + (k0 + k) * ldb + j0;
            int64_t j = 0;
            for (; j < w; ++j) dst[k * 16 + j] = src[j];
            for (; j < 16; ++j) dst[k * 16 + j] = 0.f;
          }
        }
      });
      const int64_t MB = 48;  // rows per task (a multiple of the 6-row kernel)
      parallel_for((M + MB - 1) / MB, 1, [&](size_t b, size_t e) {
        for (size_t t = b; t < e; ++t) {
          const int64_t r0 = t * MB, rows = std::min(MB, M - r0);
          block(rows, N, kc, alpha, A + r0 * lda + k0, lda, Bp.data(), C + r0 * ldc, ldc);
        }
      });
    }
    return;
  }
  sgemm_scalar(M, N, K, alpha, A, lda, B, ldb, C, ldc);
}

void dgemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda, const double* B,
           int64_t ldb, double* C, int64_t ldc) {
  parallel_for(M, 8, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      for (int64_t k = 0; k < K; ++k) {
        const double a = alpha * A[i * lda + k];
        const double* brow = B + k * ldb;
        double* crow = C + i * ldc;
        for (int64_t j = 0; j < N; ++j) crow[j] += a * brow[j];
      }
  });
}

}  // namespace quip
