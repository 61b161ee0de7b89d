// AVX2 int8 prefill microkernel without AVX-VNNI (compiled with -mavx2 -mfma -mf16c; called only
// when cpu_features().avx2). The kernel body is prefill_avx2.inc.
#include <immintrin.h>

static inline __m256i quip_prefill_dp_avx2(__m256i acc, __m256i x, __m256i w) {
  const __m256i p = _mm256_maddubs_epi16(x, w);  // u8 x s8 pairs -> int16 (|sum| <= 2 * 255 * 11)
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
#define QUIP_PREFILL_DPBUSD(acc, x, w) quip_prefill_dp_avx2(acc, x, w)
#include "qinfer/prefill_avx2.inc"

namespace quip::qinfer {
const PrefillKernels& prefill_kernels_avx2() {
  static const PrefillKernels k{tile_impl, "avx2"};
  return k;
}
}  // namespace quip::qinfer
