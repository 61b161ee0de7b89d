// AVX2+FMA GEMM micro-kernel (6 rows x 16 columns, 12 accumulators); scalar reference in gemm.cc.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace quip {

namespace {

template <int R>
inline void kernel(int64_t kc, float alpha, const float* A, int64_t lda, const float* Bp, float* C,
                   int64_t ldc, int64_t w) {
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(Bp + k * 16), b1 = _mm256_loadu_ps(Bp + k * 16 + 8);
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  const __m256 al = _mm256_set1_ps(alpha);
  if (w == 16) {
    for (int r = 0; r < R; ++r) {
      float* c = C + r * ldc;
      _mm256_storeu_ps(c, _mm256_fmadd_ps(al, acc[r][0], _mm256_loadu_ps(c)));
      _mm256_storeu_ps(c + 8, _mm256_fmadd_ps(al, acc[r][1], _mm256_loadu_ps(c + 8)));
    }
  } else {
    alignas(32) float tmp[16];
    for (int r = 0; r < R; ++r) {
      _mm256_store_ps(tmp, acc[r][0]);
      _mm256_store_ps(tmp + 8, acc[r][1]);
      for (int64_t j = 0; j < w; ++j) C[r * ldc + j] += alpha * tmp[j];
    }
  }
}

}  // namespace

void sgemm_block_avx2(int64_t rows, int64_t N, int64_t kc, float alpha, const float* A, int64_t lda,
                      const float* Bp, float* C, int64_t ldc) {
  const int64_t NP = (N + 15) / 16;
  for (int64_t p = 0; p < NP; ++p) {
    const float* B = Bp + p * kc * 16;
    const int64_t j0 = p * 16, w = std::min<int64_t>(16, N - j0);
    int64_t r = 0;
    for (; r + 6 <= rows; r += 6) kernel<6>(kc, alpha, A + r * lda, lda, B, C + r * ldc + j0, ldc, w);
    switch (rows - r) {
      case 5: kernel<5>(kc, alpha, A + r * lda, lda, B, C + r * ldc + j0, ldc, w); break;
      case 4: kernel<4>(kc, alpha, A + r * lda, lda, B, C + r * ldc + j0, ldc, w); break;
      case 3: kernel<3>(kc, alpha, A + r * lda, lda, B, C + r * ldc + j0, ldc, w); break;
      case 2: kernel<2>(kc, alpha, A + r * lda, lda, B, C + r * ldc + j0, ldc, w); break;
      case 1: kernel<1>(kc, alpha, A + r * lda, lda, B, C + r * ldc + j0, ldc, w); break;
      default: break;
    }
  }
}

}  // namespace quip
