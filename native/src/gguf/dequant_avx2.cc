// AVX2/F16C fast path of the float32 -> float16 conversion of dequantized runs (the scalar reference
// is f32_to_f16_run_scalar in dequant.cc; both round to nearest even and flush nothing).
#include <immintrin.h>

#include "common/half.h"
#include "gguf/dequant.h"

namespace quip::gguf {

void f32_to_f16_run_avx2(const float* x, size_t n, uint16_t* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = f32_to_f16(x[i]);
}

}  // namespace quip::gguf
