// AVX2 fast Walsh-Hadamard transform; the scalar reference is fwht_scalar in hadamard.cc.
#include <immintrin.h>

#include <cstdint>

namespace quip {

void fwht_avx2(float* x, int64_t len) {
  // Stages h = 1, 2, 4 inside each 8-float register, then butterflies between registers.
  const __m256 sign1 = _mm256_setr_ps(1, -1, 1, -1, 1, -1, 1, -1);
  const __m256 sign2 = _mm256_setr_ps(1, 1, -1, -1, 1, 1, -1, -1);
  const __m256 sign4 = _mm256_setr_ps(1, 1, 1, 1, -1, -1, -1, -1);
  for (int64_t i = 0; i < len; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 s = _mm256_permute_ps(v, 0xB1);  // swap neighbours
    v = _mm256_fmadd_ps(v, sign1, s);        // (a + b, a - b) with the sign on the kept lane
    s = _mm256_permute_ps(v, 0x4E);          // swap pairs
    v = _mm256_fmadd_ps(v, sign2, s);
    s = _mm256_permute2f128_ps(v, v, 0x01);  // swap halves
    v = _mm256_fmadd_ps(v, sign4, s);
    _mm256_storeu_ps(x + i, v);
  }
  for (int64_t h = 8; h < len; h <<= 1)
    for (int64_t i = 0; i < len; i += 2 * h)
      for (int64_t j = i; j < i + h; j += 8) {
        __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + h);
        _mm256_storeu_ps(x + j, _mm256_add_ps(a, b));
        _mm256_storeu_ps(x + j + h, _mm256_sub_ps(a, b));
      }
}

}  // namespace quip
