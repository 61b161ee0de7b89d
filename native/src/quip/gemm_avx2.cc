// AVX2+FMA GEMM micro-kernel (6 rows x 16 columns, 12 accumulators); scalar reference in gemm.cc.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace quip {

namespace {

// Ap: A packed as kc x 6 (row r of step k at Ap[k * 6 + r]); Bp: kc x 16.
// Ap: A packed as kc x 6 (row r of step k at Ap[k * 6 + r]); Bp: kc x 16. The accumulators are named
// registers (an indexed array made GCC spill them to the stack on every step).
template <int R>
inline void kernel(int64_t kc, float alpha, const float* Ap, const float* Bp, float* C, int64_t ldc, int64_t w) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
         c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(Bp + k * 16), b1 = _mm256_loadu_ps(Bp + k * 16 + 8);
    const float* a = Ap + k * 6;
    __m256 x = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
    if (R > 1) x = _mm256_broadcast_ss(a + 1), c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
    if (R > 2) x = _mm256_broadcast_ss(a + 2), c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
    if (R > 3) x = _mm256_broadcast_ss(a + 3), c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
    if (R > 4) x = _mm256_broadcast_ss(a + 4), c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
    if (R > 5) x = _mm256_broadcast_ss(a + 5), c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
  }
  const __m256 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
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
  // Pack the row block into 6-row micro-panels so each step's broadcasts come from one cache line.
  const int64_t panels = (rows + 5) / 6;
  thread_local std::vector<float> Ap;
  Ap.assign(panels * kc * 6, 0.f);
  for (int64_t pr = 0; pr < panels; ++pr)
    for (int64_t r = 0; r < 6 && pr * 6 + r < rows; ++r) {
      const float* src = A + (pr * 6 + r) * lda;
      float* dst = Ap.data() + pr * kc * 6 + r;
      for (int64_t k = 0; k < kc; ++k) dst[k * 6] = src[k];
    }
  const int64_t NP = (N + 15) / 16;
  for (int64_t p = 0; p < NP; ++p) {
    const float* B = Bp + p * kc * 16;
    const int64_t j0 = p * 16, w = std::min<int64_t>(16, N - j0);
    for (int64_t pr = 0; pr < panels; ++pr) {
      const float* a = Ap.data() + pr * kc * 6;
      float* c = C + pr * 6 * ldc + j0;
      switch (std::min<int64_t>(6, rows - pr * 6)) {
        case 6: kernel<6>(kc, alpha, a, B, c, ldc, w); break;
        case 5: kernel<5>(kc, alpha, a, B, c, ldc, w); break;
        case 4: kernel<4>(kc, alpha, a, B, c, ldc, w); break;
        case 3: kernel<3>(kc, alpha, a, B, c, ldc, w); break;
        case 2: kernel<2>(kc, alpha, a, B, c, ldc, w); break;
        default: kernel<1>(kc, alpha, a, B, c, ldc, w); break;
      }
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
