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

namespace quip {

// Ten independent FMA chains on registers: the machine's FMA throughput (flops returned).
double fma_peak_flops_avx2(long iters) {
  __m256 acc[10];
  for (int i = 0; i < 10; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(0.0001f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 10; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < 10; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float v[8];
  _mm256_store_ps(v, s);
  volatile float sink = v[0];
  (void)sink;
  return 2.0 * 8 * 10 * static_cast<double>(iters);
}

}  // namespace quip
